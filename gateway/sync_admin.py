"""Admin operations on a user's calendar sync: reset every client's sync, remove duplicates.

Run from the CLI (``sync reset``, ``sync dedupe``), never by a calendar client.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.models import Calendar, DiaryEntry, User
from gateway.profiles import ProfileChanges, update_profile
from gateway.publication import publish_all_users, publish_entry, publish_user


def reset_sync(session: Session, user: User) -> int:
    """Refuse every sync token issued so far: clients resync fully. Returns calendars reset."""
    rows = session.scalars(select(Calendar).where(Calendar.user_id == user.id)).all()
    for row in rows:
        row.epoch += 1
        row.updated_at = utcnow()
    session.flush()
    return len(rows)


@dataclass(frozen=True)
class Duplicate:
    id: int
    kept_id: int
    title: str
    start: str


def dedupe(session: Session, user: User, *, dry_run: bool) -> list[Duplicate]:
    """Entries a client re-import duplicated (same title, start, end, organiser): keep the
    oldest of each group, tombstone the rest."""
    organiser = func.coalesce(DiaryEntry.organizer_email, "")
    groups = session.execute(
        select(DiaryEntry.title, DiaryEntry.start_utc, DiaryEntry.end_utc, organiser)
        .where(DiaryEntry.owner_user_id == user.id, DiaryEntry.deleted_at.is_(None))
        .group_by(DiaryEntry.title, DiaryEntry.start_utc, DiaryEntry.end_utc, organiser)
        .having(func.count() > 1)
    ).all()
    removed: list[Duplicate] = []
    for title, start, end, organizer_email in groups:
        entries = session.scalars(
            select(DiaryEntry).where(
                DiaryEntry.owner_user_id == user.id, DiaryEntry.deleted_at.is_(None),
                DiaryEntry.title == title, DiaryEntry.start_utc == start,
                DiaryEntry.end_utc == end, organiser == organizer_email)
            .order_by(DiaryEntry.created_at, DiaryEntry.id)
        ).all()
        keep, *extra = entries
        for entry in extra:
            removed.append(Duplicate(entry.id, keep.id, entry.title,
                                     entry.start_utc.isoformat()))
            if not dry_run:
                entry.deleted_at = utcnow()
                entry.revision += 1
                session.flush()
                publish_entry(session, entry)
    return removed


def change_profile(session: Session, user: User | None, changes: ProfileChanges) -> bool:
    """Set fields of the global sync profile (user None) or of one user's, and republish what
    the change affects (every user for the global one); False when ``changes`` sets nothing."""
    if all(getattr(changes, name) is None for name in changes.__dataclass_fields__):
        changes.check()
        return False
    update_profile(session, user, changes)
    if user is None:
        publish_all_users(session)
    else:
        publish_user(session, user)
    return True
