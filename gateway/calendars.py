"""The calendars a user sees, read straight from the publication rows.

Every read costs O(what it returns): listings, getctag and sync tokens come from the
``calendars`` and ``published_items`` rows, time ranges from the occurrence index.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from gateway.ical import overlaps_window
from gateway.models import Calendar, DiaryEntry, DiaryType, Occurrence, PublishedItem, User
from gateway.occurrence_index import LONG
from gateway.profiles import effective_profile
from gateway.publication import INVITATIONS

TOKEN_PREFIX = "http://crm-gateway.invalid/ns/sync/"

log = logging.getLogger(__name__)


class InvalidSyncToken(ValueError):
    """A sync token this calendar did not issue, or issued before a reset."""


@dataclass(frozen=True)
class CalendarView:
    """One calendar of one user, as a client sees it."""

    user_id: int
    slug: str
    name: str
    color: str
    writable: bool
    diary_type_id: int | None
    calendar_id: int | None  # None until something was published to it
    revision: int
    epoch: int
    props: dict[str, str]
    updated_at: datetime | None
    component: str = "VEVENT"  # "VTODO": a task type's calendar (a task list)

    @property
    def token(self) -> str:
        return f"{TOKEN_PREFIX}{self.epoch}-{self.revision}"

    @property
    def ctag(self) -> str:
        return f'"{self.epoch}-{self.revision}"'


@dataclass(frozen=True)
class ItemView:
    href: str
    uid: str
    ical: str
    etag: str
    start: datetime
    end: datetime | None
    updated_at: datetime


def _view(user: User, slug: str, name: str, color: str, writable: bool,
          type_id: int | None, row: Calendar | None, kind: str = "event") -> CalendarView:
    props = dict(row.props) if row is not None and row.props else {}
    return CalendarView(
        user.id, slug, name, color, writable, type_id,
        row.id if row else None, row.revision if row else 0, row.epoch if row else 1,
        props, row.updated_at if row else None, "VTODO" if kind == "task" else "VEVENT",
    )


def user_calendars(session: Session, user: User) -> list[CalendarView]:
    """The syncable type calendars (in name order) and the invitations calendar."""
    if not user.diary_sync:
        return []
    profile = effective_profile(session, user.id)
    rows = {row.slug: row for row in session.scalars(
        select(Calendar).where(Calendar.user_id == user.id))}
    views = [
        _view(user, t.slug, t.name, t.color, profile.calendar_writable, t.id, rows.get(t.slug),
              t.kind)
        for t in session.scalars(
            select(DiaryType).where(DiaryType.syncable).order_by(DiaryType.name))
    ]
    views.append(_view(user, INVITATIONS, "Invitations", "#8E8E93", False, None,
                       rows.get(INVITATIONS)))
    return views


def user_calendar(session: Session, user: User, slug: str) -> CalendarView | None:
    if not user.diary_sync:
        return None
    profile = effective_profile(session, user.id)
    row = session.scalar(
        select(Calendar).where(Calendar.user_id == user.id, Calendar.slug == slug))
    if slug == INVITATIONS:
        return _view(user, slug, "Invitations", "#8E8E93", False, None, row)
    diary_type = session.scalar(
        select(DiaryType).where(DiaryType.slug == slug, DiaryType.syncable))
    if diary_type is None:
        return None
    return _view(user, slug, diary_type.name, diary_type.color, profile.calendar_writable,
                 diary_type.id, row, diary_type.kind)


def _items(rows: Iterable[PublishedItem]) -> list[ItemView]:
    return [ItemView(r.href, r.uid, r.ical, r.etag, r.start_utc, r.end_utc, r.updated_at)
            for r in rows]


def _live_items(rows: Iterable[PublishedItem]) -> list[ItemView]:
    """``_items`` of the rows that are not tombstones.

    Lookups by a key (href, uid, occurrence) filter tombstones here rather than in SQL: with
    ``deleted = false`` in the WHERE clause, SQLite's planner (no statistics) prefers the
    (calendar_id, deleted, ...) range index and scans the whole calendar instead of using the
    key's index.
    """
    return _items(r for r in rows if not r.deleted)


def _in_calendar(calendar: CalendarView) -> Select[PublishedItem]:
    """The calendar's rows, tombstones included: for ``_live_items``."""
    return select(PublishedItem).where(PublishedItem.calendar_id == calendar.calendar_id)


def all_items(session: Session, calendar: CalendarView) -> list[ItemView]:
    if calendar.calendar_id is None:
        return []
    # Plain columns, not ORM objects: a Depth:1 PROPFIND lists every item.
    rows = session.execute(
        select(PublishedItem.href, PublishedItem.uid, PublishedItem.ical, PublishedItem.etag,
               PublishedItem.start_utc, PublishedItem.end_utc, PublishedItem.updated_at)
        .where(PublishedItem.calendar_id == calendar.calendar_id,
               PublishedItem.deleted.is_(False))
        .order_by(PublishedItem.href))
    return [ItemView(*row) for row in rows]


def items_by_href(
    session: Session, calendar: CalendarView, hrefs: Iterable[str]
) -> dict[str, ItemView]:
    wanted = list(dict.fromkeys(hrefs))
    if calendar.calendar_id is None or not wanted:
        return {}
    found: dict[str, ItemView] = {}
    for chunk in range(0, len(wanted), 500):
        rows = session.scalars(_in_calendar(calendar).where(
            PublishedItem.href.in_(wanted[chunk:chunk + 500])))
        found.update((item.href, item) for item in _live_items(rows))
    return found


