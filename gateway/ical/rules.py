"""RRULE values (RFC 5545 3.3.10) made safe to expand: validated, and always bounded.

A :class:`Rule` keeps COUNT apart and every expansion names a stop instant: the rule runs
with UNTIL = min(its own UNTIL, stop), and COUNT is applied to what comes out, which gives
the same instances. dateutil checks UNTIL only against a match it found, so a rule with no
match left (``FREQ=DAILY;BYWEEKNO=53;BYMONTH=1;BYDAY=MO``) would search every period up to
year 9999: the search is metered (:class:`_MeteredRule`), ends once it is past the stop and
is charged to the expansion's :class:`~gateway.ical.budget.Budget`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from dateutil.rrule import DAILY, HOURLY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr, weekday

from gateway.ical.budget import INSTANCE_COST, SEARCH_COST, Budget
from gateway.ical.model import InvalidCalendarObject
from gateway.ical.timing import When, format_utc, from_local

# Sub-hourly rules would take dateutil minutes to rule out; no calendar client writes them.
_REFUSED_FREQUENCIES = frozenset({"SECONDLY", "MINUTELY"})
# BYEASTER is a dateutil extension, not iCalendar (and the meter reads that attribute).
_REFUSED_PARTS = frozenset({"BYEASTER"})
# A floating all-day instance begins somewhere between UTC+14 and UTC-12.
_EARLIEST_OFFSET = timedelta(hours=14)
_DATE = re.compile(r"^\d{8}$")
_FLOATING = re.compile(r"^\d{8}T\d{6}$")
_UTC = re.compile(r"^\d{8}T\d{6}Z$")
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # leap February: the most


@dataclass(frozen=True)
class Rule:
    """One RRULE of a master: dateutil's rule without COUNT, plus COUNT and UNTIL (UTC)."""

    text: str
    base: rrule
    count: int | None
    until: datetime | None

    @property
    def endless(self) -> bool:
        """Whether the rule has neither COUNT nor UNTIL."""
        return self.count is None and self.until is None

    def starts(
        self, stop: datetime, budget: Budget, after: datetime | None = None
    ) -> Iterator[datetime]:
        """Start times (aware, in DTSTART's zone) up to ``stop``, at most COUNT of them.

        With ``after``, a rule without COUNT may begin at the period holding ``after``
        instead of at DTSTART (so far-future windows cost what they return); earlier starts
        may still come. Charged to ``budget``; when it runs out the starts end early, and
        ``budget.stopped_at`` says up to where they were complete.
        """
        bound = stop if self.until is None else min(stop, self.until)
        base = self.base
        if after is not None and self.count is None:
            base = _skip_to(base, after)
        for produced, start in enumerate(_metered(base, bound, budget), start=1):
            yield start
            if produced == self.count:
                return
            if not budget.charge(INSTANCE_COST):
                budget.stop(start)
                return


    def search_ends(self, budget: Budget) -> bool:
        """Whether an unbounded expansion of the rule ends within ``budget``.

        That is what a CalDAV server expanding it without a stop does (Radicale on every
        PUT): for a never-ending rule, find its first match; for COUNT, find every instance;
        for UNTIL, every instance and the first match after UNTIL. A rule with no match
        left is searched up to year 9999 (``FREQ=DAILY;BYWEEKNO=53;BYMONTH=1;BYDAY=MO``).
        """
        limit = datetime(9999, 12, 31, tzinfo=UTC)
        for produced, start in enumerate(_metered(self.base, limit, budget), start=1):
            if self.endless or produced == self.count:
                return True
            if self.until is not None and start > self.until:
                return True
            if not budget.charge(SEARCH_COST):
                return False
        return not budget.exhausted


class _Stop(Exception):
    """Raised inside dateutil's search to end it (past the stop, or out of budget)."""


class _Meter:
    """Counts the months (YEARLY: years) dateutil's search enters, and charges for them.

    ``_iterinfo.rebuild`` reads the rule's ``_byeaster`` each time the search moves to a new
    month (a new year for YEARLY), whether or not that month matches; ``_iter`` reads it once
    before. Each move advances at least ``advance`` months, so after n moves the search is no
    earlier than ``origin`` + n * ``advance`` months: past ``stop``, nothing is left to find.
    """

    _READS_BEFORE_SEARCH = 1

    def __init__(self, base: rrule, stop: datetime, budget: Budget) -> None:
        start: datetime = base._dtstart  # type: ignore[attr-defined]
        frequency: int = base._freq  # type: ignore[attr-defined]
        # Where the first period begins: a YEARLY one is the whole year.
        self.origin = start.replace(month=1 if frequency == YEARLY else start.month, day=1,
                                    hour=0, minute=0, second=0, microsecond=0)
        self.stop = stop if stop.year < 9999 else None  # None: dateutil ends at year 9999
        self.budget = budget
        self.cost = _month_cost(base)
        interval: int = base._interval  # type: ignore[attr-defined]
        self.advance = {YEARLY: 12 * interval, MONTHLY: interval}.get(frequency, 1)
        self.reads = 0

    def position(self) -> datetime | None:
        """The earliest the search can be now (None: past year 9999)."""
        moves = max(0, self.reads - self._READS_BEFORE_SEARCH - 1)
        months = self.origin.month - 1 + moves * self.advance
        year = self.origin.year + months // 12
        if year > 9999:
            return None
        return self.origin.replace(year=year, month=months % 12 + 1)

    def read(self) -> None:
        self.reads += 1
        if self.reads <= self._READS_BEFORE_SEARCH:
            return
        position = self.position()
        if position is None or (self.stop is not None and position > self.stop):
            raise _Stop
        if not self.budget.charge(self.cost):
            self.budget.stop(position)
            raise _Stop


