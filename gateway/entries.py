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
    Keep,
    Organizer,
    PatchRefused,
    RenderInput,
    TaskFields,
    parse_event,
    patch_event,
    render_event,
)
from gateway.ical.parse import TASK_STATUSES
from gateway.keyset import Page, page
from gateway.models import DiaryEntry, DiaryType, EntryParticipant, User
from gateway.publication import publish_entry
from gateway.users import get_user, normalise_email
from gateway.webhook_payloads import entry_changed


@dataclass(frozen=True)
class TaskDraft:
    """A task's own fields (a task type's entry); times aware or ``None``."""

    start: datetime | None = None
    due: datetime | None = None
    priority: int | None = None
    status: str | None = None  # NEEDS-ACTION (default), IN-PROCESS, COMPLETED, CANCELLED
    percent_complete: int | None = None


@dataclass(frozen=True)
class EntryDraft:
    type_name: str
    title: str
    start: datetime | None  # aware; for a task, see ``task``
    end: datetime | None  # aware
    organizer: str | None = None  # username
    attendees: tuple[str, ...] = ()  # usernames or emails
    all_day: bool = False
    rrule: str | None = None
    tzid: str | None = None
    location: str | None = None
    description: str | None = None
    automation: bool = False
    uid: str | None = None  # the demo seeds fixed UIDs so reseeding finds them
    task: TaskDraft | None = None  # required shape for task types; ``start``/``end`` unused


