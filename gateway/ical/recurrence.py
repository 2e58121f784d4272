"""The instances of a calendar object: RRULE, RDATE and EXDATE of the master, overrides.

RFC 5545 3.8.5: the recurrence set is DTSTART, every RRULE and RDATE start, less the
EXDATEs; an override (RECURRENCE-ID) replaces the instance it names, and with
RANGE=THISANDFUTURE also shifts the later ones. Rules repeat wall-clock times in the
DTSTART zone (3.3.10), so they are expanded on local times and converted to UTC after.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from gateway.ical.budget import Budget
from gateway.ical.model import InvalidCalendarObject
from gateway.ical.rules import Rule, build_rule
from gateway.ical.structure import CalendarObject, Part, Timing, tzid_of, values
from gateway.ical.timing import When, from_local, read_when

# How far a finite series' end is looked for; past it, or past the work budget, the span is
# left open (a safe superset for the index, which only pre-filters).
SPAN_HORIZON_YEARS = 200


@dataclass(frozen=True)
class Instance:
    """One occurrence: UTC start and end."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Expansion:
    """Instances in a window, sorted, and up to where that list is complete.

    ``complete_until`` is None when every instance overlapping the window is listed; else
    every instance starting before it is (the expansion stopped at a limit or its budget).
    """

    instances: list[Instance]
    complete_until: datetime | None


def overlaps(start: datetime, end: datetime, window_start: datetime, window_end: datetime) -> bool:
    """RFC 4791 9.9: a zero-length instance matches when window_start <= start < window_end.

    (For DTEND = DTSTART the RFC's DTEND row would also exclude start = window_start; the
    index built from this is a pre-filter, so the wider zero-duration row is used.)
    """
    if end > start:
        return start < window_end and end > window_start
    return window_start <= start < window_end


def rule_texts(part: Part) -> list[str]:
    """The RRULE values of a VEVENT as text (icalendar's canonical part order)."""
    return [rule.to_ical().decode().replace("\\;", ";") for rule in values(part.event, "RRULE")]


