"""RRULE values (RFC 5545 3.3.10) made safe to expand: validated, and always bounded.

A :class:`Rule` keeps COUNT apart and every expansion names a stop instant: the rule runs
with UNTIL = min(its own UNTIL, stop), and COUNT is applied to what comes out, which gives
the same instances. The search itself runs metered and charged to the expansion's
:class:`~gateway.ical.budget.Budget` (:mod:`gateway.ical.search`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from dateutil.rrule import rrule, rrulestr

from gateway.ical.budget import INSTANCE_COST, SEARCH_COST, Budget
from gateway.ical.model import InvalidCalendarObject
from gateway.ical.search import metered, skip_to
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
            base = skip_to(base, after)
        for produced, start in enumerate(metered(base, bound, budget), start=1):
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
        for produced, start in enumerate(metered(self.base, limit, budget), start=1):
            if self.endless or produced == self.count:
                return True
            if self.until is not None and start > self.until:
                return True
            if not budget.charge(SEARCH_COST):
                return False
        return not budget.exhausted


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
