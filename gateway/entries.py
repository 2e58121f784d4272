"""Diary entries changed from the CRM side (CLI, API).

Rules (docs/ARCHITECTURE.md): recurring entries and entries organised outside the CRM are read-only
here (the calendar client may still change them); delete is a tombstone; participants are
resolved to users, contacts or external emails. The stored iCalendar is the entry's source of
truth: CRM-made entries are rendered once, deterministically, and later CRM edits patch it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, defer, joinedload, selectinload

from gateway import invitations
from gateway.busy import is_busy_time
from gateway.clock import utcnow
from gateway.conflicts import check_booking
from gateway.contacts import find_contact
from gateway.diary_types import get_type
from gateway.errors import Invalid, NotFound, ReadOnly
from gateway.ical import (
    KEEP,
    Attendee,
    EventData,
    EventPatch,
    InvalidCalendarObject,
    Organizer,
    PatchRefused,
    RenderInput,
    parse_event,
    patch_event,
    render_event,
)
from gateway.keyset import Page, page
from gateway.models import DiaryEntry, EntryParticipant, User
from gateway.publication import publish_entry
from gateway.users import get_user, normalise_email
from gateway.webhook_payloads import entry_changed


@dataclass(frozen=True)
class EntryDraft:
    type_name: str
    title: str
    start: datetime  # aware
    end: datetime  # aware
    organizer: str | None = None  # username
    attendees: tuple[str, ...] = ()  # usernames or emails
    all_day: bool = False
    rrule: str | None = None
    tzid: str | None = None
    location: str | None = None
    description: str | None = None
    automation: bool = False
    uid: str | None = None  # the demo seeds fixed UIDs so reseeding finds them


@dataclass(frozen=True)
class EntryEdit:
    """A CRM-side change; ``None`` keeps a field. ``location``/``description`` set to ""
    remove it; ``attendees`` (usernames or emails) replaces the participants, each one who
    stays keeping their answer."""

    title: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    type_name: str | None = None
    location: str | None = None
    description: str | None = None
    attendees: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Participant:
    email: str
    user_id: int | None
    contact_id: int | None
    name: str | None


def check_tzid(tzid: str | None) -> str | None:
    if tzid is None:
        return None
    try:
        ZoneInfo(tzid)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"{tzid!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
    return tzid


def resolve_participant(session: Session, token: str) -> Participant:
    """A username, or an email matched to a user, then a contact, else kept as external."""
    if "@" not in token:
        user = session.scalar(select(User).where(User.username == token))
        if user is None:
            raise NotFound(
                f"no user named {token!r} (give an email address for someone outside the CRM)"
            )
        return Participant(user.email.lower(), user.id, None, user.name or None)
    email = normalise_email(token)
    user = session.scalar(
        select(User)
        .where(func.lower(User.email) == email)
        .order_by(User.diary_sync.desc(), User.id)
    )
    if user is not None:
        return Participant(email, user.id, None, user.name or None)
    contact = find_contact(session, email)
    if contact is not None:
        return Participant(email, None, contact.id, contact.name or None)
    return Participant(email, None, None, None)


def apply_event_data(entry: DiaryEntry, data: EventData) -> None:
    """Copy the fields derived from the stored iCalendar onto the entry's columns (set
    ``entry.ical`` first)."""
    entry.busy = is_busy_time(entry.ical, data.status)
    entry.uid = data.uid
    entry.title = data.title
    entry.description = data.description
    entry.location = data.location
    entry.start_utc = data.start
    entry.end_utc = data.end
    entry.tzid = data.tzid
    entry.all_day = data.all_day
    entry.rrule = data.rrule
    entry.span_start_utc = data.span_start
    entry.span_end_utc = data.span_end
    entry.has_overrides = data.has_overrides
    entry.sequence = data.sequence


def _derive(text: str) -> EventData:
    try:
        return parse_event(text)
    except InvalidCalendarObject as exc:  # our own rendering must always parse
        raise Invalid(f"the entry could not be rendered: {exc.reason}") from exc


def create_entry(session: Session, draft: EntryDraft, *, origin: str = "crm",
                 force: bool = False) -> DiaryEntry:
    """Make an entry; ``origin`` is who asked (``crm``: the CLI, ``api``: the JSON API),
    reported in the ``entry.created`` webhook. The stored entry's origin is ``crm`` either way.

    An overlap with busy time is checked by the organiser's ``conflicts`` setting
    (:mod:`gateway.conflicts`): recorded, or refused with ConflictRefused unless ``force``."""
    diary_type = get_type(session, draft.type_name)
    if not draft.title.strip():
        raise Invalid("an entry needs a title")
    if draft.organizer is None and not draft.automation:
        raise Invalid("an entry needs --organizer USERNAME unless it is made by --automation")
    organizer = get_user(session, draft.organizer) if draft.organizer else None
    tzid = check_tzid(draft.tzid)
    if draft.end < draft.start:
        raise Invalid("the end of an entry is before its start")
    participants = _participants_of(session, draft.attendees,
                                    organizer.id if organizer else None)

    now = utcnow().replace(microsecond=0)
    uid = draft.uid or f"{uuid.uuid4()}@crm-gateway"
    text = render_event(RenderInput(
        uid=uid, title=draft.title.strip(), description=draft.description,
        location=draft.location, start=draft.start, end=draft.end,
        tzid=None if draft.all_day else tzid, all_day=draft.all_day, rrule=draft.rrule,
        organizer=Organizer(organizer.email.lower(), organizer.name or None)
        if organizer else None,
        attendees=tuple(Attendee(p.email, p.name) for p in participants.values()),
        sequence=0, dtstamp=now, created=now, last_modified=now,
    ))
    data = _derive(text)
    entry = DiaryEntry(
        href=f"{uid.partition('@')[0]}.ics", type_id=diary_type.id,
        owner_user_id=organizer.id if organizer else None,
        organizer_user_id=organizer.id if organizer else None,
        organizer_email=organizer.email.lower() if organizer else None,
        organizer_name=(organizer.name or None) if organizer else None,
        origin="crm", automation=draft.automation, ical=text, revision=1,
        created_at=now, updated_at=now,
    )
    apply_event_data(entry, data)
    entry.type = diary_type
    entry.participants = [
        EntryParticipant(email=p.email, name=p.name, user_id=p.user_id,
                         contact_id=p.contact_id, partstat="NEEDS-ACTION")
        for p in participants.values()
    ]
    session.add(entry)
    session.flush()
    publish_entry(session, entry)
    check_booking(session, entry, force=force, new=True)
    entry_changed(session, "created", entry, origin)
    invitations.entry_created(session, entry)
    return entry


def get_entry(session: Session, entry_id: int) -> DiaryEntry:
    entry = session.get(DiaryEntry, entry_id)
    if entry is None or entry.deleted_at is not None:
        raise NotFound(f"no diary entry {entry_id}")
    return entry


def check_crm_writable(entry: DiaryEntry) -> None:
    """Refuse CRM-side changes to entries the CRM does not own (docs/ARCHITECTURE.md rules)."""
    if entry.rrule or entry.has_overrides:
        raise ReadOnly(
            f"entry {entry.id} is recurring: recurring entries are read-only on the CRM side "
            "(change them in the calendar app)"
        )
    if entry.organizer_user_id is None and not entry.automation:
        raise ReadOnly(
            f"entry {entry.id} is organised outside the CRM by "
            f"{entry.organizer_email or 'an unknown organiser'}: it is read-only on the CRM side"
        )


def update_entry(session: Session, entry: DiaryEntry, edit: EntryEdit, *,
                 origin: str = "crm", force: bool = False) -> DiaryEntry:
    check_crm_writable(entry)
    before = invitations.snapshot(entry)
    if edit.type_name is not None:
        entry.type = get_type(session, edit.type_name)
        entry.type_id = entry.type.id
    start = edit.start or entry.start_utc
    end = edit.end or (
        start + (entry.end_utc - entry.start_utc) if edit.start else entry.end_utc
    )
    if end < start:
        raise Invalid("the end of an entry is before its start")
    if edit.title is not None and not edit.title.strip():
        raise Invalid("an entry needs a title")
    attendees = KEEP if edit.attendees is None else _replace_participants(
        session, entry, edit.attendees)
    if any(value is not None for value in (edit.title, edit.start, edit.end, edit.location,
                                           edit.description, edit.attendees)):
        now = utcnow().replace(microsecond=0)
        timing = edit.start is not None or edit.end is not None
        patch = EventPatch(
            title=edit.title.strip() if edit.title is not None else KEEP,
            start=start if timing else KEEP,
            end=end if timing else KEEP,
            location=KEEP if edit.location is None else (edit.location.strip() or None),
            description=KEEP if edit.description is None else (edit.description or None),
            attendees=attendees,
        )
        try:
            entry.ical = patch_event(entry.ical, patch, now)
        except PatchRefused as exc:
            raise ReadOnly(f"entry {entry.id}: {exc.reason}") from exc
        apply_event_data(entry, _derive(entry.ical))
        entry.updated_at = now
    entry.revision += 1
    session.flush()
    publish_entry(session, entry)
    if edit.start is not None or edit.end is not None or edit.attendees is not None:
        check_booking(session, entry, force=force)
    entry_changed(session, "updated", entry, origin)
    invitations.entry_updated(session, entry, before)
    return entry


def _participants_of(session: Session, tokens: Iterable[str],
                     organizer_id: int | None) -> dict[str, Participant]:
    """Each attendee once (by email), the organiser left out."""
    found: dict[str, Participant] = {}
    for token in tokens:
        participant = resolve_participant(session, token)
        if organizer_id is None or participant.user_id != organizer_id:
            found.setdefault(participant.email, participant)
    return found


def _replace_participants(session: Session, entry: DiaryEntry,
                          tokens: tuple[str, ...]) -> tuple[Attendee, ...]:
    """Make ``tokens`` the entry's participants (those who stay keep their answer); the
    ATTENDEE lines for them."""
    wanted = _participants_of(session, tokens, entry.organizer_user_id)
    staying = {row.email: row for row in entry.participants if row.email in wanted}
    entry.participants = [
        staying.get(email) or EntryParticipant(
            email=p.email, name=p.name, user_id=p.user_id, contact_id=p.contact_id,
            partstat="NEEDS-ACTION")
        for email, p in wanted.items()]
    return tuple(Attendee(row.email, row.name, row.partstat) for row in entry.participants)


def delete_entry(session: Session, entry: DiaryEntry, *, origin: str = "crm") -> None:
    check_crm_writable(entry)
    entry.deleted_at = utcnow()
    entry.revision += 1
    session.flush()
    publish_entry(session, entry)
    entry_changed(session, "deleted", entry, origin)
    invitations.entry_deleted(session, entry)


def list_entries(session: Session, username: str | None = None) -> list[DiaryEntry]:
    query = select(DiaryEntry).where(DiaryEntry.deleted_at.is_(None))
    if username is not None:
        user = get_user(session, username)
        query = query.where(or_(
            DiaryEntry.owner_user_id == user.id,
            DiaryEntry.id.in_(
                select(EntryParticipant.entry_id).where(EntryParticipant.user_id == user.id)
            ),
        ))
    return list(session.scalars(query.order_by(DiaryEntry.start_utc, DiaryEntry.id)))


def page_entries(session: Session, *, owner: str | None, limit: int,
                 after: int | None) -> Page[DiaryEntry]:
    """Live entries by id, optionally those ``owner`` (a username) organises; O(page)."""
    # The stored iCalendar is most of a row and no list shows it.
    query = select(DiaryEntry).where(DiaryEntry.deleted_at.is_(None)).options(
        defer(DiaryEntry.ical), selectinload(DiaryEntry.participants),
        joinedload(DiaryEntry.type), joinedload(DiaryEntry.organizer))
    if owner is not None:
        query = query.where(DiaryEntry.owner_user_id == get_user(session, owner).id)
    return page(session, query, DiaryEntry.id, limit, after)


def all_day_bounds(first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """An all-day entry from its first to its last day (inclusive) as [start, end)."""
    start = first.replace(hour=0, minute=0, second=0, microsecond=0)
    end = last.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if end <= start:
        raise Invalid("the last day of an all-day entry is before its first day")
    return start, end

