"""The calendars a user sees, read straight from the publication rows.

Every read costs O(what it returns): listings, getctag and sync tokens come from the
``calendars`` and ``published_items`` rows, time ranges from the occurrence index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from gateway.models import Calendar, DiaryType, Occurrence, PublishedItem, User
from gateway.occurrence_index import LONG
from gateway.profiles import effective_profile
from gateway.publication import INVITATIONS

TOKEN_PREFIX = "http://crm-gateway.invalid/ns/sync/"


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
          type_id: int | None, row: Calendar | None) -> CalendarView:
    props = dict(row.props) if row is not None and row.props else {}
    return CalendarView(
        user.id, slug, name, color, writable, type_id,
        row.id if row else None, row.revision if row else 0, row.epoch if row else 1,
        props, row.updated_at if row else None,
    )


def user_calendars(session: Session, user: User) -> list[CalendarView]:
    """The syncable type calendars (in name order) and the invitations calendar."""
    if not user.diary_sync:
        return []
    profile = effective_profile(session, user.id)
    rows = {row.slug: row for row in session.scalars(
        select(Calendar).where(Calendar.user_id == user.id))}
    views = [
        _view(user, t.slug, t.name, t.color, profile.calendar_writable, t.id, rows.get(t.slug))
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
                 diary_type.id, row)


def _items(rows: Iterable[PublishedItem]) -> list[ItemView]:
    return [ItemView(r.href, r.uid, r.ical, r.etag, r.start_utc, r.end_utc, r.updated_at)
            for r in rows]


def _live(calendar: CalendarView) -> Select[PublishedItem]:
    return select(PublishedItem).where(
        PublishedItem.calendar_id == calendar.calendar_id, PublishedItem.deleted.is_(False))


def all_items(session: Session, calendar: CalendarView) -> list[ItemView]:
    if calendar.calendar_id is None:
        return []
    return _items(session.scalars(_live(calendar).order_by(PublishedItem.href)))


def items_by_href(
    session: Session, calendar: CalendarView, hrefs: Iterable[str]
) -> dict[str, ItemView]:
    wanted = list(dict.fromkeys(hrefs))
    if calendar.calendar_id is None or not wanted:
        return {}
    found: dict[str, ItemView] = {}
    for chunk in range(0, len(wanted), 500):
        rows = session.scalars(_live(calendar).where(
            PublishedItem.href.in_(wanted[chunk:chunk + 500])))
        found.update((item.href, item) for item in _items(rows))
    return found


def items_in_range(
    session: Session, calendar: CalendarView, start: datetime, end: datetime
) -> list[tuple[ItemView, bool]]:
    """Items with an instance overlapping [start, end) (RFC 4791 9.9), each with whether the
    match is exact; inexact ones (series indexed only up to a horizon) need the caller's
    own check."""
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
    )
    exact_rows = session.scalars(_live(calendar).where(PublishedItem.id.in_(matched)))
    result = [(item, True) for item in _items(exact_rows)]
    seen = {item.href for item, _ in result}
    beyond = session.scalars(_live(calendar).where(
        PublishedItem.horizon_utc.is_not(None), PublishedItem.horizon_utc < end))
    result.extend((item, False) for item in _items(beyond) if item.href not in seen)
    return result


def has_uid(session: Session, calendar: CalendarView, uid: str) -> bool:
    if calendar.calendar_id is None:
        return False
    return session.scalar(
        select(PublishedItem.id).where(
            PublishedItem.calendar_id == calendar.calendar_id, PublishedItem.uid == uid,
            PublishedItem.deleted.is_(False)).limit(1)
    ) is not None


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
