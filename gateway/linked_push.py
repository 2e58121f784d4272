"""What a pass pushes to a linked account, and what it records once the server took it.

The rep's gateway calendars (type calendars and Invitations) are read from their
``published_items`` rows changed since the link's cursor of each calendar: a pass with no
CRM change reads nothing. Each changed entry becomes one write: a PUT of the gateway's own
view (``If-None-Match: *`` for a new object, ``If-Match`` with the recorded ETag otherwise),
or a DELETE with ``If-Match``. Entries fetched from a source calendar go back to their own
object there; everything else goes to the target calendar under ``crm-<entry id>.ics``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.calendars import user_calendars
from gateway.clock import utcnow
from gateway.linked_state import pushes
from gateway.models import (
    DiaryEntry,
    LinkedAccount,
    LinkedCalendar,
    LinkedObject,
    PublishedItem,
    User,
)
from gateway.profiles import effective_profile


@dataclass(frozen=True)
class PushItem:
    """One write to the account. ``ical`` None: delete; ``if_match`` None: create."""

    entry_id: int
    entry_revision: int
    calendar_id: int  # the linked calendar the object lives in
    href: str  # the object's path on the account
    uid: str
    ical: str | None
    shown_etag: str | None
    if_match: str | None


@dataclass(frozen=True)
class Pending:
    items: list[PushItem]
    cursors: dict[str, list[int]]  # the cursors to save once every item was written


def object_href(target_path: str, entry_id: int) -> str:
    return f"{target_path.rstrip('/')}/crm-{entry_id}.ics"


def pending_pushes(session: Session, link: LinkedAccount, user: User, *,
                   forced: Collection[int] = ()) -> Pending:
    """The writes that bring the account up to the CRM, O(changes since the cursors);
    ``forced`` entries are pushed whatever the cursors say (the CRM won a conflict)."""
    if not pushes(effective_profile(session, user.id).direction):
        return Pending([], dict(link.push_cursors))
    columns = (PublishedItem.entry_id, PublishedItem.etag, PublishedItem.ical,
               PublishedItem.deleted, PublishedItem.uid)
    rows: dict[int, tuple[str, str, bool, str]] = {}
    cursors = dict(link.push_cursors)
    # The diary's events: a task list's VTODOs would be refused by (or clutter) the event
    # calendar they are pushed to.
    views = [v for v in user_calendars(session, user)
             if v.calendar_id is not None and v.component == "VEVENT"]
    for view in views:
        query = select(*columns).where(PublishedItem.calendar_id == view.calendar_id)
        cursor = cursors.get(str(view.calendar_id))
        if cursor is not None and cursor[0] == view.epoch:
            if cursor[1] >= view.revision:
                continue
            query = query.where(PublishedItem.revision > cursor[1])
        for entry_id, etag, ical, deleted, uid in session.execute(query):
            if entry_id not in rows or rows[entry_id][2]:  # a live row beats a tombstone
                rows[entry_id] = (etag, ical, deleted, uid)
        cursors[str(view.calendar_id)] = [view.epoch, view.revision]
    forced = [entry_id for entry_id in forced if entry_id not in rows]
    if forced:
        for entry_id, etag, ical, deleted, uid in session.execute(
                select(*columns).where(
                    PublishedItem.entry_id.in_(forced), PublishedItem.deleted.is_(False),
                    PublishedItem.calendar_id.in_([v.calendar_id for v in views]))):
            rows[entry_id] = (etag, ical, deleted, uid)
    if not rows:
        return Pending([], cursors)
    calendars = {c.id: c for c in session.scalars(
        select(LinkedCalendar).where(LinkedCalendar.account_id == link.id))}
    target = next((c for c in calendars.values() if c.role == "target"), None)
    ids = list(rows)
    objects: dict[int, LinkedObject] = {}
    revisions: dict[int, int] = {}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        for obj in session.scalars(select(LinkedObject).where(
                LinkedObject.calendar_id.in_(list(calendars)), LinkedObject.entry_id.in_(part))):
            assert obj.entry_id is not None
            objects[obj.entry_id] = obj
        revisions.update(session.execute(select(DiaryEntry.id, DiaryEntry.revision).where(
            DiaryEntry.id.in_(part))).all())
    items = []
    for entry_id, (etag, ical, deleted, uid) in sorted(rows.items()):
        found = objects.get(entry_id)
        revision = revisions.get(entry_id, 0)
        if deleted:
            if found is not None:
                items.append(PushItem(entry_id, revision, found.calendar_id, found.href, uid,
                                      None, None, found.etag))
            continue
        if found is not None and found.shown_etag == etag:
            continue  # the account holds this view already (or it came from there)
        if found is not None:
            items.append(PushItem(entry_id, revision, found.calendar_id, found.href, uid, ical,
                                  etag, found.etag))
        elif target is not None:
            path = urlsplit(target.url).path
            items.append(PushItem(entry_id, revision, target.id, object_href(path, entry_id),
                                  uid, ical, etag, None))
    return Pending(items, cursors)


def record_written(session: Session, item: PushItem, etag: str | None) -> None:
    """The server took ``item`` (and answered ``etag``, if it did)."""
    obj = session.scalar(select(LinkedObject).where(
        LinkedObject.calendar_id == item.calendar_id, LinkedObject.href == item.href))
    if item.ical is None:
        if obj is not None and obj.conflict_at is not None:
            obj.etag, obj.pushed = None, False  # gone there; the kept version stays listed
        elif obj is not None:
            session.delete(obj)
        return
    if obj is None:
        obj = LinkedObject(calendar_id=item.calendar_id, href=item.href, pushed=True)
        session.add(obj)
    obj.uid = item.uid
    obj.etag = etag
    obj.entry_id = item.entry_id
    obj.entry_revision = item.entry_revision
    obj.shown_etag = item.shown_etag
    obj.updated_at = utcnow()
    session.flush()


def record_gone(session: Session, item: PushItem) -> None:
    """The object is no longer on the account (a DELETE found nothing)."""
    obj = session.scalar(select(LinkedObject).where(
        LinkedObject.calendar_id == item.calendar_id, LinkedObject.href == item.href))
    if obj is not None:
        session.delete(obj)
        session.flush()


def save_cursors(session: Session, link_id: int, cursors: dict[str, list[int]]) -> None:
    link = session.get(LinkedAccount, link_id)
    if link is not None:
        link.push_cursors = dict(cursors)


def pushed_objects(session: Session, link_id: int) -> list[tuple[str, str | None]]:
    """(href, ETag) of every object the gateway created on the account (for unlink)."""
    return list(session.execute(
        select(LinkedObject.href, LinkedObject.etag)
        .join(LinkedCalendar, LinkedCalendar.id == LinkedObject.calendar_id)
        .where(LinkedCalendar.account_id == link_id, LinkedObject.pushed.is_(True))
        .order_by(LinkedObject.href)).all())


def known_hrefs(session: Session, calendar_id: int) -> set[str]:
    return set(session.scalars(select(LinkedObject.href).where(
        LinkedObject.calendar_id == calendar_id, LinkedObject.entry_id.is_not(None))))
