"""Points in time as iCalendar writes them: DATE, UTC, floating and TZID date-times.

Reading goes from a parsed value plus its TZID parameter to an aware UTC instant, using
the object's :class:`~gateway.ical.timezones.ZoneResolver` rather than icalendar's own
zone lookup (icalendar caches client VTIMEZONEs process-wide by TZID, so two objects that
both say ``Customized Time Zone`` would share one definition). Writing produces the
DTSTART/DTEND content lines of CRM-made and CRM-patched entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from gateway.ical.contentlines import content_line
from gateway.ical.model import InvalidCalendarObject
from gateway.ical.timezones import UTC_ZONE, Zone, ZoneResolver, is_utc_name

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class When:
    """A DATE or DATE-TIME value: its UTC instant and how it was written.

    ``zone`` is ``None`` for a DATE and for a floating time (both are read as UTC: the
    CRM has no calendar time zone to read them in, and RFC 4791 9.9 leaves that to the
    server); it is :data:`UTC_ZONE` for a ``Z`` time.
    """

    instant: datetime
    wall: datetime  # naive local wall-clock time; midnight for a DATE
    zone: Zone | None
    is_date: bool

    @property
    def local(self) -> datetime:
        """The wall-clock time attached to its zone: what an RRULE repeats (RFC 5545 3.3.10)."""
        info: tzinfo = self.zone.tzinfo if self.zone is not None else UTC
        return self.wall.replace(tzinfo=info)


def utc_instant(value: datetime) -> datetime:
    """An aware datetime converted to UTC; a naive one raises ``ValueError``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"an aware datetime is required, got {value!r}")
    return value.astimezone(UTC)


def read_when(value: Any, tzid: str | None, resolver: ZoneResolver) -> When:
    """Convert a parsed DATE/DATE-TIME (``.dt`` of an icalendar value) to a :class:`When`."""
    if isinstance(value, datetime):
        wall = value.replace(tzinfo=None)
        if tzid is not None and not is_utc_name(tzid):
            zone = resolver.resolve(tzid)
        elif tzid is not None or value.tzinfo is not None:
            zone = UTC_ZONE
        else:
            zone = None
        info: tzinfo = zone.tzinfo if zone is not None else UTC
        try:
            instant = wall.replace(tzinfo=info).astimezone(UTC)
        except (OverflowError, ValueError) as error:
            raise InvalidCalendarObject(f"date-time {value} is out of range") from error
        return When(instant, wall, zone, is_date=False)
    if isinstance(value, date):
        wall = datetime.combine(value, time())
        return When(wall.replace(tzinfo=UTC), wall, None, is_date=True)
    raise InvalidCalendarObject(f"expected a date or date-time, got {value!r}")


def from_local(local: datetime, zone: Zone | None) -> When:
    """A :class:`When` for a wall-clock time computed in ``zone`` (e.g. by an RRULE)."""
    wall = local.replace(tzinfo=None)
    info: tzinfo = zone.tzinfo if zone is not None else UTC
    return When(wall.replace(tzinfo=info).astimezone(UTC), wall, zone, is_date=False)


def format_date(value: date) -> str:
    """``YYYYMMDD`` (zero-padded for any year, unlike strftime on glibc)."""
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def format_wall(value: datetime) -> str:
    """``YYYYMMDDTHHMMSS``: the wall-clock digits, seconds precision."""
    return f"{format_date(value)}T{value.hour:02d}{value.minute:02d}{value.second:02d}"


def format_utc(value: datetime) -> str:
    """``YYYYMMDDTHHMMSSZ`` for an aware datetime (seconds precision)."""
    return format_wall(utc_instant(value)) + "Z"


def all_day_dates(start: datetime, end: datetime) -> tuple[date, date]:
    """The DATE span (end exclusive) of an all-day entry given as UTC instants.

    An end that is not midnight rounds up to the next day; an empty span becomes one day.
    """
    first = utc_instant(start).date()
    end_utc = utc_instant(end)
    last = end_utc.date() + (ONE_DAY if end_utc.time() != time() else timedelta(0))
    return first, max(last, first + ONE_DAY)


def when_line(name: str, instant: datetime, tzid: str | None, all_day: bool) -> str:
    """A DTSTART/DTEND-style content line: VALUE=DATE, TZID wall time, or UTC ``Z``."""
    if all_day:
        day = utc_instant(instant).date()
        return content_line(name, format_date(day), (("VALUE", "DATE"),))
    if tzid is None:
        return content_line(name, format_utc(instant))
    local = utc_instant(instant).astimezone(ZoneInfo(tzid))
    return content_line(name, format_wall(local), (("TZID", tzid),))
