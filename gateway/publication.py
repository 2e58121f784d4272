"""Publication: what each (user, calendar) shows, kept current on every change.

Every change to an entry, its participants, a type's ``syncable`` flag, a user's diary-sync
state or sync profile calls one of the ``publish_*`` functions in the same transaction. They
compare what each affected calendar should show with its ``published_items`` rows and write
only the differences, each under a new revision of that calendar. The CalDAV layer then serves
listings, getctag and sync-collection straight from those rows (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from gateway.errors import Conflict
from gateway.ical import view_for
from gateway.models import (
    Calendar,
    DiaryEntry,
    DiaryType,
    EntryParticipant,
    Occurrence,
    PublishedItem,
    User,
    utcnow,
)
from gateway.occurrence_index import LONG, Instances, instances_of
from gateway.profiles import Profile, effective_profile

INVITATIONS = "invitations"


class HrefTaken(Conflict):
    """Another entry took the resource name meanwhile (a concurrent writer committed first)."""


def etag_of(text: str) -> str:
    """Radicale's own etag form, so ETags match what the app would compute."""
    return '"' + hashlib.sha256(text.encode()).hexdigest() + '"'


@dataclass(frozen=True)
class View:
    """What one calendar of one user shows of one entry."""

    user_id: int
    slug: str
    diary_type_id: int | None
    ical: str
    start: datetime
    end: datetime | None


class Publisher:
    """Computes and writes publication rows inside one transaction.

    Caches users, profiles and calendars so a bulk republish costs one lookup of each.
    """

    def __init__(self, session: Session):
        self.session = session
        self._profiles: dict[int, Profile] = {}
        self._users: dict[int, User] = {}
        self._calendars: dict[tuple[int, str], Calendar] = {}
        self._instances: dict[int, Instances] = {}

    def profile(self, user_id: int) -> Profile:
        if user_id not in self._profiles:
            self._profiles[user_id] = effective_profile(self.session, user_id)
        return self._profiles[user_id]

    def user(self, user_id: int) -> User:
        if user_id not in self._users:
            user = self.session.get(User, user_id)
            assert user is not None
            self._users[user_id] = user
        return self._users[user_id]

    # --- what should be shown ---

    def views(self, entry: DiaryEntry) -> dict[tuple[int, str], View]:
        """Every (user, calendar) that should show ``entry``, with what it shows."""
        if entry.deleted_at is not None or not entry.type.syncable:
            return {}
        result: dict[tuple[int, str], View] = {}
        invitees = [p for p in entry.participants if p.user_id != entry.owner_user_id]
        viewers: list[tuple[int, bool]] = []
        if entry.owner_user_id is not None:
            viewers.append((entry.owner_user_id, True))
        viewers.extend(
            (p.user_id, False) for p in entry.participants
            if p.user_id is not None and p.user_id != entry.owner_user_id
        )
        for user_id, owns in viewers:
            if not owns and entry.type.kind == "task":
                continue  # the Invitations calendar holds events; a task stays in its list
            user = self.user(user_id)
            profile = self.profile(user_id)
            if not user.diary_sync:
                continue
            if profile.records == "related" and not invitees:
                continue
            if profile.direction == "calendar_to_crm" and entry.origin != "calendar":
                continue
            slug = entry.type.slug if owns else INVITATIONS
            text = view_for(
                entry.ical, drop_alarms=not owns, drop_attendees=not profile.sync_invitees
            )
            result[(user_id, slug)] = View(
                user_id, slug, entry.type_id if owns else None, text,
                entry.span_start_utc, entry.span_end_utc,
            )
        return result

    # --- writing ---

    def calendar(self, user_id: int, slug: str, diary_type_id: int | None) -> Calendar:
        key = (user_id, slug)
        calendar = self._calendars.get(key)
        if calendar is None:
            calendar = self.session.scalar(
                select(Calendar).where(Calendar.user_id == user_id, Calendar.slug == slug)
            )
            if calendar is None:
                calendar = Calendar(
                    user_id=user_id, slug=slug, diary_type_id=diary_type_id, revision=0,
                    epoch=1, props={},
                )
                self.session.add(calendar)
                self.session.flush()
            self._calendars[key] = calendar
        return calendar

    def bump(self, calendar: Calendar) -> int:
        """The calendar's next revision; the row update serialises writers per calendar."""
        revision = self.session.scalar(
            update(Calendar)
            .where(Calendar.id == calendar.id)
            .values(revision=Calendar.revision + 1, updated_at=utcnow())
            .returning(Calendar.revision)
        )
        assert revision is not None
        calendar.revision = revision
        return revision

    def publish(self, entry: DiaryEntry, only_user: int | None = None) -> int:
        """Bring every calendar's rows for ``entry`` up to date; returns rows changed."""
        wanted = self.views(entry)
        rows = self.session.scalars(
            select(PublishedItem).where(PublishedItem.entry_id == entry.id)
        ).all()
        changed = 0
        calendar_keys = {}
        for row in rows:
            calendar = self.session.get(Calendar, row.calendar_id)
            assert calendar is not None
            calendar_keys[row.id] = (calendar.user_id, calendar.slug)
            self._calendars.setdefault((calendar.user_id, calendar.slug), calendar)
        existing = {calendar_keys[row.id]: row for row in rows}
        for key, row in existing.items():
            if key in wanted or row.deleted:
                continue
            if self._frozen(key[0], only_user):
                continue
            calendar = self._calendars[key]
            row.deleted = True
            row.ical = ""
            row.etag = ""
            self.session.execute(delete(Occurrence).where(Occurrence.item_id == row.id))
            row.revision = self.bump(calendar)
            row.updated_at = utcnow()
            changed += 1
        for key, view in wanted.items():
            if self._frozen(key[0], only_user):
                continue
            changed += self._write(entry, view, existing.get(key))
        self.session.flush()
        return changed

    def _frozen(self, user_id: int, only_user: int | None) -> bool:
        return (only_user is not None and user_id != only_user) or self.profile(user_id).paused

    def _write(self, entry: DiaryEntry, view: View, row: PublishedItem | None) -> int:
        etag = etag_of(view.ical)
        if (
            row is not None and not row.deleted and row.etag == etag and row.href == entry.href
            and row.start_utc == view.start and row.end_utc == view.end
        ):
            return 0
        calendar = self.calendar(view.user_id, view.slug, view.diary_type_id)
        revision = self.bump(calendar)  # before any new row is pending: bump() autoflushes
        if row is None or row.href != entry.href:
            # Read after bump(): the calendar's row lock orders this after any writer that
            # committed the href first.
            holder = self.session.scalar(
                select(PublishedItem).where(
                    PublishedItem.calendar_id == calendar.id, PublishedItem.href == entry.href
                )
            )
            if holder is not None and holder is not row:
                if not holder.deleted:
                    raise HrefTaken(f"{entry.href} now holds another event")
                # A tombstone of another entry holds the href (a client re-created it): this
                # entry's row takes the name; sync reports the href as changed.
                if row is None:
                    row = holder
                else:
                    self.session.delete(holder)
                    self.session.flush()
            if row is None:
                row = PublishedItem(calendar_id=calendar.id, href=entry.href)
                self.session.add(row)
        row.entry_id = entry.id
        row.href = entry.href
        row.uid = entry.uid
        row.ical = view.ical
        row.etag = etag
        row.start_utc = view.start
        row.end_utc = view.end
        row.deleted = False
        row.revision = revision
        row.updated_at = utcnow()
        self._index(entry, row, calendar.id)
        return 1

    def _index(self, entry: DiaryEntry, row: PublishedItem, calendar_id: int) -> None:
        """Replace the row's occurrence index with the entry's current instances."""
        if entry.id not in self._instances:
            self._instances[entry.id] = instances_of(entry)
        instances = self._instances[entry.id]
        row.horizon_utc = instances.horizon
        self.session.flush()
        self.session.execute(delete(Occurrence).where(Occurrence.item_id == row.id))
        if instances.spans:
            self.session.execute(insert(Occurrence), [
                {"item_id": row.id, "calendar_id": calendar_id, "start_utc": start,
                 "end_utc": end, "long": end - start > LONG}
                for start, end in instances.spans
            ])


