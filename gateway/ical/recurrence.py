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

from gateway.ical.rules import Rule, build_rule
from gateway.ical.structure import CalendarObject, Part, Timing, tzid_of, values
from gateway.ical.timing import When, from_local, read_when

# Work bounds for a finite series' span; past them the span is left open (a safe superset
# for the index, which only pre-filters).
MAX_SPAN_INSTANCES = 20_000
SPAN_HORIZON_YEARS = 200


@dataclass(frozen=True)
class Instance:
    """One occurrence: UTC start and end."""

    start: datetime
    end: datetime


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
        for listing in values(master.event, "RDATE"):
            for item in listing.dts:
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

    def _master_starts(self, stop: datetime) -> Iterator[tuple[When, Timing | None]]:
        master = self._object.master
        if master is None:
            return
        start = master.timing.start
        streams: list[Iterator[tuple[When, Timing | None]]] = [iter([(start, None)])]
        for rule in self._rules:
            streams.append((self._when(local, start), None) for local in rule.starts(stop))
        streams.append(iter(sorted(self._extra, key=lambda item: item[0].instant)))
        seen: set[date] = set()
        for when, timing in heapq.merge(*streams, key=lambda item: item[0].instant):
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

    def _master_instances(self, stop: datetime) -> Iterator[Instance]:
        """Master instances in start order, from rules expanded up to ``stop``."""
        master = self._object.master
        if master is None:
            return
        for when, own in self._master_starts(stop):
            key = self._key(when)
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
            yield Instance(when.instant + shift, timing.end_for(when) + shift)

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

    def between(self, window_start: datetime, window_end: datetime) -> list[Instance]:
        """Every instance overlapping [window_start, window_end), sorted by start."""
        found: set[Instance] = set()
        stop = window_end + self._slack()
        for instance in self._master_instances(stop):
            if instance.start >= stop:
                break
            if overlaps(instance.start, instance.end, window_start, window_end):
                found.add(instance)
        for instance in self._override_instances():
            if overlaps(instance.start, instance.end, window_start, window_end):
                found.add(instance)
        return sorted(found, key=lambda item: (item.start, item.end))

    def _horizon(self) -> datetime:
        first = self._object.parts[0].timing.start.instant
        return datetime(min(first.year + SPAN_HORIZON_YEARS, 9998), 1, 1, tzinfo=UTC)

    def _reaches_its_end(self, horizon: datetime) -> bool:
        """Whether every finite rule ends before ``horizon`` within the work bound."""
        for rule in self._rules:
            if rule.count is not None:
                if rule.count > MAX_SPAN_INSTANCES:
                    return False
                if sum(1 for _ in rule.starts(horizon)) < rule.count:
                    return False  # sparse or impossible: what is left lies past the horizon
        return True

    def span(self) -> tuple[datetime, datetime | None]:
        """(start of the earliest instance, end of the latest or None if it never ends)."""
        horizon = self._horizon()
        overrides = self._override_instances()
        finite = not self._never_ends and self._reaches_its_end(horizon)
        limit = MAX_SPAN_INSTANCES + 1 if finite else 1
        master = list(itertools.islice(self._master_instances(horizon), limit))
        instances = master + overrides
        if not instances:  # everything excluded: fall back to the VEVENT's own times
            part = self._object.parts[0]
            return part.timing.start.instant, part.timing.end
        first = min(instance.start for instance in instances)
        if not finite or len(master) > MAX_SPAN_INSTANCES:
            return first, None
        return first, max(instance.end for instance in instances)
