"""Diary types: the admin decides which are exposed (``syncable``) as calendars, and whether
a type holds events or tasks (``kind``: its calendars are then VTODO lists)."""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.errors import Conflict, Invalid, NotFound
from gateway.keyset import Page, page
from gateway.models import DiaryEntry, DiaryType

COLOR_RE = re.compile(r"#[0-9A-Fa-f]{6}")
KINDS = ("event", "task")  # a task type's calendars are VTODO lists
# Slugs a type may not take: the invitations calendar lives beside the type calendars.
RESERVED_SLUGS = frozenset({"invitations", "inbox", "outbox", "notifications"})


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug or "type"


def check_color(value: str) -> str:
    if not COLOR_RE.fullmatch(value):
        raise Invalid(f"{value!r} is not a colour: use #RRGGBB, e.g. #3A87AD")
    return value.upper()


def check_kind(value: str) -> str:
    if value not in KINDS:
        raise Invalid(f"{value!r} is not a diary type kind: use event or task")
    return value


def component_of(diary_type: DiaryType) -> str:
    """The iCalendar component the type's calendars hold."""
    return "VTODO" if diary_type.kind == "task" else "VEVENT"


def get_type(session: Session, name: str) -> DiaryType:
    diary_type = session.scalar(select(DiaryType).where(DiaryType.name == name))
    if diary_type is None:
        raise NotFound(f"no diary type named {name!r}")
    return diary_type


def _unique_slug(session: Session, name: str, exclude_id: int | None = None) -> str:
    base = slugify(name)
    if base in RESERVED_SLUGS:
        base = f"{base}-type"
    slug, n = base, 1
    while True:
        clash = session.scalar(select(DiaryType.id).where(DiaryType.slug == slug))
        if clash is None or clash == exclude_id:
            return slug
        n += 1
        slug = f"{base}-{n}"


def _check_name(session: Session, name: str, exclude_id: int | None = None) -> str:
    name = name.strip()
    if not name or len(name) > 100:
        raise Invalid("a diary type name has 1 to 100 characters")
    clash = session.scalar(select(DiaryType.id).where(DiaryType.name == name))
    if clash is not None and clash != exclude_id:
        raise Conflict(f"a diary type named {name!r} already exists")
    return name


def create_type(
    session: Session, name: str, *, syncable: bool = True, color: str = "#3A87AD",
    kind: str = "event",
) -> DiaryType:
    name = _check_name(session, name)
    diary_type = DiaryType(
        name=name, slug=_unique_slug(session, name), color=check_color(color), syncable=syncable,
        kind=check_kind(kind),
    )
    session.add(diary_type)
    session.flush()
    return diary_type


def update_type(
    session: Session,
    diary_type: DiaryType,
    *,
    rename: str | None = None,
    color: str | None = None,
    syncable: bool | None = None,
    kind: str | None = None,
) -> bool:
    """Apply changes; returns True when the type's publication must be recomputed.

    The slug (the calendar's URL) stays when a type is renamed, so clients keep their
    subscription; only the display name changes. The kind changes only while the type has no
    entries, deleted ones included (a calendar cannot turn its events into tasks): Conflict.
    """
    if kind is not None and check_kind(kind) != diary_type.kind:
        held = session.scalar(select(func.count(DiaryEntry.id))
                              .where(DiaryEntry.type_id == diary_type.id))
        if held:
            raise Conflict(f"diary type {diary_type.name!r} has {held} entries: its kind "
                           f"stays {diary_type.kind} (make a new {kind} type instead)")
        diary_type.kind = kind
    if rename is not None:
        diary_type.name = _check_name(session, rename, exclude_id=diary_type.id)
    if color is not None:
        diary_type.color = check_color(color)
    republish = syncable is not None and syncable != diary_type.syncable
    if syncable is not None:
        diary_type.syncable = syncable
    session.flush()
    return republish


def list_types(session: Session) -> list[DiaryType]:
    return list(session.scalars(select(DiaryType).order_by(DiaryType.name)))


def get_type_by_id(session: Session, type_id: int) -> DiaryType:
    diary_type = session.get(DiaryType, type_id)
    if diary_type is None:
        raise NotFound(f"no diary type {type_id}")
    return diary_type


def page_types(session: Session, *, limit: int, after: int | None) -> Page[DiaryType]:
    """Diary types by id, O(page)."""
    return page(session, select(DiaryType), DiaryType.id, limit, after)


def usage_counts(session: Session) -> dict[int, tuple[int, int]]:
    """Per type id: (live entries, distinct reps whose calendars hold them); one query."""
    rows = session.execute(
        select(DiaryEntry.type_id, func.count(DiaryEntry.id),
               func.count(func.distinct(DiaryEntry.owner_user_id)))
        .where(DiaryEntry.deleted_at.is_(None)).group_by(DiaryEntry.type_id))
    return {type_id: (int(entries), int(reps)) for type_id, entries, reps in rows}