def publish_entry(session: Session, entry: DiaryEntry) -> int:
    """After a change to one entry (fields, participants, type, deletion)."""
    return Publisher(session).publish(entry)


def _entries_of_user(session: Session, user_id: int) -> list[DiaryEntry]:
    participant = select(EntryParticipant.entry_id).where(EntryParticipant.user_id == user_id)
    shown = (
        select(PublishedItem.entry_id)
        .join(Calendar, Calendar.id == PublishedItem.calendar_id)
        .where(Calendar.user_id == user_id, PublishedItem.deleted.is_(False))
    )
    return list(session.scalars(
        select(DiaryEntry).where(
            or_(
                DiaryEntry.owner_user_id == user_id,
                DiaryEntry.id.in_(participant),
                DiaryEntry.id.in_(shown),
            )
        ).order_by(DiaryEntry.id)
    ))


def publish_user(session: Session, user: User) -> int:
    """After a change to a user's diary-sync state, email or sync profile."""
    publisher = Publisher(session)
    return sum(publisher.publish(entry, only_user=user.id)
               for entry in _entries_of_user(session, user.id))


def publish_all_users(session: Session) -> int:
    """After a change to the global sync profile."""
    return sum(publish_user(session, user) for user in session.scalars(select(User)))


def publish_type(session: Session, diary_type: DiaryType) -> int:
    """After a change to a type's ``syncable`` flag."""
    publisher = Publisher(session)
    entries = session.scalars(
        select(DiaryEntry)
        .where(DiaryEntry.type_id == diary_type.id, DiaryEntry.deleted_at.is_(None))
        .order_by(DiaryEntry.id)
    )
    return sum(publisher.publish(entry) for entry in entries)