def items_in_range(
    session: Session, calendar: CalendarView, start: datetime, end: datetime
) -> list[tuple[ItemView, bool]]:
    """Items with an instance overlapping [start, end) (RFC 4791 9.9), each with whether the
    match is exact.

    Series indexed only up to a horizon before ``end`` are checked here, each within the
    recurrence work budget: those with no instance in the window are left out, those the
    budget could not decide come with ``False`` (the caller's own check decides), and an
    item that cannot be evaluated at all is left out and logged, so one stored object never
    fails the query."""
    if calendar.calendar_id is None:
        return []
    overlap = or_(
        Occurrence.end_utc > start,
        and_(Occurrence.end_utc == Occurrence.start_utc, Occurrence.start_utc >= start),
    )
    short = and_(Occurrence.long.is_(False), Occurrence.start_utc >= start - LONG)
    matched = (
        select(Occurrence.item_id)
        .where(Occurrence.calendar_id == calendar.calendar_id, Occurrence.start_utc < end,
               overlap, or_(short, Occurrence.long.is_(True)))
        .distinct()
        .subquery()
    )
    # A join from the matched occurrences (not ``id IN (...)`` beside the calendar filter,
    # which SQLite answers by scanning every row of the calendar): O(what matches).
    exact_rows = session.scalars(
        _in_calendar(calendar).join(matched, PublishedItem.id == matched.c.item_id)
        .order_by(PublishedItem.start_utc, PublishedItem.id))
    result = [(item, True) for item in _live_items(exact_rows)]
    seen = {item.href for item, _ in result}
    for item in _beyond_horizon(session, calendar, end):
        if item.href in seen:
            continue
        try:
            found = overlaps_window(item.ical, start, end)
        except Exception:  # one stored object must never fail the query
            log.warning("calendar %s: cannot evaluate %r for a time range; left out",
                        calendar.calendar_id, item.href, exc_info=True)
            continue
        if found is not False:
            result.append((item, found is True))
    return result


# The live rows that have an occurrence horizon, per calendar id: (epoch, revision the set is
# current for, {row id: horizon}). See _beyond_horizon.
_horizons: dict[int, tuple[int, int, dict[int, datetime]]] = {}
_horizons_lock = threading.Lock()


def _beyond_horizon(session: Session, calendar: CalendarView, end: datetime) -> list[ItemView]:
    """Live items whose occurrences are indexed only up to a horizon before ``end``.

    published_items has no index on ``horizon_utc``, and scanning the calendar for the few
    rows that have one (series without an end, or with more than MAX_INSTANCES instances)
    would make every time-range query O(calendar). So their ids are kept per calendar and
    brought up to date from the rows changed since (the sync index), which is correct for the
    reason sync-collection is: every change to a row takes a new calendar revision. The rows
    themselves are then read by id, with the horizon and liveness checked again in SQL.
    """
    calendar_id = calendar.calendar_id
    assert calendar_id is not None
    with _horizons_lock:
        cached = _horizons.get(calendar_id)
    rows = select(PublishedItem.id, PublishedItem.horizon_utc, PublishedItem.deleted).where(
        PublishedItem.calendar_id == calendar_id)
    if cached is None or cached[0] != calendar.epoch:  # first use, or the sync was reset
        known: dict[int, datetime] = {}
        changed = session.execute(rows.where(PublishedItem.horizon_utc.is_not(None))).all()
    elif calendar.revision > cached[1]:
        known = cached[2]
        changed = session.execute(rows.where(PublishedItem.revision > cached[1])).all()
    else:  # current (a view older than the set only means the set is newer)
        known = cached[2]
        changed = None
    if changed is not None:
        known = dict(known)
        for item_id, horizon, deleted in changed:
            if horizon is None or deleted:
                known.pop(item_id, None)
            else:
                known[item_id] = horizon
        with _horizons_lock:
            current = _horizons.get(calendar_id)
            if (current is None or current[0] != calendar.epoch
                    or current[1] <= calendar.revision):
                _horizons[calendar_id] = (calendar.epoch, calendar.revision, known)
    wanted = sorted(item_id for item_id, horizon in known.items() if horizon < end)
    found: list[ItemView] = []
    for chunk in range(0, len(wanted), 500):
        found += _live_items(session.scalars(_in_calendar(calendar).where(
            PublishedItem.id.in_(wanted[chunk:chunk + 500]), PublishedItem.horizon_utc < end)))
    return found


def has_uid(session: Session, calendar: CalendarView, uid: str) -> bool:
    if calendar.calendar_id is None:
        return False
    # published_items has no index on uid; its rows' uid is their entry's (publication writes
    # them together), so the entries' uid index finds the candidates, then the
    # (calendar_id, entry_id) key.
    entries = select(DiaryEntry.id).where(DiaryEntry.uid == uid)
    deleted = session.scalars(
        select(PublishedItem.deleted).where(
            PublishedItem.calendar_id == calendar.calendar_id,
            PublishedItem.entry_id.in_(entries), PublishedItem.uid == uid))
    return not all(deleted)


def changes_since(session: Session, calendar: CalendarView, token: str) -> list[str]:
    """Hrefs changed or deleted after ``token`` (RFC 6578); InvalidSyncToken if unknown."""
    if not token.startswith(TOKEN_PREFIX):
        raise InvalidSyncToken(token)
    epoch_text, _, revision_text = token[len(TOKEN_PREFIX):].partition("-")
    if not (epoch_text.isdigit() and revision_text.isdigit()):
        raise InvalidSyncToken(token)
    epoch, revision = int(epoch_text), int(revision_text)
    if epoch != calendar.epoch or revision > calendar.revision:
        raise InvalidSyncToken(token)
    if calendar.calendar_id is None or revision == calendar.revision:
        return []
    return list(session.scalars(
        select(PublishedItem.href).where(
            PublishedItem.calendar_id == calendar.calendar_id,
            PublishedItem.revision > revision)
    ))