@dataclass(frozen=True)
class EntryEdit:
    """A CRM-side change; ``None`` keeps a field. ``location``/``description`` set to ""
    remove it; ``attendees`` (usernames or emails) replaces the participants, each one who
    stays keeping their answer."""

    title: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    type_name: str | None = None
    # A task's fields; KEEP leaves them, ``None`` (due) removes the DUE.
    due: datetime | Keep | None = KEEP
    priority: int | Keep | None = KEEP
    status: str | Keep = KEEP
    percent_complete: int | Keep | None = KEEP
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
    task = data.task
    entry.task_start_utc = task.dtstart if task else None
    entry.due_utc = task.due if task else None
    entry.completed_utc = task.completed if task else None
    entry.priority = task.priority if task else None
    entry.percent_complete = task.percent_complete if task else None
    entry.status = task.status if task else None


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
    now = utcnow().replace(microsecond=0)
    task = _task_fields(diary_type.kind, draft, now)
    if task is None:
        if draft.start is None or draft.end is None:
            raise Invalid("an event needs a start and an end")
        if draft.end < draft.start:
            raise Invalid("the end of an entry is before its start")
    participants = _participants_of(session, draft.attendees,
                                    organizer.id if organizer else None)

    uid = draft.uid or f"{uuid.uuid4()}@crm-gateway"
    placeholder = task.dtstart or task.due or now if task is not None else now
    text = render_event(RenderInput(
        uid=uid, title=draft.title.strip(), description=draft.description,
        location=draft.location, start=draft.start or placeholder,
        end=draft.end or draft.start or placeholder,
        tzid=None if draft.all_day else tzid, all_day=draft.all_day, rrule=draft.rrule,
        organizer=Organizer(organizer.email.lower(), organizer.name or None)
        if organizer else None,
        attendees=tuple(Attendee(p.email, p.name) for p in participants.values()),
        sequence=0, dtstamp=now, created=now, last_modified=now, task=task,
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
    if task is None:  # iMIP invitations are for events
        invitations.entry_created(session, entry)
    return entry


def check_status(status: str) -> str:
    status = status.upper()
    if status not in TASK_STATUSES:
        raise Invalid(f"{status!r} is not a task status: use " + ", ".join(TASK_STATUSES))
    return status


def check_priority(priority: int | None) -> int | None:
    if priority is not None and not 0 <= priority <= 9:
        raise Invalid("a task's priority is 0 (none) or 1 (highest) to 9 (lowest)")
    return priority


def check_percent(percent: int | None) -> int | None:
    if percent is not None and not 0 <= percent <= 100:
        raise Invalid("a task's percent complete is 0 to 100")
    return percent


def _task_fields(kind: str, draft: EntryDraft, now: datetime) -> TaskFields | None:
    """The VTODO fields of a draft for a task type; None for an event type."""
    if kind != "task":
        if draft.task is not None:
            raise Invalid(f"diary type {draft.type_name!r} holds events: due, priority and "
                          "status are for task types")
        return None
    if draft.rrule:
        raise Invalid("recurring tasks are made in the calendar app, not in the CRM")
    given = draft.task or TaskDraft(start=draft.start, due=draft.end)
    if given.start is not None and given.due is not None and given.due < given.start:
        raise Invalid("the due date of a task is before its start")
    status = check_status(given.status or "NEEDS-ACTION")
    return TaskFields(
        dtstart=given.start, due=given.due,
        completed=now if status == "COMPLETED" else None,
        priority=check_priority(given.priority),
        percent_complete=check_percent(100 if status == "COMPLETED" and
                                       given.percent_complete is None
                                       else given.percent_complete),
        status=status)


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
    if entry.type.kind == "task":
        return _update_task(session, entry, edit, origin)
    if _task_edit(edit):
        raise Invalid(f"entry {entry.id} is an event: due, priority and status are for tasks")
    before = invitations.snapshot(entry)
    if edit.type_name is not None:
        entry.type = _same_kind(session, entry, edit.type_name)
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
        _patch(entry, patch, now)
    entry.revision += 1
    session.flush()
    publish_entry(session, entry)
    if edit.start is not None or edit.end is not None or edit.attendees is not None:
        check_booking(session, entry, force=force)
    entry_changed(session, "updated", entry, origin)
    invitations.entry_updated(session, entry, before)
    return entry


def _task_edit(edit: EntryEdit) -> bool:
    return any(value is not KEEP for value in
               (edit.due, edit.priority, edit.status, edit.percent_complete))


def _same_kind(session: Session, entry: DiaryEntry, type_name: str) -> DiaryType:
    diary_type = get_type(session, type_name)
    if diary_type.kind != entry.type.kind:
        raise Invalid(f"diary type {type_name!r} holds {diary_type.kind}s; entry {entry.id} "
                      f"is a {entry.type.kind}")
    return diary_type


def _update_task(session: Session, entry: DiaryEntry, edit: EntryEdit,
                 origin: str) -> DiaryEntry:
    """A CRM-side edit of a task: title, location, description, attendees, due date,
    priority, status, percent complete (no iMIP invitations: they are for events).

    Completing it sets COMPLETED (now) and, unless given, PERCENT-COMPLETE 100; any other
    status removes COMPLETED.
    """
    if edit.start is not None or edit.end is not None:
        raise Invalid(f"entry {entry.id} is a task: change its due date, not start/end")
    if edit.type_name is not None:
        entry.type = _same_kind(session, entry, edit.type_name)
        entry.type_id = entry.type.id
    if edit.title is not None and not edit.title.strip():
        raise Invalid("an entry needs a title")
    due = edit.due
    if isinstance(due, datetime) and entry.task_start_utc is not None \
            and due < entry.task_start_utc:
        raise Invalid("the due date of a task is before its start")
    now = utcnow().replace(microsecond=0)
    status: str | Keep = KEEP if isinstance(edit.status, Keep) else check_status(edit.status)
    completed: datetime | Keep | None = KEEP
    percent = edit.percent_complete
    if not isinstance(percent, Keep):
        check_percent(percent)
    if status == "COMPLETED" and entry.status != "COMPLETED":
        completed = now
        if isinstance(percent, Keep):
            percent = 100
    elif not isinstance(status, Keep) and status != "COMPLETED":
        completed = None
    priority = edit.priority
    if not isinstance(priority, Keep):
        check_priority(priority)
    attendees = KEEP if edit.attendees is None else _replace_participants(
        session, entry, edit.attendees)
    if any(value is not None for value in (edit.title, edit.location, edit.description,
                                           edit.attendees)) or _task_edit(edit):
        patch = EventPatch(title=edit.title.strip() if edit.title is not None else KEEP,
                           location=KEEP if edit.location is None
                           else (edit.location.strip() or None),
                           description=KEEP if edit.description is None
                           else (edit.description or None),
                           attendees=attendees,
                           due=due, completed=completed, priority=priority,
                           percent_complete=percent, status=status)
        _patch(entry, patch, now)
    entry.revision += 1
    session.flush()
    publish_entry(session, entry)
    entry_changed(session, "updated", entry, origin)
    return entry


def _patch(entry: DiaryEntry, patch: EventPatch, now: datetime) -> None:
    """Apply a CRM-side edit to the stored object and its derived columns."""
    try:
        entry.ical = patch_event(entry.ical, patch, now)
    except PatchRefused as exc:
        raise ReadOnly(f"entry {entry.id}: {exc.reason}") from exc
    apply_event_data(entry, _derive(entry.ical))
    entry.updated_at = now


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
    if entry.type.kind != "task":
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

