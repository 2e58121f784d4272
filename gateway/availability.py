"""Availability: the free time common to several users, within each one's working hours.

Working hours are per user (days of the week, a start and end time of day, an IANA zone),
written ``"Mon-Fri 09:00-17:00 Europe/Berlin"``; a user without their own has the configured
default (``availability.working_hours``). Each day's hours are turned into UTC instants in the
user's own zone (zoneinfo), so they follow daylight saving time.

:func:`free_slots` is pure: busy periods and working hours in, the common free windows at
least ``duration`` long out, each as long as it is free (a booking tool cuts it into slots).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from gateway.busy import busy_periods_of, merged
from gateway.errors import Invalid
from gateway.models import User
from gateway.users import get_user

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_SHAPE = re.compile(
    r"\s*(?P<days>[A-Za-z,\-]+)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})"
    r"\s+(?P<tz>\S+)\s*")

Period = tuple[datetime, datetime]


@dataclass(frozen=True)
class WorkingHours:
    days: frozenset[int]  # Monday 0 .. Sunday 6
    start: time
    end: time
    tz: str

    def __str__(self) -> str:
        return f"{_days_text(self.days)} {self.start:%H:%M}-{self.end:%H:%M} {self.tz}"

    def as_json(self) -> dict[str, Any]:
        return {"days": sorted(self.days), "start": f"{self.start:%H:%M}",
                "end": f"{self.end:%H:%M}", "tz": self.tz}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> WorkingHours:
        return cls(frozenset(int(day) for day in value["days"]), _clock(value["start"]),
                   _clock(value["end"]), str(value["tz"]))

    def windows(self, start: datetime, end: datetime) -> list[Period]:
        """The working periods overlapping [start, end), clipped to it, in UTC."""
        zone = ZoneInfo(self.tz)
        first = start.astimezone(zone).date() - timedelta(days=1)
        last = end.astimezone(zone).date() + timedelta(days=1)
        found: list[Period] = []
        day = first
        while day <= last:
            if day.weekday() in self.days:
                low = _instant(day, self.start, zone)
                high = _instant(day, self.end, zone)
                low, high = max(low, start), min(high, end)
                if low < high:
                    found.append((low, high))
            day += timedelta(days=1)
        return found


def _instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    # A wall time skipped by DST (e.g. 02:30 on the spring-forward day) is taken as zoneinfo
    # resolves it (fold 0); the UTC round trip lands it on a real instant.
    return datetime.combine(day, clock, zone).astimezone(UTC)


def _clock(text: str) -> time:
    hours, _, minutes = text.partition(":")
    try:
        return time(int(hours), int(minutes))
    except ValueError:
        raise Invalid(f"{text!r} is not a time of day (HH:MM)") from None


def _days_text(days: frozenset[int]) -> str:
    ordered = sorted(days)
    if ordered and ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{DAY_NAMES[ordered[0]]}-{DAY_NAMES[ordered[-1]]}"
    return ",".join(DAY_NAMES[day] for day in ordered)


def _parse_days(text: str) -> frozenset[int]:
    names = {name.lower(): index for index, name in enumerate(DAY_NAMES)}
    days: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        if low.lower() not in names or (high and high.lower() not in names):
            raise Invalid(f"{part!r} is not a day or range of days (Mon, Tue, …, Mon-Fri)")
        first = names[low.lower()]
        last = names[high.lower()] if high else first
        if last < first:
            raise Invalid(f"{part!r}: a range of days runs forward (Mon-Fri)")
        days.update(range(first, last + 1))
    return frozenset(days)


def parse_working_hours(text: str) -> WorkingHours:
    """``"Mon-Fri 09:00-17:00 Europe/Berlin"`` (days may be listed: ``Mon,Wed,Fri``)."""
    shape = _SHAPE.fullmatch(text)
    if shape is None:
        raise Invalid(f"{text!r} is not working hours like 'Mon-Fri 09:00-17:00 Europe/Berlin'")
    start, end = _clock(shape["start"]), _clock(shape["end"])
    if end <= start:
        raise Invalid(f"{text!r}: the working day ends before it starts")
    try:
        ZoneInfo(shape["tz"])
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"{shape['tz']!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
    return WorkingHours(_parse_days(shape["days"]), start, end, shape["tz"])


def subtract(windows: Iterable[Period], busy: Sequence[Period]) -> list[Period]:
    """``windows`` (sorted, disjoint) minus ``busy`` (merged)."""
    result: list[Period] = []
    index = 0
    for low, high in windows:
        cursor = low
        while index < len(busy) and busy[index][1] <= cursor:
            index += 1
        probe = index
        while probe < len(busy) and busy[probe][0] < high:
            if busy[probe][0] > cursor:
                result.append((cursor, busy[probe][0]))
            cursor = max(cursor, busy[probe][1])
            probe += 1
        if cursor < high:
            result.append((cursor, high))
    return result


def intersect(first: Sequence[Period], second: Sequence[Period]) -> list[Period]:
    """The time in both of two sorted, disjoint lists of periods."""
    result: list[Period] = []
    i = j = 0
    while i < len(first) and j < len(second):
        low = max(first[i][0], second[j][0])
        high = min(first[i][1], second[j][1])
        if low < high:
            result.append((low, high))
        if first[i][1] <= second[j][1]:
            i += 1
        else:
            j += 1
    return result


def free_slots(people: Sequence[tuple[WorkingHours, Sequence[Period]]], start: datetime,
               end: datetime, duration: timedelta) -> list[Period]:
    """The windows in [start, end), at least ``duration`` long, in which every person is in
    working hours and not busy. ``people``: each one's working hours and busy periods."""
    if not people or end <= start or duration <= timedelta(0):
        return []
    common: list[Period] | None = None
    for hours, busy in people:
        free = subtract(hours.windows(start, end), merged(list(busy)))
        common = free if common is None else intersect(common, free)
        if not common:
            return []
    assert common is not None
    return [(low, high) for low, high in common if high - low >= duration]


# --- queries over the store -----------------------------------------------------------------


def user_hours(user: User, default: str) -> WorkingHours:
    """The user's working hours, or ``default`` (``availability.working_hours``)."""
    if user.working_hours:
        return WorkingHours.from_json(user.working_hours)
    return parse_working_hours(default)


def set_working_hours(session: Session, user: User, text: str | None) -> None:
    """Set the user's working hours (None or "": back to the configured default)."""
    user.working_hours = parse_working_hours(text).as_json() if text else None
    session.flush()


def check_window(start: datetime, end: datetime, max_days: int) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise Invalid("give the window's start and end with a UTC offset or Z")
    if end <= start:
        raise Invalid("the window ends before it starts")
    if end - start > timedelta(days=max_days):
        raise Invalid(f"the window is longer than {max_days} days (availability.max_days)")


def find_availability(session: Session, usernames: Sequence[str], start: datetime,
                      end: datetime, duration: timedelta, *, default_hours: str,
                      max_days: int) -> list[Period]:
    """The free windows common to the named users (see :func:`free_slots`)."""
    check_window(start, end, max_days)
    if not usernames:
        raise Invalid("name at least one user")
    if duration <= timedelta(0) or duration > end - start:
        raise Invalid("the duration must be positive and fit in the window")
    users = [get_user(session, username) for username in dict.fromkeys(usernames)]
    busy = busy_periods_of(session, [user.id for user in users], start, end)
    people = [(user_hours(user, default_hours), busy[user.id]) for user in users]
    return free_slots(people, start.astimezone(UTC), end.astimezone(UTC), duration)
