"""Plain values that go in and out of the iCalendar mapping, and its errors.

Nothing here knows iCalendar syntax: these are the CRM-side shapes of one calendar
object resource (RFC 4791 4.1: one UID, a master VEVENT and its RECURRENCE-ID overrides).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class InvalidCalendarObject(ValueError):
    """A client's calendar object that the CRM cannot store.

    ``reason`` is one human-readable line fit for a CalDAV error body or a log.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedComponent(InvalidCalendarObject):
    """The object holds a VTODO, VJOURNAL or other component a VEVENT-only calendar refuses.

    CalDAV answers this with CALDAV:supported-calendar-component (RFC 4791 5.3.2.1).
    """


class PatchRefused(ValueError):
    """A CRM-side edit that cannot be applied to the stored object without losing data.

    ``reason`` is one human-readable line (the API answers 409 with it).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Attendee:
    """One ATTENDEE: address without ``mailto:``, its CN, PARTSTAT and ROLE."""

    email: str
    name: str | None
    partstat: str = "NEEDS-ACTION"
    role: str | None = None


@dataclass(frozen=True)
class Organizer:
    """The ORGANIZER: address without ``mailto:`` and an optional CN."""

    email: str
    name: str | None = None


@dataclass(frozen=True)
class EventData:
    """The CRM fields derived from one calendar object resource.

    Times are aware UTC datetimes. An all-day event starts at midnight UTC of its DATE.
    ``span_start``/``span_end`` bound every instance (overrides included); ``span_end``
    is ``None`` when the series never ends. ``tzid`` is the IANA name of DTSTART's zone
    (Windows names mapped), ``None`` for UTC, floating and all-day times.
    """

    uid: str
    title: str
    description: str | None
    location: str | None
    start: datetime
    end: datetime
    tzid: str | None
    all_day: bool
    rrule: str | None
    organizer_email: str | None
    organizer_name: str | None
    attendees: tuple[Attendee, ...]
    span_start: datetime
    span_end: datetime | None
    has_overrides: bool
    sequence: int
    status: str | None


@dataclass(frozen=True)
class RenderInput:
    """A CRM-made entry to render as iCalendar.

    ``start``/``end`` are aware datetimes (converted to UTC). ``tzid`` is an IANA name or
    ``None`` (UTC times). For an all-day entry the UTC dates of ``start`` and ``end`` are
    used, ``end`` exclusive. ``dtstamp``, ``last_modified`` and ``created`` are stored
    values: rendering never reads the clock, so the same input gives the same bytes.
    """

    uid: str
    title: str
    description: str | None
    location: str | None
    start: datetime
    end: datetime
    tzid: str | None
    all_day: bool
    rrule: str | None
    organizer: Organizer | None
    attendees: tuple[Attendee, ...]
    sequence: int
    dtstamp: datetime
    last_modified: datetime | None = None
    created: datetime | None = None


class Keep(enum.Enum):
    """Marks an :class:`EventPatch` field as "leave as it is"."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True)
class EventPatch:
    """A CRM-side edit of the master VEVENT; fields left at ``KEEP`` are not touched.

    ``description``/``location`` set to ``None`` remove the property; ``title`` set to
    ``""`` removes SUMMARY. ``start``/``end`` are aware instants; ``tzid`` (IANA or
    ``None`` for UTC) and ``all_day`` choose how they are written. ``attendees`` replaces
    every ATTENDEE line (an empty tuple removes them).
    """

    title: str | Keep = KEEP
    description: str | Keep | None = KEEP
    location: str | Keep | None = KEEP
    start: datetime | Keep = KEEP
    end: datetime | Keep = KEEP
    tzid: str | Keep | None = KEEP
    all_day: bool | Keep = KEEP
    attendees: tuple[Attendee, ...] | Keep = KEEP  # every ATTENDEE line, replaced

    def changes_timing(self) -> bool:
        """Whether DTSTART/DTEND have to be rewritten."""
        return any(
            value is not KEEP for value in (self.start, self.end, self.tzid, self.all_day)
        )
