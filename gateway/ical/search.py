"""dateutil's rule search, metered, charged to a work budget, and started late on request.

dateutil checks UNTIL only against a match it found, so a rule with no match left
(``FREQ=DAILY;BYWEEKNO=53;BYMONTH=1;BYDAY=MO``) searches every period up to year 9999. Here
the search reports each month it enters (:class:`_Meter`), ends once it is past the stop,
and stops when the budget runs out; :func:`skip_to` starts it at a later period, so a
far-future window costs what it returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from dateutil.rrule import DAILY, HOURLY, MONTHLY, WEEKLY, YEARLY, rrule, weekday

from gateway.ical.budget import Budget


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


def metered(base: rrule, stop: datetime, budget: Budget) -> Iterator[datetime]:
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


def skip_to(base: rrule, after: datetime) -> rrule:
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
