"""Loading and validating one calendar object resource (RFC 4791 4.1).

A resource holds one VCALENDAR with VEVENTs (or VTODOs: tasks) of a single UID: at most one
master (no RECURRENCE-ID) and any number of overrides, plus the VTIMEZONEs they use. This
module checks that shape and reads each component's timing; :mod:`parse`, :mod:`expand` and
:mod:`patch` all start here, so a client object is judged the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from icalendar import Calendar, Component, Event, Timezone, Todo

from gateway.ical.model import InvalidCalendarObject, UnsupportedComponent
from gateway.ical.timezones import ZoneResolver
from gateway.ical.timing import ONE_DAY, When, from_local, read_when

ALLOWED_COMPONENTS = frozenset({"VEVENT", "VTODO", "VTIMEZONE"})
# Properties whose parse failure makes the timing of the event unknowable.
_TIMING_PROPERTIES = ("DTSTART", "DTEND", "DURATION", "RECURRENCE-ID", "RRULE", "RDATE", "EXDATE")
_TODO_TIMING = (*_TIMING_PROPERTIES, "DUE", "COMPLETED")


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
    """One VEVENT (or VTODO) of the object with its timing read."""

    event: Component
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
    component: str = "VEVENT"  # or "VTODO"

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
_SINGLE_IN_TODO = (*_SINGLE_IN_EVENT, "DUE", "COMPLETED", "PRIORITY", "PERCENT-COMPLETE")
# Where a VTODO with neither DTSTART nor DUE is "placed" for the code that wants an instant;
# its time-range index comes from gateway.ical.task_range, not from this.
TASK_PLACEHOLDER = datetime(1900, 1, 1)


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


def _check_components(calendar: Calendar) -> tuple[str, list[Component]]:
    """The object's kind (VEVENT or VTODO) and its components of that kind."""
    events: list[Component] = []
    todos: list[Component] = []
    for component in calendar.subcomponents:
        name = (component.name or "").upper()
        if isinstance(component, Event):
            events.append(component)
        elif isinstance(component, Todo):
            todos.append(component)
        elif name not in ALLOWED_COMPONENTS and not name.startswith("X-"):
            raise UnsupportedComponent(
                f"{name} components are not supported: calendars hold events or tasks only"
            )
    if events and todos:
        raise InvalidCalendarObject("one object must hold events or tasks, not both")
    if todos:
        return "VTODO", todos
    if not events:
        raise InvalidCalendarObject("the object has no VEVENT")
    return "VEVENT", events


def _check_uid(events: list[Component]) -> str:
    uids: list[str] = []
    for event in events:
        uid = str(prop(event, "UID") or "").strip()
        if not uid:
            raise InvalidCalendarObject(f"a {event.name} has no UID")
        if uid not in uids:
            uids.append(uid)
    if len(uids) > 1:
        raise InvalidCalendarObject(
            "one object must hold one event: found UIDs " + ", ".join(repr(u) for u in uids)
        )
    return uids[0]


def _check_parsed(event: Component, names: tuple[str, ...] = _TIMING_PROPERTIES) -> None:
    for name, message in event.errors:
        if name in names:
            raw = prop(event, name)
            raw_text = raw[0] if isinstance(raw, list) else raw
            label = "unparsable RRULE" if name == "RRULE" else f"unparsable {name}"
            raise InvalidCalendarObject(f"{label} {str(raw_text)!r}: {message}")


def _todo_timing(todo: Component, resolver: ZoneResolver) -> Timing:
    """A VTODO's DTSTART and length (to DUE, or DURATION); without DTSTART, its DUE as an
    instant, or a placeholder instant when it has neither (RFC 5545 3.6.2 allows both
    absent). Only a VTODO with DTSTART may recur (RFC 5545 3.8.5.3)."""
    _check_parsed(todo, _TODO_TIMING)
    dtstart, due, duration = prop(todo, "DTSTART"), prop(todo, "DUE"), prop(todo, "DURATION")
    if due is not None and duration is not None:
        raise InvalidCalendarObject("a VTODO has both DUE and DURATION")
    due_when = read_when(due.dt, tzid_of(due), resolver) if due is not None else None
    if dtstart is None:
        if prop(todo, "RRULE") is not None:
            raise InvalidCalendarObject("a recurring VTODO needs a DTSTART")
        if duration is not None:
            raise InvalidCalendarObject("a VTODO with DURATION needs a DTSTART")
        if due_when is not None:
            return Timing(due_when, timedelta(0))
        return Timing(read_when(TASK_PLACEHOLDER, None, resolver), timedelta(0))
    start = read_when(dtstart.dt, tzid_of(dtstart), resolver)
    if due_when is not None:
        if due_when.instant < start.instant:
            raise InvalidCalendarObject(f"DUE {due.dt} is before DTSTART {dtstart.dt}")
        return Timing(start, due_when.instant - start.instant)
    if duration is not None:
        length = duration.dt
        if not isinstance(length, timedelta) or length < timedelta(0):
            raise InvalidCalendarObject(f"DURATION {duration.to_ical().decode()} is not a "
                                        "positive duration")
        return Timing(start, length, nominal=True)
    return Timing(start, timedelta(0))


def _timing(event: Component, resolver: ZoneResolver) -> Timing:
    if isinstance(event, Todo):
        return _todo_timing(event, resolver)
    _check_parsed(event)
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


def _part(event: Component, resolver: ZoneResolver) -> Part:
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
    kind, events = _check_components(calendar)
    for event in events:
        _check_single(event, _SINGLE_IN_TODO if kind == "VTODO" else _SINGLE_IN_EVENT)
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
                raise InvalidCalendarObject(f"two {kind}s of one UID have no RECURRENCE-ID")
            master = part
            continue
        key = part.recurrence_id.instant
        if key in overrides:
            raise InvalidCalendarObject(
                f"two overrides have RECURRENCE-ID {prop(event, 'RECURRENCE-ID').dt}"
            )
        overrides[key] = part
    ordered = tuple(overrides[key] for key in sorted(overrides))
    return CalendarObject(calendar, uid, master, ordered, resolver, kind)
