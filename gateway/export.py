"""iCalendar export: one entry as an ``.ics`` download, and a rep's read-only feed.

One entry (issue 12, item 5): only non-recurring entries of syncable types are exported
(else ``NotExportable``, a 409 with the reason); the participants are the attendees, each
once; the organiser is the CRM user who made the entry, left out when an automation made it
or when the person downloading is that user (Outlook refuses to import a meeting whose
organiser is the importing account). The text is rendered afresh from the CRM's fields,
not copied from what a client stored, so nothing a device added leaks into the file.

The feed holds what the rep's calendars hold in a window around today: it reads the
publication rows through the occurrence index (``gateway.calendars.items_in_range``), so
it costs O(entries in the window). Its ETag comes from the calendars' revisions and the
window's days alone, so an unchanged feed is answered 304 without reading any entry.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from icalendar import Calendar, Component
from sqlalchemy.orm import Session

from gateway.calendars import CalendarView, items_in_range, user_calendars
from gateway.clock import utcnow
from gateway.errors import Conflict
from gateway.ical import Attendee, Organizer, RenderInput, TaskFields, render_event, view_for
from gateway.models import DiaryEntry, User

PRODID = "-//crm-gateway//feed//EN"
# Web calendars poll at their own pace; this asks for hourly where they listen.
REFRESH = "PT1H"

log = logging.getLogger(__name__)


class NotExportable(Conflict):
    """The entry cannot be exported as an .ics file; the message says why."""


# --- one entry ------------------------------------------------------------------------------


def check_exportable(entry: DiaryEntry) -> None:
    if not entry.type.syncable:
        raise NotExportable(
            f"entry {entry.id} is of the type {entry.type.name!r}, which is not syncable: "
            "only entries of syncable types can be exported")
    if entry.rrule or entry.has_overrides:
        raise NotExportable(
            f"entry {entry.id} is recurring: only non-recurring entries can be exported")


def export_organizer(entry: DiaryEntry, downloader_id: int | None) -> Organizer | None:
    """Who the file names as organiser (see the module docstring), or None."""
    if entry.automation:
        return None
    if entry.organizer_user_id is not None:
        if entry.organizer_user_id == downloader_id:
            return None
        user = entry.organizer
        assert user is not None
        return Organizer(user.email.lower(), user.name or None)
    if entry.organizer_email:
        return Organizer(entry.organizer_email.lower(), entry.organizer_name or None)
    return None


def export_attendees(entry: DiaryEntry, organizer: Organizer | None) -> tuple[Attendee, ...]:
    """The entry's participants, each once: a user by their id, anyone else by address;
    never the organiser named in the file."""
    seen_users: set[int] = set()
    seen_emails: set[str] = {organizer.email} if organizer else set()
    if entry.organizer_user_id is not None:
        seen_users.add(entry.organizer_user_id)
    result: list[Attendee] = []
    for participant in entry.participants:
        email = participant.email.lower()
        if email in seen_emails or (participant.user_id is not None
                                    and participant.user_id in seen_users):
            continue
        seen_emails.add(email)
        if participant.user_id is not None:
            seen_users.add(participant.user_id)
        name = participant.name
        if participant.contact is not None and participant.contact.name:
            name = participant.contact.name
        elif participant.user is not None and participant.user.name:
            name = participant.user.name
        result.append(Attendee(email, name or None, participant.partstat or "NEEDS-ACTION"))
    return tuple(result)


def entry_ics(entry: DiaryEntry, downloader_id: int | None) -> str:
    """The entry as an iCalendar file (METHOD:PUBLISH) for ``downloader_id`` (a user id,
    or None when no person asks, e.g. the CRM application). Raises NotExportable."""
    check_exportable(entry)
    organizer = export_organizer(entry, downloader_id)
    text = render_event(RenderInput(
        uid=entry.uid, title=entry.title, description=entry.description,
        location=entry.location, start=entry.start_utc, end=entry.end_utc,
        tzid=None if entry.all_day else entry.tzid, all_day=entry.all_day, rrule=None,
        organizer=organizer, attendees=export_attendees(entry, organizer),
        sequence=entry.sequence, dtstamp=entry.updated_at.replace(microsecond=0),
        created=entry.created_at.replace(microsecond=0),
        last_modified=entry.updated_at.replace(microsecond=0),
        task=TaskFields(dtstart=entry.task_start_utc, due=entry.due_utc,
                        completed=entry.completed_utc, priority=entry.priority,
                        percent_complete=entry.percent_complete, status=entry.status)
        if entry.type.kind == "task" else None,
    ))
    calendar = Calendar.from_ical(text)
    calendar.add("METHOD", "PUBLISH")
    return calendar.to_ical().decode()


def download_name(entry: DiaryEntry) -> str:
    """An ASCII file name for the download: the title, made safe, or the entry's id."""
    folded = unicodedata.normalize("NFKD", entry.title).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9]+", "-", folded).strip("-")[:60]
    return f"{stem or f'entry-{entry.id}'}.ics"


# --- the feed -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The feed's span: whole UTC days, so the ETag holds for a day when nothing changes."""

    start: datetime
    end: datetime


def feed_window(days_back: int, days_ahead: int, now: datetime | None = None) -> Window:
    today = (now or utcnow()).replace(hour=0, minute=0, second=0, microsecond=0)
    return Window(today - timedelta(days=days_back), today + timedelta(days=days_ahead + 1))


def _fingerprint(calendars: list[CalendarView], window: Window) -> str:
    parts = [f"{window.start:%Y%m%d}-{window.end:%Y%m%d}"]
    parts += [f"{c.slug}:{c.calendar_id}:{c.epoch}:{c.revision}" for c in calendars]
    return '"' + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32] + '"'


def feed_etag(session: Session, user: User, window: Window) -> str:
    """The feed's ETag: changes whenever one of the user's calendars or the window does.
    O(calendars): no entry is read."""
    return _fingerprint(user_calendars(session, user), window)


def feed_body(session: Session, user: User, window: Window) -> tuple[str, str]:
    """The feed (one VCALENDAR of every entry the user's calendars show in ``window``,
    without alarms: nothing done to a read-only feed reaches the CRM) and its ETag."""
    calendars = user_calendars(session, user)
    feed = Calendar()
    feed.add("PRODID", PRODID)
    feed.add("VERSION", "2.0")
    feed.add("CALSCALE", "GREGORIAN")
    feed.add("METHOD", "PUBLISH")
    feed.add("X-WR-CALNAME", f"{user.name or user.username} (CRM)")
    feed.add("X-PUBLISHED-TTL", REFRESH)
    feed.add("REFRESH-INTERVAL", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    zones: dict[str, Component] = {}
    entries: list[Component] = []
    for calendar in calendars:
        if calendar.component != "VEVENT":  # task lists: a feed is what calendars subscribe to
            continue
        for item, _exact in items_in_range(session, calendar, window.start, window.end):
            try:
                parsed = Calendar.from_ical(
                    view_for(item.ical, drop_alarms=True, drop_attendees=False))
            except ValueError:  # one stored object must never fail the feed
                log.warning("feed of user %s: cannot read %r; left out", user.id, item.href)
                continue
            for component in parsed.subcomponents:
                if component.name == "VTIMEZONE":
                    zones.setdefault(str(component.get("TZID", "")), component)
                else:
                    entries.append(component)
    for component in [*zones.values(), *entries]:  # zones first, as clients expect
        feed.add_component(component)
    return feed.to_ical().decode(), _fingerprint(calendars, window)
