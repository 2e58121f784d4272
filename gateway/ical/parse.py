"""From a client's calendar object to the CRM fields of its entry.

The object itself is stored verbatim (docs/CALDAV_CLIENTS.md: never rewrite what the client
sent); :func:`parse_event` only validates it and derives the columns. It runs on every
PUT, so it parses once with icalendar and expands recurrences only as far as needed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.ical.model import Attendee, EventData
from gateway.ical.recurrence import Series, rule_texts
from gateway.ical.structure import CalendarObject, Part, load_object, prop, values

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
    """The CRM fields of an already validated :class:`CalendarObject`."""
    series = Series(calendar_object)
    series.check_cost()
    span_start, span_end = series.span()
    main = _main_part(calendar_object)
    start = main.timing.start
    organizer = prop(main.event, "ORGANIZER")
    rules = rule_texts(main) if calendar_object.master is not None else []
    status = _text(main, "STATUS")
    return EventData(
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


def parse_event(text: str) -> EventData:
    """Validate a client's calendar object and derive the CRM fields of its entry.

    Raises :class:`~gateway.ical.model.InvalidCalendarObject` (``.reason`` says why) for
    text that is not iCalendar, holds no VEVENT, mixes UIDs, lacks UID or DTSTART, ends
    before it starts, names a zone nothing defines, has an unusable RRULE or one too costly
    to expand, or RDATEs of another value type than DTSTART; and
    :class:`~gateway.ical.model.UnsupportedComponent` for VTODO, VJOURNAL and the like.
    Override-only objects (an invitation to one occurrence) take their fields from the
    earliest override.
    """
    return event_data(load_object(text))
