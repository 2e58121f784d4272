"""Rendering a CRM-made entry as a calendar object resource.

The bytes are a function of the input alone: no clock, no randomness, a fixed property
order and the attendees in the order given. A row that has not changed therefore keeps
its ETag, which clients rely on to stop re-syncing (docs/CALDAV_CLIENTS.md).
"""

from __future__ import annotations

from datetime import datetime

from gateway.ical.contentlines import content_line, escape_text, join_lines
from gateway.ical.model import Attendee, Organizer, RenderInput, TaskFields
from gateway.ical.timezones import output_tzid
from gateway.ical.timing import all_day_dates, format_date, format_utc, utc_instant, when_line
from gateway.ical.vtimezone import vtimezone_lines

PRODID = "-//crm-gateway//EN"


def address_line(name: str, email: str, cn: str | None, extra: tuple[tuple[str, str], ...]) -> str:
    """An ORGANIZER/ATTENDEE line: CN only when a name is given (contacts), else the address."""
    params: list[tuple[str, str]] = []
    if cn:
        params.append(("CN", cn))
    params.extend(extra)
    return content_line(name, f"mailto:{email}", params)


def organizer_line(organizer: Organizer) -> str:
    """The ORGANIZER content line (unfolded)."""
    return address_line("ORGANIZER", organizer.email, organizer.name, ())


def attendee_line(attendee: Attendee) -> str:
    """An ATTENDEE content line (unfolded) with PARTSTAT, and ROLE when set."""
    extra: tuple[tuple[str, str], ...] = (("PARTSTAT", attendee.partstat.upper()),)
    if attendee.role:
        extra += (("ROLE", attendee.role.upper()),)
    return address_line("ATTENDEE", attendee.email, attendee.name, extra)


def timing_lines(start: datetime, end: datetime, tzid: str | None, all_day: bool) -> list[str]:
    """DTSTART and DTEND: VALUE=DATE (end exclusive), TZID wall times, or UTC.

    ``tzid`` must already be an IANA name or ``None`` (see ``output_tzid``).
    """
    if all_day:
        first, last = all_day_dates(start, end)
        return [
            content_line("DTSTART", format_date(first), (("VALUE", "DATE"),)),
            content_line("DTEND", format_date(last), (("VALUE", "DATE"),)),
        ]
    end = max(utc_instant(end), utc_instant(start))
    return [
        when_line("DTSTART", start, tzid, all_day=False),
        when_line("DTEND", end, tzid, all_day=False),
    ]


def task_lines(task: TaskFields, tzid: str | None, all_day: bool) -> list[str]:
    """A VTODO's own properties after its texts: DTSTART, DUE, COMPLETED, PRIORITY,
    PERCENT-COMPLETE, STATUS, each only when set."""
    lines: list[str] = []
    if task.dtstart is not None:
        lines.append(when_line("DTSTART", task.dtstart, tzid, all_day))
    if task.due is not None:
        lines.append(when_line("DUE", task.due, tzid, all_day))
    if task.completed is not None:  # RFC 5545 3.8.2.1: always UTC
        lines.append(content_line("COMPLETED", format_utc(task.completed)))
    if task.priority is not None:
        lines.append(content_line("PRIORITY", str(task.priority)))
    if task.percent_complete is not None:
        lines.append(content_line("PERCENT-COMPLETE", str(task.percent_complete)))
    if task.status is not None:
        lines.append(content_line("STATUS", task.status))
    return lines


def event_lines(entry: RenderInput, tzid: str | None) -> list[str]:
    """The VEVENT's (or a task's VTODO's) content lines, unfolded, in their fixed order."""
    component = "VEVENT" if entry.task is None else "VTODO"
    lines = [
        f"BEGIN:{component}",
        content_line("UID", escape_text(entry.uid)),
        content_line("DTSTAMP", format_utc(entry.dtstamp)),
    ]
    if entry.created is not None:
        lines.append(content_line("CREATED", format_utc(entry.created)))
    if entry.last_modified is not None:
        lines.append(content_line("LAST-MODIFIED", format_utc(entry.last_modified)))
    lines.append(content_line("SEQUENCE", str(entry.sequence)))
    if entry.title:
        lines.append(content_line("SUMMARY", escape_text(entry.title)))
    if entry.description is not None:
        lines.append(content_line("DESCRIPTION", escape_text(entry.description)))
    if entry.location is not None:
        lines.append(content_line("LOCATION", escape_text(entry.location)))
    if entry.task is None:
        lines += timing_lines(entry.start, entry.end, tzid, entry.all_day)
    else:
        lines += task_lines(entry.task, tzid, entry.all_day)
    if entry.rrule:
        lines.append(content_line("RRULE", entry.rrule.strip().removeprefix("RRULE:")))
    if entry.organizer is not None:
        lines.append(organizer_line(entry.organizer))
    lines += [attendee_line(attendee) for attendee in entry.attendees]
    lines.append(f"END:{component}")
    return lines


def render_event(entry: RenderInput) -> str:
    """The VCALENDAR text of a CRM-made entry: CRLF line endings, folded at 75 octets.

    Timed entries are written in ``entry.tzid`` with a full VTIMEZONE, or in UTC when it
    is ``None``; all-day entries as VALUE=DATE. With ``entry.task`` set it is a VTODO.
    Raises ``ValueError`` for naive datetimes or a ``tzid`` the tz database does not know.
    """
    lines = [
        "BEGIN:VCALENDAR",
        content_line("PRODID", PRODID),
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
    ]
    tzid = output_tzid(entry.tzid)
    first = entry.start if entry.task is None else (entry.task.dtstart or entry.task.due)
    if first is None:  # a task with no time needs no zone
        tzid = None
    if tzid is not None and not entry.all_day:
        assert first is not None
        lines += vtimezone_lines(tzid, utc_instant(first).year)
    lines += event_lines(entry, tzid)
    lines.append("END:VCALENDAR")
    return join_lines(lines)