class _MeteredRule(rrule):
    """dateutil's rrule whose search reports each month it enters to a :class:`_Meter`."""

    def __init__(self, meter: _Meter, **kwargs: Any) -> None:
        self._meter: _Meter | None = None  # rrule.__init__ reads _byeaster too
        super().__init__(**kwargs)
        self._meter = meter

    @property
    def _byeaster(self) -> Any:
        if self._meter is not None:
            self._meter.read()
        return self._easter

    @_byeaster.setter
    def _byeaster(self, value: Any) -> None:
        self._easter = value


def _metered(base: rrule, stop: datetime, budget: Budget) -> Iterator[datetime]:
    """``base``'s starts up to ``stop`` (UNTIL), the search metered and charged."""
    if budget.exhausted:
        return
    meter = _Meter(base, stop, budget)
    start: datetime = base._dtstart  # type: ignore[attr-defined]
    arguments: dict[str, Any] = {
        "freq": base._freq, "dtstart": start,  # type: ignore[attr-defined]
        "interval": base._interval, "wkst": base._wkst,  # type: ignore[attr-defined]
        **base._original_rule,  # type: ignore[attr-defined]
        "until": stop.astimezone(start.tzinfo) if stop.year < 9999 else None, "count": None,
    }
    try:
        yield from _MeteredRule(meter, **arguments)
    except _Stop:
        return


