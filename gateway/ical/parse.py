"""From a client's calendar object to the CRM fields of its entry.

The object itself is stored verbatim (docs/CALDAV_CLIENTS.md: never rewrite what the client
sent); :func:`parse_event` only validates it and derives the columns. It runs on every
PUT, so it parses once with icalendar and expands recurrences only as far as needed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from gateway.ical.model import Attendee, EventData, InvalidCalendarObject, TaskFields
from gateway.ical.recurrence import Series, rule_texts
from gateway.ical.structure import CalendarObject, Part, load_object, prop, tzid_of, values
from gateway.ical.task_range import TaskTimes, index_range
from gateway.ical.timing import read_when

# The end column of a task that occupies every window from some point on (its index
# span has no end).
FOREVER = datetime(9000, 1, 1, tzinfo=UTC)
TASK_STATUSES = ("NEEDS-ACTION", "IN-PROCESS", "COMPLETED", "CANCELLED")

DEFAULT_PARTSTAT = "NEEDS-ACTION"  # RFC 5545 3.2.12: the default when PARTSTAT is absent


def _text(part: Part, name: str) -> str | None:
    value = prop(part.event, name)
    if value is None:
        return None
    if isinstance(value, list):  # a repeated single-valued property: the first one counts
        value = value[0]
    return str(value)


def _address(value: Any) -> str:
    address = str(value).strip()
    if address.lower().startswith("mailto:"):
        address = address[len("mailto:") :]
    return address.strip().lower()


def _param(value: Any, name: str) -> str | None:
    params = getattr(value, "params", None)
    found = params.get(name) if params is not None else None
    return str(found) if found else None


def _attendees(part: Part) -> tuple[Attendee, ...]:
    attendees: list[Attendee] = []
    seen: set[str] = set()
    for value in values(part.event, "ATTENDEE"):
        email = _address(value)
        if not email or email in seen:
            continue
        seen.add(email)
        partstat = (_param(value, "PARTSTAT") or DEFAULT_PARTSTAT).upper()
        role = _param(value, "ROLE")
        attendees.append(
            Attendee(email, _param(value, "CN"), partstat, role.upper() if role else None)
        )
    return tuple(attendees)


def _sequence(part: Part) -> int:
    try:
        return int(str(prop(part.event, "SEQUENCE") or 0))
    except ValueError:
        return 0  # a broken SEQUENCE is not worth refusing the event for


def _main_part(calendar_object: CalendarObject) -> Part:
    """The master, or for an override-only object the override that starts first."""
    if calendar_object.master is not None:
        return calendar_object.master
    return min(calendar_object.overrides, key=_override_order)


def _override_order(part: Part) -> tuple[datetime, datetime]:
    rid = part.recurrence_id
    assert rid is not None  # every override has one (structure.load_object)
    return part.timing.start.instant, rid.instant


def event_data(calendar_object: CalendarObject) -> EventData:
    """The CRM fields of an already validated :class:`CalendarObject` (an event or a task)."""
    series = Series(calendar_object)
    series.check_cost()
    span_start, span_end = series.span()
    main = _main_part(calendar_object)
    start = main.timing.start
    organizer = prop(main.event, "ORGANIZER")
    rules = rule_texts(main) if calendar_object.master is not None else []
    status = _text(main, "STATUS")
    data = EventData(
        uid=calendar_object.uid,
        title=_text(main, "SUMMARY") or "",
        description=_text(main, "DESCRIPTION"),
        location=_text(main, "LOCATION"),
        start=start.instant,
        end=main.timing.end,
        tzid=start.zone.iana if start.zone is not None and not start.is_date else None,
        all_day=start.is_date,
        rrule=rules[0] if rules else None,
        organizer_email=(_address(organizer) or None) if organizer is not None else None,
        organizer_name=_param(organizer, "CN") if organizer is not None else None,
        attendees=_attendees(main),
        span_start=span_start,
        span_end=span_end,
        has_overrides=bool(calendar_object.overrides),
        sequence=_sequence(main),
        status=status.upper() if status else None,
    )
    return task_data(calendar_object, data) if calendar_object.component == "VTODO" else data


def _instant(calendar_object: CalendarObject, part: Part, name: str) -> datetime | None:
    value = prop(part.event, name)
    if value is None:
        return None
    return read_when(value.dt, tzid_of(value), calendar_object.resolver).instant


def _small_int(part: Part, name: str, high: int) -> int | None:
    value = prop(part.event, name)
    if value is None:
        return None
    try:
        number = int(str(value))
    except ValueError:
        raise InvalidCalendarObject(f"{name} {str(value)!r} is not a number") from None
    if not 0 <= number <= high:
        raise InvalidCalendarObject(f"{name} {number} is not between 0 and {high}")
    return number


def task_data(calendar_object: CalendarObject, data: EventData) -> EventData:
    """A VTODO's fields, with ``start``/``end`` (and, for a single task, the span) the range
    RFC 4791 9.9 says it occupies."""
    main = _main_part(calendar_object)
    has_start = prop(main.event, "DTSTART") is not None
    duration = prop(main.event, "DURATION")
    dtstart = main.timing.start.instant if has_start else None
    task = TaskFields(
        dtstart=dtstart,
        due=_instant(calendar_object, main, "DUE"),
        completed=_instant(calendar_object, main, "COMPLETED"),
        priority=_small_int(main, "PRIORITY", 9),
        percent_complete=_small_int(main, "PERCENT-COMPLETE", 100),
        status=data.status,
    )
    if data.rrule or data.has_overrides:
        # A recurring task has DTSTART; its instances are indexed from the series.
        return replace(data, component="VTODO", task=task)
    low, high = index_range(TaskTimes(
        dtstart=dtstart,
        duration=main.timing.length if has_start and duration is not None else None,
        due=task.due, completed=task.completed,
        created=_instant(calendar_object, main, "CREATED")))
    return replace(data, component="VTODO", task=task, start=low,
                   end=high if high is not None else FOREVER, span_start=low, span_end=high)


def parse_event(text: str) -> EventData:
    """Validate a client's calendar object and derive the CRM fields of its entry.

    Raises :class:`~gateway.ical.model.InvalidCalendarObject` (``.reason`` says why) for
    text that is not iCalendar, holds no VEVENT or VTODO (or both), mixes UIDs, lacks UID
    or DTSTART (a VEVENT), ends before it starts, names a zone nothing defines, has an
    unusable RRULE or one too costly to expand, or RDATEs of another value type than DTSTART; and
    :class:`~gateway.ical.model.UnsupportedComponent` for VJOURNAL and the like. A VTODO
    gives ``component="VTODO"`` and its :class:`~gateway.ical.model.TaskFields`.
    Override-only objects (an invitation to one occurrence) take their fields from the
    earliest override.
    """
    return event_data(load_object(text))