class Series:
    """The instances of one :class:`CalendarObject`, in UTC."""

    def __init__(self, calendar_object: CalendarObject) -> None:
        self._object = calendar_object
        master = calendar_object.master
        self._rules: list[Rule] = []
        self._extra: list[tuple[When, Timing | None]] = []  # RDATEs, PERIODs with a length
        self._excluded: set[date] = set()
        self._never_ends = False
        if master is not None:
            start = master.timing.start
            self._rules = [build_rule(text, start) for text in rule_texts(master)]
            self._never_ends = any(rule.endless for rule in self._rules)
            self._read_dates(master)
        self._replaced = {self._key(part.recurrence_id) for part in self._overrides}
        self._future = [part for part in self._overrides if part.this_and_future]

    @property
    def _overrides(self) -> tuple[Part, ...]:
        return self._object.overrides

    def _key(self, when: When | None) -> date:
        # All-day series match overrides and EXDATEs by date, whatever zone they name.
        master = self._object.master
        assert when is not None
        if master is not None and master.timing.start.is_date:
            return when.wall.date()
        return when.instant

    def _read_dates(self, master: Part) -> None:
        resolver = self._object.resolver
        all_day = master.timing.start.is_date
        for listing in values(master.event, "RDATE"):
            for item in listing.dts:
                _check_rdate_type(item.dt, all_day)
                if isinstance(item.dt, tuple):  # PERIOD: its own end or duration
                    begin = read_when(item.dt[0], tzid_of(listing), resolver)
                    finish = item.dt[1]
                    length = (
                        finish
                        if isinstance(finish, timedelta)
                        else read_when(finish, tzid_of(listing), resolver).instant - begin.instant
                    )
                    self._extra.append((begin, Timing(begin, max(length, timedelta(0)))))
                else:
                    self._extra.append((read_when(item.dt, tzid_of(listing), resolver), None))
        for listing in values(master.event, "EXDATE"):
            for item in listing.dts:
                self._excluded.add(self._key(read_when(item.dt, tzid_of(listing), resolver)))

    def _master_starts(
        self, stop: datetime, budget: Budget, after: datetime | None = None
    ) -> Iterator[tuple[When, Timing | None]]:
        master = self._object.master
        if master is None:
            return
        start = master.timing.start
        extra = sorted(self._extra, key=lambda item: item[0].instant)
        early = [item for item in extra if item[0].instant < start.instant]
        streams: list[Iterator[tuple[When, Timing | None]]] = [iter(extra[len(early):])]
        for rule in self._rules:
            streams.append((self._when(local, start), None)
                           for local in rule.starts(stop, budget, after))
        # Rules start no earlier than DTSTART: they are not searched until it is consumed.
        merged = itertools.chain(
            early, [(start, None)], heapq.merge(*streams, key=lambda item: item[0].instant))
        seen: set[date] = set()
        for when, timing in merged:
            key = self._key(when)
            if key in seen:
                continue
            seen.add(key)
            if key not in self._excluded:
                yield when, timing

    @staticmethod
    def _when(local: datetime, start: When) -> When:
        if start.is_date:
            wall = local.replace(tzinfo=None)
            return When(wall.replace(tzinfo=UTC), wall, None, is_date=True)
        return from_local(local, start.zone)

    def _master_instances(
        self, stop: datetime, budget: Budget, after: datetime | None = None
    ) -> Iterator[tuple[datetime, Instance]]:
        """(generated start, instance) in generated order, rules expanded up to ``stop``.

        The generated start is the instance's own before any THISANDFUTURE shift; later ones
        start no earlier than it less :meth:`_slack`.
        """
        master = self._object.master
        if master is None:
            return
        for when, own in self._master_starts(stop, budget, after):
            key = self._key(when)
            if self._future and not budget.charge(len(self._future)):
                budget.stop(when.instant)
                return
            if key in self._replaced:
                continue
            timing = own or master.timing
            shift = timedelta(0)
            for part in reversed(self._future):  # the latest THISANDFUTURE before it wins
                assert part.recurrence_id is not None
                if self._key(part.recurrence_id) < key:
                    shift = part.timing.start.instant - part.recurrence_id.instant
                    timing = part.timing
                    break
            yield when.instant, Instance(when.instant + shift, timing.end_for(when) + shift)

    def _override_instances(self) -> list[Instance]:
        return [Instance(part.timing.start.instant, part.timing.end) for part in self._overrides]

    def _slack(self) -> timedelta:
        # Master instances come in start order; a THISANDFUTURE shift can move later ones
        # earlier, and local times may reorder by up to a day of UTC offset.
        shifts = [
            part.recurrence_id.instant - part.timing.start.instant
            for part in self._future
            if part.recurrence_id is not None
        ]
        return timedelta(days=1) + max([timedelta(0), *shifts])

    def _lead(self) -> timedelta:
        """How long before a window an instance overlapping it can have been generated:
        its length, a THISANDFUTURE shift later, and two hours for a DST change."""
        lengths = [part.timing.length for part in self._object.parts]
        shifts = [
            abs(part.timing.start.instant - part.recurrence_id.instant)
            for part in self._future
            if part.recurrence_id is not None
        ]
        return timedelta(hours=2) + max(lengths, default=timedelta(0)) + max(
            shifts, default=timedelta(0))

    def expand(
        self, window_start: datetime, window_end: datetime, budget: Budget,
        limit: int | None = None,
    ) -> Expansion:
        """The instances overlapping [window_start, window_end), sorted by start.

        Stops after ``limit`` master instances in the window, or when ``budget`` runs out;
        the expansion then says up to where its list is complete.
        """
        found: set[Instance] = set()
        slack = self._slack()
        stop = window_end + slack
        complete_until: datetime | None = None
        counted = 0
        after = window_start - self._lead()
        for generated, instance in self._master_instances(stop, budget, after):
            if instance.start >= stop:
                break
            if overlaps(instance.start, instance.end, window_start, window_end):
                found.add(instance)
                counted += 1
                if limit is not None and counted >= limit:
                    complete_until = generated - slack
                    break
        if budget.stopped_at is not None:
            stopped = budget.stopped_at.astimezone(UTC) - slack
            complete_until = stopped if complete_until is None else min(complete_until, stopped)
        for instance in self._override_instances():
            if overlaps(instance.start, instance.end, window_start, window_end):
                found.add(instance)
        return Expansion(sorted(found, key=lambda item: (item.start, item.end)), complete_until)

    def check_cost(self) -> None:
        """Refuse rules whose unbounded expansion would exceed the work budget.

        Other CalDAV software (Radicale's own PUT handling among it) expands a rule without
        a stop; a rule that costs it more than the budget is refused with the reason rather
        than stored.
        """
        for rule in self._rules:
            if not rule.search_ends(Budget()):
                raise InvalidCalendarObject(
                    f"RRULE {rule.text!r} is too costly to expand: it has more instances, or "
                    f"its instances lie further apart, than the server's recurrence work "
                    f"budget allows"
                )

    def _horizon(self) -> datetime:
        first = self._object.parts[0].timing.start.instant
        return datetime(min(first.year + SPAN_HORIZON_YEARS, 9998), 1, 1, tzinfo=UTC)

    def _reaches_its_end(self, horizon: datetime, budget: Budget) -> bool:
        """Whether every finite rule ends before ``horizon`` within the work budget."""
        for rule in self._rules:
            if rule.count is not None and sum(1 for _ in rule.starts(horizon, budget)) < rule.count:
                return False  # sparse, impossible or too costly: the end is not known
        return not budget.exhausted

    def span(self, budget: Budget | None = None) -> tuple[datetime, datetime | None]:
        """(start of the earliest instance, end of the latest or None if it never ends, or
        if its end is not found within the work budget)."""
        budget = budget or Budget()
        horizon = self._horizon()
        overrides = self._override_instances()
        finite = not self._never_ends and self._reaches_its_end(horizon, budget)
        master: list[Instance] = []
        for _, instance in self._master_instances(horizon, budget):
            master.append(instance)
            if not finite:
                break  # only the first instance is needed
        instances = master + overrides
        if not instances:  # everything excluded: fall back to the VEVENT's own times
            part = self._object.parts[0]
            return part.timing.start.instant, part.timing.end
        first = min(instance.start for instance in instances)
        if not finite or budget.exhausted:
            return first, None
        return first, max(instance.end for instance in instances)


def _check_rdate_type(value: object, all_day: bool) -> None:
    """RDATEs have DTSTART's value type (RFC 5545 3.8.5.2 lists DATE-TIME, DATE, PERIOD):
    a date among date-times has no time or zone to compare with, and the reverse."""
    is_date = isinstance(value, date) and not isinstance(value, datetime)
    if is_date != all_day:
        wanted = "DATE" if all_day else "DATE-TIME or PERIOD"
        raise InvalidCalendarObject(
            f"RDATE {value} does not match DTSTART: an {'all-day' if all_day else 'timed'} "
            f"series takes RDATE values of type {wanted}"
        )
