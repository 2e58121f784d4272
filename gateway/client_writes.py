"""What a calendar client changes lands in the CRM: PUT, DELETE, MOVE and PROPPATCH.

The stored iCalendar is what the client sent, byte for byte; the CRM fields are derived from
it (docs/CALDAV_CLIENTS.md: rewriting what a client sent makes it loop). Unlike CRM-side edits,
clients may change recurring entries and entries organised outside the CRM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.calendars import CalendarView, ItemView
from gateway.clock import utcnow
from gateway.conflicts import note_client_write
from gateway.entries import apply_event_data, resolve_participant
from gateway.errors import Conflict, Invalid, NotFound, ReadOnly
from gateway.ical import EventData, InvalidCalendarObject, UnsupportedComponent, parse_event
from gateway.models import Calendar, DiaryEntry, EntryParticipant, PublishedItem, User
from gateway.notifications import client_added
from gateway.preconditions import NO_PRECONDITION, Precondition
from gateway.profiles import effective_profile
from gateway.publication import INVITATIONS, HrefTaken, etag_of, publish_entry
from gateway.webhook_payloads import entry_changed

HREF_RE = re.compile(r"[^/\\\x00-\x1f]{1,255}")
# What PROPPATCH may set per user: cosmetic only (docs/CALDAV_CLIENTS.md).
COSMETIC_PROPS = frozenset({
    "ICAL:calendar-color", "ICAL:calendar-order", "D:displayname",
    "C:calendar-description", "C:calendar-timezone",
    "C:default-alarm-vevent-datetime", "C:default-alarm-vevent-date",
})


class UnsupportedCalendarComponent(Invalid):
    """Not what the calendar holds (a VEVENT in an event calendar, a VTODO in a task list):
    a 403 supported-calendar-component in CalDAV terms."""


class UidConflict(Conflict):
    """The UID is another resource's: a 409 ``no-uid-conflict``. ``where`` names that
    resource (calendar slug, resource name) when the client may see it."""

    def __init__(self, reason: str, where: tuple[str, str] | None = None):
        super().__init__(reason)
        self.where = where


@dataclass(frozen=True)
class Outcome:
    item: ItemView
    created: bool


def check_writable(calendar: CalendarView) -> None:
    if calendar.slug == INVITATIONS:
        raise ReadOnly("the Invitations calendar is read-only: it shows events others organise")
    if not calendar.writable:
        raise ReadOnly("this calendar is read-only: the sync profile sends CRM changes only")


def check_href(href: str) -> str:
    if not HREF_RE.fullmatch(href) or href in {".", ".."}:
        raise Invalid(f"{href!r} is not a valid resource name")
    return href


def check_component(calendar: CalendarView, data: EventData) -> None:
    if data.component != calendar.component:
        holds = "tasks (VTODO)" if calendar.component == "VTODO" else "events (VEVENT)"
        raise UnsupportedCalendarComponent(
            f"{data.component} refused: calendar {calendar.slug} holds {holds} only")


def parse_client_object(text: str) -> EventData:
    try:
        return parse_event(text)
    except UnsupportedComponent as exc:
        raise UnsupportedCalendarComponent(exc.reason) from exc
    except InvalidCalendarObject as exc:
        raise Invalid(exc.reason) from exc


def entry_at(session: Session, calendar: CalendarView, href: str) -> DiaryEntry | None:
    found = current_at(session, calendar, href)
    return found[0] if found else None


def current_at(
    session: Session, calendar: CalendarView, href: str
) -> tuple[DiaryEntry, str] | None:
    """The entry shown at ``href`` and the ETag it is shown with, read in one statement so
    the ETag and the entry's revision (the compare-and-set's expected value) agree."""
    # The view may predate the calendar's row (made by the first write to it, maybe a
    # concurrent one): then look again.
    calendar_id = calendar.calendar_id or session.scalar(select(Calendar.id).where(
        Calendar.user_id == calendar.user_id, Calendar.slug == calendar.slug))
    if calendar_id is None:
        return None
    row = session.execute(
        select(DiaryEntry, PublishedItem.etag, PublishedItem.deleted)
        .join(PublishedItem, PublishedItem.entry_id == DiaryEntry.id)
        .where(PublishedItem.calendar_id == calendar_id, PublishedItem.href == href)
        .execution_options(populate_existing=True)).first()
    if row is None or row.deleted:
        return None
    return row[0], row.etag


def _published(session: Session, calendar_id: int | None, href: str) -> ItemView | None:
    if calendar_id is None:
        return None
    row = session.scalar(select(PublishedItem).where(
        PublishedItem.calendar_id == calendar_id, PublishedItem.href == href,
        PublishedItem.deleted.is_(False)))
    if row is None:
        return None
    return ItemView(row.href, row.uid, row.ical, row.etag, row.start_utc, row.end_utc,
                    row.updated_at)


def _calendar_id(session: Session, user: User, slug: str) -> int | None:
    return session.scalar(
        select(Calendar.id).where(Calendar.user_id == user.id, Calendar.slug == slug))


def _participants(session: Session, user: User, data: EventData) -> list[EntryParticipant]:
    """Attendees as participants; the owner is one only when someone else organises (so their
    PARTSTAT, NEEDS-ACTION included, is recorded)."""
    own = data.organizer_email in (None, user.email.lower())
    result: dict[str, EntryParticipant] = {}
    for attendee in data.attendees:
        if own and attendee.email == user.email.lower():
            continue
        found = resolve_participant(session, attendee.email)
        result.setdefault(found.email, EntryParticipant(
            email=found.email, name=attendee.name, user_id=found.user_id,
            contact_id=found.contact_id, partstat=attendee.partstat))
    return list(result.values())


def _refuse_foreign(session: Session, user: User, uid: str) -> None:
    """Refuse a UID that is another user's CRM entry the user takes part in: their client
    (say, accepting the invitation mail) would otherwise make a second entry of it."""
    foreign = session.execute(
        select(DiaryEntry.id, User.username)
        .join(User, User.id == DiaryEntry.owner_user_id)
        .join(EntryParticipant, EntryParticipant.entry_id == DiaryEntry.id)
        .where(DiaryEntry.uid == uid, DiaryEntry.deleted_at.is_(None),
               DiaryEntry.owner_user_id != user.id,
               DiaryEntry.organizer_user_id == DiaryEntry.owner_user_id,
               EntryParticipant.user_id == user.id)).first()
    if foreign is None:
        return
    shown = session.scalar(
        select(PublishedItem.href).join(Calendar, Calendar.id == PublishedItem.calendar_id)
        .where(Calendar.user_id == user.id, Calendar.slug == INVITATIONS,
               PublishedItem.entry_id == foreign.id, PublishedItem.deleted.is_(False)))
    raise UidConflict(
        f"the event {uid} is organised by {foreign.username} in the CRM and shown in your "
        "Invitations calendar: only its organiser can change or move it",
        (INVITATIONS, shown) if shown else None)


def _entry_for_uid(
    session: Session, user: User, calendar: CalendarView, href: str, uid: str
) -> DiaryEntry | None:
    """The user's entry that a PUT of ``uid`` under a new resource name continues, if any.

    A live entry in another of the user's type calendars is being moved here; a deleted one
    is the same event coming back (a client moving it may send the DELETE first). The same
    UID in this calendar is a 409, as RFC 4791 requires.
    """
    live = session.scalar(
        select(DiaryEntry).where(DiaryEntry.owner_user_id == user.id, DiaryEntry.uid == uid,
                                 DiaryEntry.deleted_at.is_(None))
        .execution_options(populate_existing=True))
    if live is not None:
        if live.type_id == calendar.diary_type_id and live.href == href:
            # Committed between this transaction's read of href and now: run it again, so
            # it sees the event at href (and answers 412 to If-None-Match: *, say).
            raise HrefTaken(f"{href} was written by another request meanwhile")
        if live.type_id == calendar.diary_type_id:
            raise UidConflict(f"an event with UID {uid} already exists as {live.href}",
                              (calendar.slug, live.href))
        if not live.type.syncable:
            raise UidConflict(f"the event {uid} is already entry {live.id} of type "
                              f"{live.type.name}, which is not synced to calendars")
        if ("VTODO" if live.type.kind == "task" else "VEVENT") != calendar.component:
            # An event does not become a task (or the reverse) by its UID.
            raise UidConflict(f"{uid} is already entry {live.id} of type {live.type.name}, "
                              f"a {live.type.kind}; give the new object its own UID",
                              (live.type.slug, live.href))
        return live
    _refuse_foreign(session, user, uid)
    return session.scalar(
        select(DiaryEntry).where(DiaryEntry.owner_user_id == user.id, DiaryEntry.uid == uid,
                                 DiaryEntry.deleted_at.is_not(None))
        .order_by(DiaryEntry.deleted_at.desc(), DiaryEntry.id.desc()).limit(1)
        .execution_options(populate_existing=True))


def put_event(
    session: Session, user: User, calendar: CalendarView, href: str, text: str,
    parsed: EventData | None = None, precondition: Precondition = NO_PRECONDITION,
    *, notify: bool = False,
) -> Outcome:
    """Create or replace the event at ``href`` in one of the user's type calendars.

    ``notify``: a new entry mails the rep "added to the CRM" (``gateway.notifications``); the
    CalDAV PUT of a calendar app asks for it, a linked-calendar fetch does not (linking an
    account would mail its whole backlog).

    ``parsed`` is ``parse_client_object(text)`` when the caller already has it. The
    precondition is checked against what is stored now, in this transaction; the entry's
    UPDATE is a compare-and-set on its revision and a new entry takes its UID under the
    UNIQUE (owner, uid) index, so a concurrent writer that got there first makes this one
    fail (run it under ``retrying``).

    The UID of the user's entry in another type calendar moves that entry here (it keeps its
    id, participants and history, takes this calendar's type; the old resource becomes a
    tombstone); the UID of an entry deleted from a calendar brings that entry back.
    """
    check_writable(calendar)
    check_href(href)
    data = parsed if parsed is not None else parse_client_object(text)
    check_component(calendar, data)
    current = current_at(session, calendar, href)
    precondition.check(current[1] if current else None)
    entry = current[0] if current else _entry_for_uid(session, user, calendar, href, data.uid)
    if current is not None and entry is not None and entry.uid != data.uid:
        raise UidConflict(f"{href} holds the event {entry.uid}; a new UID needs a new resource",
                          (calendar.slug, href))
    created = entry is None
    # An entry deleted from a calendar and brought back by its UID is new to the CRM again.
    reported = "created" if entry is None or entry.deleted_at is not None else "updated"
    if entry is None:
        now = utcnow()
        entry = DiaryEntry(href=href, owner_user_id=user.id, origin="calendar",
                           revision=1, created_at=now)
        session.add(entry)
    else:
        entry.revision += 1
        entry.href = href
        entry.deleted_at = None
    assert calendar.diary_type_id is not None
    entry.type_id = calendar.diary_type_id
    entry.ical = text
    entry.updated_at = utcnow()
    apply_event_data(entry, data)
    own = data.organizer_email in (None, user.email.lower())
    entry.organizer_user_id = user.id if own else None
    entry.organizer_email = user.email.lower() if own else data.organizer_email
    entry.organizer_name = (user.name or None) if own else data.organizer_name
    if effective_profile(session, user.id).sync_invitees:
        # Old rows go first: the new ones may reuse their (entry, email) keys.
        entry.participants.clear()
        session.flush()
        entry.participants = _participants(session, user, data)
    elif created:
        entry.participants = []
    session.flush()
    session.refresh(entry, ["type"])
    publish_entry(session, entry)
    note_client_write(session, entry)  # overlaps are recorded, never refused (issue 13)
    entry_changed(session, reported, entry, "calendar")
    if notify and reported == "created":
        client_added(session, user, entry)
    shown = _published(session, _calendar_id(session, user, calendar.slug), href)
    if shown is None:  # the profile does not publish it (e.g. records = related)
        shown = ItemView(href, data.uid, text, etag_of(text), data.span_start, data.span_end,
                         entry.updated_at)
    return Outcome(shown, created)


def delete_event(
    session: Session, user: User, calendar: CalendarView, href: str,
    precondition: Precondition = NO_PRECONDITION,
) -> None:
    """Tombstone the entry shown at ``href``: a compare-and-set, like ``put_event``."""
    check_writable(calendar)
    current = current_at(session, calendar, href)
    if current is None:
        raise NotFound(f"no event {href} in calendar {calendar.slug}")
    precondition.check(current[1])
    entry = current[0]
    entry.deleted_at = utcnow()
    entry.revision += 1
    session.flush()
    publish_entry(session, entry)
    entry_changed(session, "deleted", entry, "calendar")


def move_event(
    session: Session, user: User, source: CalendarView, href: str,
    target: CalendarView, to_href: str,
) -> ItemView:
    """Move an event to another type calendar: the entry changes type (iOS "change calendar")."""
    check_writable(source)
    check_writable(target)
    check_href(to_href)
    if source.component != target.component:
        raise UnsupportedCalendarComponent(
            f"calendar {target.slug} holds {target.component} objects, not {source.component}")
    entry = entry_at(session, source, href)
    if entry is None:
        raise NotFound(f"no event {href} in calendar {source.slug}")
    occupant = entry_at(session, target, to_href)
    if occupant is not None and occupant.id != entry.id:
        occupant.deleted_at = utcnow()
        session.flush()
        publish_entry(session, occupant)
        entry_changed(session, "deleted", occupant, "calendar")
    assert target.diary_type_id is not None
    entry.type_id = target.diary_type_id
    entry.href = to_href
    entry.revision += 1
    entry.updated_at = utcnow()
    session.flush()
    session.refresh(entry, ["type"])
    publish_entry(session, entry)
    entry_changed(session, "updated", entry, "calendar")
    shown = _published(session, _calendar_id(session, user, target.slug), to_href)
    if shown is None:
        raise NotFound(f"{to_href} is not shown in calendar {target.slug}")
    return shown


def set_props(session: Session, user: User, calendar: CalendarView,
              props: dict[str, str]) -> dict[str, str]:
    """Keep the cosmetic properties a client set (colour, order, default alarms) per user."""
    kept = {key: value for key, value in props.items() if key in COSMETIC_PROPS}
    row = session.scalar(select(Calendar).where(
        Calendar.user_id == user.id, Calendar.slug == calendar.slug))
    if row is None:
        row = Calendar(user_id=user.id, slug=calendar.slug, diary_type_id=calendar.diary_type_id,
                       revision=0, epoch=1, props={})
        session.add(row)
    row.props = kept
    session.flush()
    return kept
