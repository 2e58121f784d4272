"""The conflict calendar: bookings that overlap someone's busy time (issue 13, item 3).

Whose busy time counts: the entry's organiser (its owner) and every CRM user taking part who
has not declined. What happens is the organiser's ``conflicts`` setting (sync profile; an
automation entry follows the global default):

- ``allow``: nothing is checked or recorded;
- ``warn``: a CRM-side write goes through and answers the overlaps;
- ``refuse``: a CRM-side write is refused (:class:`ConflictRefused`, rolled back with it)
  unless it says ``force``, which then goes through like ``warn``.

Calendar clients are never refused (they cannot show the error, and a refused PUT loops):
their overlaps are recorded like a warned one. Recorded overlaps are rows of
``entry_conflicts``, rewritten with every write of the entry, and each write that records
some emits ``entry.conflict``.

Two bookings racing for the same time are ordered by the database: the check locks the rows
of the users involved (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite has one writer), after the
entry is written, so the second check sees the first booking once it has committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.orm import Session

from gateway.busy import busy_spans_of
from gateway.errors import Conflict
from gateway.models import DiaryEntry, EntryConflict, SyncProfile, User
from gateway.profiles import Profile
from gateway.webhooks import emit, iso, matches, subscriptions


@dataclass(frozen=True)
class Clash:
    """Busy time of ``user`` that the entry overlaps."""

    user_id: int  # whose busy time
    user: str  # their username
    entry_id: int | None  # the other entry; None: a linked calendar's busy time
    title: str
    calendar: str
    owner: str | None
    start: datetime
    end: datetime


class ConflictRefused(Conflict):
    """The booking overlaps busy time and the organiser's setting is ``refuse``."""

    def __init__(self, message: str, clashes: Sequence[Clash]):
        super().__init__(message)
        self.clashes = tuple(clashes)


def setting_for(session: Session, entry: DiaryEntry) -> str:
    """The organiser's ``conflicts`` (the global default's for an automation entry), read in
    one query: the check runs on every CRM-side booking."""
    rows = session.execute(select(SyncProfile.is_global, SyncProfile.conflicts).where(
        or_(SyncProfile.is_global, SyncProfile.user_id == entry.owner_user_id)
        if entry.owner_user_id is not None else SyncProfile.is_global)).all()
    own = next((value for is_global, value in rows if not is_global and value), None)
    default = next((value for is_global, value in rows if is_global and value), None)
    return own or default or Profile().conflicts


def _people(entry: DiaryEntry) -> list[int]:
    people = [entry.owner_user_id] if entry.owner_user_id is not None else []
    people.extend(p.user_id for p in entry.participants
                  if p.user_id is not None and p.partstat != "DECLINED")
    return sorted(set(people))


def find_clashes(session: Session, entry: DiaryEntry) -> list[Clash]:
    """The busy time of the entry's people that its (first) instance overlaps."""
    if entry.deleted_at is not None or not entry.busy or entry.end_utc <= entry.start_utc:
        return []
    people = _people(entry)
    if not people:
        return []
    # Lock the people's rows (in id order: no deadlock) so concurrent bookings check in turn;
    # SQLite has one writer at a time already.
    if session.get_bind().dialect.name != "sqlite":
        session.execute(select(User.id).where(User.id.in_(people)).order_by(User.id)
                        .with_for_update())
    names: dict[int, str] = {}

    def username(user_id: int | None) -> str | None:
        if user_id is None:
            return None
        if user_id not in names:
            user = session.get(User, user_id)
            names[user_id] = user.username if user is not None else ""
        return names[user_id]

    clashes = []
    spans_of = busy_spans_of(session, people, entry.start_utc, entry.end_utc,
                             exclude_entry=entry.id)
    for user_id in people:
        for span in spans_of[user_id]:
            if span.end > span.start:
                clashes.append(Clash(user_id, username(user_id) or "", span.entry_id, span.title,
                                     span.calendar, username(span.owner_user_id),
                                     span.start, span.end))
    return clashes


