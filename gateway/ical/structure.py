"""Loading and validating one calendar object resource (RFC 4791 4.1).

A resource holds one VCALENDAR with VEVENTs of a single UID: at most one master (no
RECURRENCE-ID) and any number of overrides, plus the VTIMEZONEs they use. This module
checks that shape and reads each VEVENT's timing; :mod:`parse`, :mod:`expand` and
:mod:`patch` all start here, so a client object is judged the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from icalendar import Calendar, Component, Event, Timezone

from gateway.ical.model import InvalidCalendarObject, UnsupportedComponent
from gateway.ical.timezones import ZoneResolver
from gateway.ical.timing import ONE_DAY, When, from_local, read_when

ALLOWED_COMPONENTS = frozenset({"VEVENT", "VTIMEZONE"})
# Properties whose parse failure makes the timing of the event unknowable.
_TIMING_PROPERTIES = ("DTSTART", "DTEND", "DURATION", "RECURRENCE-ID", "RRULE", "RDATE", "EXDATE")


@dataclass(frozen=True)
class Timing:
    """When one VEVENT (or one instance of it) starts and how long it lasts.

    ``nominal`` is true when DURATION gave the length: its days are calendar days in the
    start's zone, so an instance across a DST change is 23 or 25 hours long (RFC 5545
    3.8.5.3); a DTEND gives an exact length instead.
    """

    start: When
    length: timedelta
    nominal: bool = False

    @property
    def end(self) -> datetime:
        """The UTC end of the VEVENT itself."""
        return self.end_for(self.start)

    def end_for(self, start: When) -> datetime:
        """The UTC end of an instance starting at ``start``."""
        if start.is_date or not self.nominal or not self.length.days:
            return start.instant + self.length
        days = timedelta(days=self.length.days)
        return from_local(start.wall + days, start.zone).instant + (self.length - days)


@dataclass(frozen=True)
class Part:
    """One VEVENT of the object with its timing read."""

    event: Event
    timing: Timing
    recurrence_id: When | None = None
    this_and_future: bool = False


@dataclass(frozen=True)
class CalendarObject:
    """A validated calendar object: its UID, master, overrides and zone resolver."""

    calendar: Calendar
    uid: str
    master: Part | None
    overrides: tuple[Part, ...]  # ordered by RECURRENCE-ID
    resolver: ZoneResolver

    @property
    def parts(self) -> tuple[Part, ...]:
        """The master (if any) followed by the overrides."""
        return ((self.master,) if self.master else ()) + self.overrides


def prop(component: Component, name: str) -> Any:
    """A property's parsed value (or list of values, if repeated), ``None`` when absent.

    Typed ``Any``: icalendar's value classes share no common interface to narrow to.
    """
    return component.get(name)


def values(component: Component, name: str) -> list[Any]:
    """Every value of a property that may occur more than once, in order."""
    found = prop(component, name)
    if found is None:
        return []
    return list(found) if isinstance(found, list) else [found]


def tzid_of(value: Any) -> str | None:
    """The TZID parameter of a parsed property value, if any."""
    params = getattr(value, "params", None)
    tzid = params.get("TZID") if params is not None else None
    return str(tzid) if tzid else None


_SINGLE_IN_EVENT = ("UID", "DTSTART", "DTEND", "DURATION", "RECURRENCE-ID", "SEQUENCE", "STATUS")


def _parse(text: str) -> Calendar:
    if not isinstance(text, str) or not text.strip():
        raise InvalidCalendarObject("not an iCalendar object: the body is empty")
    if "\x00" in text:  # RFC 5545 3.1 allows no control characters (and PostgreSQL no NUL)
        raise InvalidCalendarObject("not an iCalendar object: it contains a NUL character")
    try:
        components = Calendar.from_ical(text, multiple=True)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        # AttributeError: icalendar's parser on some malformed input (a VTIMEZONE with two
        # TZIDs), found by tests/test_caldav_fuzz.py.
        raise InvalidCalendarObject(f"not an iCalendar object: {error}") from error
    if len(components) != 1 or components[0].name != "VCALENDAR":
        names = ", ".join(component.name for component in components) or "nothing"
        raise InvalidCalendarObject(f"expected one VCALENDAR, found {names}")
    calendar = components[0]
    assert isinstance(calendar, Calendar)
    return calendar


def _check_components(calendar: Calendar) -> list[Event]:
    events: list[Event] = []
    for component in calendar.subcomponents:
        name = (component.name or "").upper()
        if isinstance(component, Event):
            events.append(component)
        elif name not in ALLOWED_COMPONENTS and not name.startswith("X-"):
            raise UnsupportedComponent(
                f"{name} components are not supported: this calendar holds events only"
            )
    if not events:
        raise InvalidCalendarObject("the object has no VEVENT")
    return events


def _check_uid(events: list[Event]) -> str:
    uids: list[str] = []
    for event in events:
        uid = str(prop(event, "UID") or "").strip()
        if not uid:
            raise InvalidCalendarObject("a VEVENT has no UID")
        if uid not in uids:
            uids.append(uid)
    if len(uids) > 1:
        raise InvalidCalendarObject(
            "one object must hold one event: found UIDs " + ", ".join(repr(u) for u in uids)
        )
    return uids[0]


def _timing(event: Event, resolver: ZoneResolver) -> Timing:
    for name, message in event.errors:
        if name in _TIMING_PROPERTIES:
            raw = prop(event, name)
            raw_text = raw[0] if isinstance(raw, list) else raw
            label = "unparsable RRULE" if name == "RRULE" else f"unparsable {name}"
            raise InvalidCalendarObject(f"{label} {str(raw_text)!r}: {message}")
    dtstart = prop(event, "DTSTART")
    if dtstart is None:
        raise InvalidCalendarObject("a VEVENT has no DTSTART")
    start = read_when(dtstart.dt, tzid_of(dtstart), resolver)
    dtend = prop(event, "DTEND")
    duration = prop(event, "DURATION")
    if dtend is not None:
        end = read_when(dtend.dt, tzid_of(dtend), resolver)
        if end.instant < start.instant:
            raise InvalidCalendarObject(f"DTEND {dtend.dt} is before DTSTART {dtstart.dt}")
        length = end.instant - start.instant
        if start.is_date and not length:
            length = ONE_DAY  # DTEND = DTSTART on a DATE: clients show one day
        return Timing(start, length)
    if duration is not None:
        length = duration.dt
        if not isinstance(length, timedelta):
            raise InvalidCalendarObject(f"DURATION {length!r} is not a duration")
        if length < timedelta(0):
            raise InvalidCalendarObject(f"DURATION {duration.to_ical().decode()} is negative")
        return Timing(start, length, nominal=True)
    return Timing(start, ONE_DAY if start.is_date else timedelta(0))


def _part(event: Event, resolver: ZoneResolver) -> Part:
    timing = _timing(event, resolver)
    recurrence = prop(event, "RECURRENCE-ID")
    if recurrence is None:
        return Part(event, timing)
    if prop(event, "RRULE") is not None:
        raise InvalidCalendarObject("an override (RECURRENCE-ID) must not have an RRULE")
    rid = read_when(recurrence.dt, tzid_of(recurrence), resolver)
    range_param = str(recurrence.params.get("RANGE", "")).upper()
    return Part(event, timing, rid, this_and_future=range_param == "THISANDFUTURE")


def _check_single(component: Component, names: tuple[str, ...]) -> None:
    """RFC 5545 3.6.1 and 3.6.5: these properties MUST NOT occur more than once."""
    for name in names:
        if isinstance(component.get(name), list):
            raise InvalidCalendarObject(f"a {component.name} has more than one {name}")


def load_object(text: str) -> CalendarObject:
    """Parse and validate a calendar object resource; InvalidCalendarObject when unfit."""
    calendar = _parse(text)
    events = _check_components(calendar)
    for event in events:
        _check_single(event, _SINGLE_IN_EVENT)
    for component in calendar.subcomponents:
        if isinstance(component, Timezone):
            _check_single(component, ("TZID",))
    uid = _check_uid(events)
    vtimezones = {
        str(component["TZID"]): component
        for component in calendar.subcomponents
        if isinstance(component, Timezone) and "TZID" in component
    }
    resolver = ZoneResolver(vtimezones)
    master: Part | None = None
    overrides: dict[datetime, Part] = {}
    for event in events:
        part = _part(event, resolver)
        if part.recurrence_id is None:
            if master is not None:
                raise InvalidCalendarObject("two VEVENTs of one UID have no RECURRENCE-ID")
            master = part
            continue
        key = part.recurrence_id.instant
        if key in overrides:
            raise InvalidCalendarObject(
                f"two overrides have RECURRENCE-ID {prop(event, 'RECURRENCE-ID').dt}"
            )
        overrides[key] = part
    ordered = tuple(overrides[key] for key in sorted(overrides))
    return CalendarObject(calendar, uid, master, ordered, resolver)