def _skip_to(base: rrule, after: datetime) -> rrule:
    """``base`` starting at the first of its periods that holds ``after`` (or ``base``).

    Same instances from there on: the period is a whole number of INTERVALs from DTSTART's,
    begins at its first moment, and every BY part dateutil derived from DTSTART is passed
    explicitly, so nothing is derived from the new start.
    """
    start: datetime = base._dtstart  # type: ignore[attr-defined]
    local = after.astimezone(start.tzinfo).replace(tzinfo=None)
    wall = start.replace(tzinfo=None)
    if local <= wall:
        return base
    interval: int = base._interval  # type: ignore[attr-defined]
    frequency: int = base._freq  # type: ignore[attr-defined]
    midnight = wall.replace(hour=0, minute=0, second=0)
    if frequency == YEARLY:
        years = (local.year - wall.year) // interval * interval
        anchor = midnight.replace(year=wall.year + years, month=1, day=1)
    elif frequency == MONTHLY:
        months = ((local.year - wall.year) * 12 + local.month - wall.month) // interval * interval
        index = wall.month - 1 + months
        anchor = midnight.replace(year=wall.year + index // 12, month=index % 12 + 1, day=1)
    elif frequency == WEEKLY:
        wkst: int = base._wkst  # type: ignore[attr-defined]
        first = midnight - timedelta(days=(wall.weekday() - wkst) % 7)
        weeks = (local - first).days // 7 // interval * interval
        anchor = first + timedelta(weeks=weeks)
    elif frequency == DAILY:
        days = (local - midnight).days // interval * interval
        anchor = midnight + timedelta(days=days)
    else:
        hour = wall.replace(minute=0, second=0)
        hours = int((local - hour).total_seconds() // 3600) // interval * interval
        anchor = hour + timedelta(hours=hours)
    if anchor <= wall or anchor.year > 9998:
        return base
    weekdays = [*(base._byweekday or ()),  # type: ignore[attr-defined]
                *(weekday(day, n) for day, n in base._bynweekday or ())]  # type: ignore[attr-defined]
    month_days = [*(base._bymonthday or ()), *(base._bynmonthday or ())]  # type: ignore[attr-defined]
    return rrule(
        base._freq,  # type: ignore[attr-defined]
        dtstart=anchor.replace(tzinfo=start.tzinfo), interval=interval,
        wkst=base._wkst, until=base._until,  # type: ignore[attr-defined]
        bysetpos=base._bysetpos, bymonth=base._bymonth,  # type: ignore[attr-defined]
        bymonthday=month_days or None, byyearday=base._byyearday,  # type: ignore[attr-defined]
        byweekno=base._byweekno, byweekday=weekdays or None,  # type: ignore[attr-defined]
        byhour=base._byhour, byminute=base._byminute,  # type: ignore[attr-defined]
        bysecond=base._bysecond,  # type: ignore[attr-defined]
    )


def _month_cost(base: rrule) -> int:
    """Work units of one month (YEARLY: one year) of dateutil's search for ``base``.

    Measured per frequency on a rule that never matches (bench/recurrence.py), times the
    BYSETPOS positions looked up; an HOURLY rule with BYSETPOS also builds every candidate
    time of every hour (without, each candidate time is an instance, charged as such).
    """
    positions = 1 + len(base._bysetpos or ())  # type: ignore[attr-defined]
    frequency: int = base._freq  # type: ignore[attr-defined]
    if frequency != HOURLY:
        return _SEARCH_MONTH[frequency] * positions
    minutes = len(base._byminute or (0,))  # type: ignore[attr-defined]
    seconds = len(base._bysecond or (0,))  # type: ignore[attr-defined]
    interval: int = base._interval  # type: ignore[attr-defined]
    candidates = minutes * seconds + positions if positions > 1 else 1
    return (31 * 24 // interval + 1) * 3 * candidates


# Units of a month's search with no match (YEARLY: a year's): about a microsecond each.
_SEARCH_MONTH = {YEARLY: 50, MONTHLY: 8, WEEKLY: 25, DAILY: 80}


def _until(value: str, start: When) -> datetime:
    """UNTIL as an aware UTC instant, accepting the forms clients actually write."""
    if _DATE.match(value):
        day = date(int(value[:4]), int(value[4:6]), int(value[6:]))
        if start.is_date:
            return datetime.combine(day, time(), UTC)
        # A DATE on a timed series (not RFC, but written): that whole day counts.
        return from_local(datetime.combine(day, time(23, 59, 59)), start.zone).instant
    if _FLOATING.match(value):
        wall = datetime.strptime(value, "%Y%m%dT%H%M%S")
        if start.is_date:
            return datetime.combine(wall.date(), time(), UTC)
        return from_local(wall, start.zone).instant
    if _UTC.match(value):
        instant = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if start.is_date:
            # A client's local midnight in UTC still means that (floating) date.
            return datetime.combine((instant + _EARLIEST_OFFSET).date(), time(), UTC)
        return instant
    raise ValueError(f"UNTIL {value!r} is not a date or date-time")


def _check_days_exist(text: str, months: list[int], month_days: list[int]) -> None:
    """Refuse BYMONTH/BYMONTHDAY pairs that name no real day ("30 February").

    dateutil would search every year up to 9999 for them, seconds on each PUT.
    """
    if not month_days:
        return
    for month in months or range(1, 13):
        if not 1 <= month <= 12:
            return  # dateutil reports the bad month itself
        length = _MONTH_DAYS[month - 1]
        if any(1 <= abs(day) <= length for day in month_days):
            return
    raise InvalidCalendarObject(f"RRULE {text!r} never occurs: no such day of the month")


def build_rule(text: str, start: When) -> Rule:
    """Validate an RRULE value for a series starting at ``start``.

    Raises InvalidCalendarObject (with the reason) for unparsable rules, COUNT together
    with UNTIL, sub-hourly frequencies, several BYSECOND values and BYEASTER.
    """
    parts: list[str] = []
    count: int | None = None
    until: datetime | None = None
    months: list[int] = []
    month_days: list[int] = []
    try:
        for item in text.strip().removeprefix("RRULE:").split(";"):
            key, _, value = item.partition("=")
            key, value = key.strip().upper(), value.strip()
            if key == "FREQ" and value.upper() in _REFUSED_FREQUENCIES:
                raise InvalidCalendarObject(
                    f"RRULE {text!r}: sub-hourly recurrence is not supported"
                )
            if key in _REFUSED_PARTS:
                raise InvalidCalendarObject(f"RRULE {text!r}: {key} is not an iCalendar rule part")
            if key == "BYSECOND" and "," in value:
                raise InvalidCalendarObject(
                    f"RRULE {text!r}: sub-minute recurrence is not supported"
                )
            if key == "COUNT":
                count = int(value)
                if count < 1:
                    raise ValueError("COUNT must be at least 1")
            elif key == "UNTIL":
                until = _until(value, start)
            else:
                parts.append(f"{key}={value}")
                if key == "BYMONTH":
                    months = [int(item) for item in value.split(",")]
                elif key == "BYMONTHDAY":
                    month_days = [int(item) for item in value.split(",")]
        if count is not None and until is not None:
            raise InvalidCalendarObject(f"RRULE {text!r} has both COUNT and UNTIL")
        _check_days_exist(text, months, month_days)
        if until is not None:
            parts.append(f"UNTIL={format_utc(until)}")
        base = rrulestr(";".join(parts), dtstart=start.local)
    except InvalidCalendarObject:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as error:
        raise InvalidCalendarObject(f"unparsable RRULE {text!r}: {error}") from error
    if not isinstance(base, rrule):
        raise InvalidCalendarObject(f"unparsable RRULE {text!r}")
    return Rule(text, base, count, until)