def check_booking(session: Session, entry: DiaryEntry, *, force: bool = False,
                  new: bool = False) -> list[Clash]:
    """After a CRM-side create (``new``) or change of ``entry`` is written (in its
    transaction): the overlaps it is allowed with (recorded), or :class:`ConflictRefused`."""
    setting = setting_for(session, entry)
    if setting == "allow":
        if not new:
            _clear(session, entry)
        return []
    clashes = find_clashes(session, entry)
    if clashes and setting == "refuse" and not force:
        raise ConflictRefused(
            f"the entry overlaps {len(clashes)} busy time(s): {describe(clashes)} (the "
            "organiser's conflicts setting is refuse; force books it anyway)", clashes)
    record(session, entry, clashes, "crm", new=new)
    return clashes


def note_client_write(session: Session, entry: DiaryEntry) -> list[Clash]:
    """After a calendar client's PUT: record its overlaps, never refuse it."""
    if setting_for(session, entry) == "allow":
        _clear(session, entry)
        return []
    clashes = find_clashes(session, entry)
    record(session, entry, clashes, "calendar")
    return clashes


def describe(clashes: Sequence[Clash]) -> str:
    shown = [f"{c.title!r} {iso(c.start)} to {iso(c.end)} ({c.user})" for c in clashes[:3]]
    more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
    return ", ".join(shown) + more


def _clear(session: Session, entry: DiaryEntry) -> None:
    session.execute(delete(EntryConflict).where(EntryConflict.entry_id == entry.id))


def record(session: Session, entry: DiaryEntry, clashes: Sequence[Clash], source: str, *,
           new: bool = False) -> None:
    """Replace the entry's recorded overlaps (a ``new`` entry has none yet); emit
    ``entry.conflict`` when there are any."""
    if not new:
        _clear(session, entry)
    if not clashes:
        return
    session.execute(insert(EntryConflict), [
        {"entry_id": entry.id, "user_id": c.user_id, "other_entry_id": c.entry_id,
         "other_title": c.title, "other_calendar": c.calendar, "start_utc": c.start,
         "end_utc": c.end, "source": source}
        for c in clashes
    ])
    if any(matches(patterns, "entry.conflict") for _, patterns in subscriptions(session)):
        owner = session.get(User, entry.owner_user_id) if entry.owner_user_id else None
        emit(session, "entry.conflict", {
            "id": entry.id, "uid": entry.uid, "title": entry.title,
            "start": iso(entry.start_utc), "end": iso(entry.end_utc),
            "owner": owner.username if owner else None, "source": source,
            "conflicts": [clash_json(c) for c in clashes],
        })


def clash_json(clash: Clash) -> dict[str, object]:
    return {"user": clash.user, "entry_id": clash.entry_id, "title": clash.title,
            "calendar": clash.calendar, "owner": clash.owner, "start": iso(clash.start),
            "end": iso(clash.end)}


def recorded(session: Session, entry_id: int) -> list[Clash]:
    """The overlaps recorded for the entry at its last write."""
    return [_clash(session, row) for row in session.scalars(
        select(EntryConflict).where(EntryConflict.entry_id == entry_id)
        .order_by(EntryConflict.start_utc, EntryConflict.id))]


@dataclass(frozen=True)
class RecordedConflict:
    id: int
    entry_id: int
    source: str
    created_at: datetime
    clash: Clash


def recent_conflicts(session: Session, user_id: int | None, *, limit: int,
                     after: int | None = None) -> list[RecordedConflict]:
    """Recorded overlaps of live entries, newest first (of one user's busy time, or
    everyone's); O(limit)."""
    query = (select(EntryConflict)
             .join(DiaryEntry, DiaryEntry.id == EntryConflict.entry_id)
             .where(DiaryEntry.deleted_at.is_(None))
             .order_by(EntryConflict.id.desc()).limit(limit))
    if user_id is not None:
        query = query.where(EntryConflict.user_id == user_id)
    if after is not None:
        query = query.where(EntryConflict.id < after)
    return [RecordedConflict(row.id, row.entry_id, row.source, row.created_at,
                             _clash(session, row))
            for row in session.scalars(query)]


def _clash(session: Session, row: EntryConflict) -> Clash:
    user = session.get(User, row.user_id)
    other = session.get(DiaryEntry, row.other_entry_id) if row.other_entry_id else None
    owner = other.owner if other is not None else user
    return Clash(row.user_id, user.username if user else "", row.other_entry_id, row.other_title,
                 row.other_calendar, owner.username if owner else None, row.start_utc,
                 row.end_utc)
