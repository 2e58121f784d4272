"""One sync pass of a linked account, as decisions over plain values and the state they keep.

Push: what each of the rep's gateway calendars publishes (``published_items``, read since a
per-calendar cursor, so a pass costs O(changes)) goes to the target calendar, rendered as
CalDAV serves it; an entry fetched from a source calendar goes back to where it came from.
Fetch: events of source calendars, and account-side edits of pushed ones, come in through
the path calendar clients' PUTs take (``gateway.client_writes``), so the same rules apply.
Loop guard: each object's ETag on the account and the ETag of the gateway's own view are
recorded, so what the gateway just wrote is never taken for a change on either side.

Conflicts (both sides changed since the last pass) follow the sync profile's direction:
``crm_to_calendar`` keeps the CRM's version, ``calendar_to_crm`` the account's, ``two_way``
the one edited last. The losing version is kept on the object (``conflict_ical``) and
reported, never dropped silently.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.calendars import CalendarView, user_calendar, user_calendars
from gateway.client_writes import HREF_RE, delete_event, parse_client_object, put_event
from gateway.clock import utcnow
from gateway.errors import DomainError
from gateway.linked_calendars import calendar_key
from gateway.models import (
    DiaryEntry,
    DiaryType,
    LinkedAccount,
    LinkedCalendar,
    LinkedObject,
    PublishedItem,
    User,
)
from gateway.profiles import effective_profile

CRM, CALENDAR = "crm", "calendar"
_STAMP = re.compile(r"^(LAST-MODIFIED|DTSTAMP)[;:](?:.*:)?(\d{8}T\d{6})Z?\s*$", re.M)


def pushes(direction: str) -> bool:
    """Whether CRM entries go to the account (every direction but calendar_to_crm)."""
    return direction != "calendar_to_crm"


def fetches_into_crm(direction: str) -> bool:
    """Whether fetched events become entries (else they only count as busy time)."""
    return direction != "crm_to_calendar"


@dataclass(frozen=True)
class Resolution:
    winner: str | None  # CRM, CALENDAR, or None: nothing to do
    conflict: bool  # the losing side's version is kept and reported


def resolve(direction: str, *, crm_changed: bool, remote_changed: bool,
            calendar_writable: bool, remote_newer: bool) -> Resolution:
    """Which side's version of one event stands after a pass.

    ``calendar_writable``: the account's version may land in the CRM (the direction fetches
    and the entry accepts calendar writes: not an event the rep only attends)."""
    if not remote_changed:
        return Resolution(CRM if crm_changed else None, False)
    may_fetch = calendar_writable and fetches_into_crm(direction)
    if not crm_changed:
        # An account-side edit the CRM may not take is overwritten, and kept.
        return Resolution(CALENDAR, False) if may_fetch else Resolution(CRM, True)
    if not may_fetch or direction == "crm_to_calendar":
        return Resolution(CRM, True)
    if direction == "calendar_to_crm":
        return Resolution(CALENDAR, True)
    return Resolution(CALENDAR if remote_newer else CRM, True)


def remote_stamp(text: str) -> datetime | None:
    """When the account last changed an event: LAST-MODIFIED, else DTSTAMP (UTC)."""
    found = dict((name, value) for name, value in _STAMP.findall(text.replace("\r\n ", "")))
    value = found.get("LAST-MODIFIED") or found.get("DTSTAMP")
    if value is None:
        return None
    return datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


@dataclass(frozen=True)
class RemoteObject:
    """An event as listed on the account, for dedupe."""

    href: str
    etag: str | None
    uid: str
    title: str
    start: datetime
    end: datetime


def duplicates(objects: Sequence[RemoteObject], known: set[str]) -> list[RemoteObject]:
    """Objects to remove: same UID, or same title+start+end, as another; in each group the
    one the gateway knows (``known`` hrefs) stays, else the first by href."""
    doomed: dict[str, RemoteObject] = {}
    for key in (lambda o: ("uid", o.uid), lambda o: ("when", o.title, o.start, o.end)):
        groups: dict[tuple[object, ...], list[RemoteObject]] = {}
        for obj in objects:
            if obj.href not in doomed:
                groups.setdefault(key(obj), []).append(obj)
        for group in groups.values():
            if len(group) < 2:
                continue
            keep = min(group, key=lambda o: (o.href not in known, o.href))
            doomed.update((o.href, o) for o in group if o is not keep)
    return sorted(doomed.values(), key=lambda o: o.href)


# --- fetch ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteChange:
    """One object of a linked calendar that changed on the account; ``ical`` None: deleted."""

    calendar_id: int
    href: str
    etag: str | None
    ical: str | None


@dataclass(frozen=True)
class Applied:
    href: str
    action: str  # created, updated, deleted, busy, adopted, kept-crm, refused, unchanged
    entry_id: int | None = None
    conflict: str | None = None


def known_etags(session: Session, calendar_id: int) -> dict[str, str | None]:
    """Every object the gateway knows in one linked calendar: href -> ETag."""
    return dict(session.execute(select(LinkedObject.href, LinkedObject.etag).where(
        LinkedObject.calendar_id == calendar_id)).all())


def changed_hrefs(session: Session, calendar_id: int,
                  listed: Iterable[tuple[str, str | None]]) -> list[str]:
    """Of the listed (href, ETag) pairs, those not already known with that ETag: the loop
    guard that keeps the gateway's own writes from coming back as changes."""
    listed = list(listed)
    known: dict[str, str | None] = {}
    hrefs = [href for href, _ in listed]
    for chunk in range(0, len(hrefs), 500):
        known.update(session.execute(select(LinkedObject.href, LinkedObject.etag).where(
            LinkedObject.calendar_id == calendar_id,
            LinkedObject.href.in_(hrefs[chunk:chunk + 500]))).all())
    return [href for href, etag in listed if etag is None or known.get(href, "") != etag]


def save_calendar_state(session: Session, calendar_id: int, *, sync_token: str | None,
                        ctag: str | None) -> None:
    calendar = session.get(LinkedCalendar, calendar_id)
    if calendar is not None:
        calendar.sync_token, calendar.ctag = sync_token, ctag


def _view_of(session: Session, user: User, entry: DiaryEntry) -> CalendarView | None:
    return user_calendar(session, user, entry.type.slug)


def _shown_etag(session: Session, user: User, entry_id: int) -> str | None:
    """The ETag of what the rep's own calendar shows of the entry now."""
    shown = [v.calendar_id for v in user_calendars(session, user) if v.calendar_id]
    return session.scalar(select(PublishedItem.etag).where(
        PublishedItem.entry_id == entry_id, PublishedItem.calendar_id.in_(shown),
        PublishedItem.deleted.is_(False)).limit(1))


def _new_href(calendar_id: int, remote_href: str) -> str:
    name = f"linked{calendar_id}-{calendar_key(remote_href)}"
    if len(name) > 255 or not HREF_RE.fullmatch(name):
        name = f"linked{calendar_id}-{hashlib.sha1(remote_href.encode()).hexdigest()}.ics"
    return name


def _live_entry(session: Session, user: User, uid: str) -> DiaryEntry | None:
    return session.scalar(select(DiaryEntry).where(
        DiaryEntry.owner_user_id == user.id, DiaryEntry.uid == uid,
        DiaryEntry.deleted_at.is_(None)))


def _entry_seen(session: Session, user: User, uid: str) -> DiaryEntry | None:
    """The live entry with this UID the rep owns, or attends (an invitation pushed out)."""
    own = _live_entry(session, user, uid)
    if own is not None:
        return own
    return session.scalar(
        select(DiaryEntry).join(PublishedItem, PublishedItem.entry_id == DiaryEntry.id)
        .where(DiaryEntry.uid == uid, DiaryEntry.deleted_at.is_(None),
               PublishedItem.deleted.is_(False))
        .where(PublishedItem.calendar_id.in_(
            [v.calendar_id for v in user_calendars(session, user) if v.calendar_id]))
        .limit(1))


def _writable_from_calendar(session: Session, user: User, entry: DiaryEntry) -> bool:
    if entry.owner_user_id != user.id or not entry.type.syncable:
        return False
    view = _view_of(session, user, entry)
    return view is not None and view.writable


def _record(obj: LinkedObject, session: Session, user: User, entry: DiaryEntry | None,
            etag: str | None) -> None:
    obj.etag = etag
    obj.entry_id = entry.id if entry is not None else None
    obj.entry_revision = entry.revision if entry is not None else None
    obj.shown_etag = _shown_etag(session, user, entry.id) if entry is not None else None
    obj.updated_at = utcnow()


def _keep_loser(obj: LinkedObject, text: str | None, note: str) -> None:
    obj.conflict_ical, obj.conflict_note, obj.conflict_at = text, note, utcnow()


def apply_remote(session: Session, link: LinkedAccount, user: User,
                 change: RemoteChange) -> Applied:
    """Take one account-side change into the CRM, or decide the CRM's version stands.

    Runs in the caller's transaction (which holds the lease). ``kept-crm`` means the CRM's
    version must be pushed again over the account's (the caller does so)."""
    direction = effective_profile(session, user.id).direction
    calendar = session.get(LinkedCalendar, change.calendar_id)
    assert calendar is not None and calendar.account_id == link.id
    obj = session.scalar(select(LinkedObject).where(
        LinkedObject.calendar_id == calendar.id, LinkedObject.href == change.href))
    if obj is not None and change.etag is not None and obj.etag == change.etag:
        return Applied(change.href, "unchanged", obj.entry_id)
    entry = session.get(DiaryEntry, obj.entry_id) if obj and obj.entry_id else None
    if change.ical is None:
        return _remote_deleted(session, user, direction, obj, entry, change)
    try:
        data = parse_client_object(change.ical)
    except DomainError as exc:
        return Applied(change.href, "refused", None, f"not taken: {exc}")
    if obj is None:
        found = _entry_seen(session, user, data.uid)
        if found is not None:  # the rep's entry already (a reset, or pushed and listed)
            obj = LinkedObject(calendar_id=calendar.id, href=change.href, uid=data.uid,
                               pushed=calendar.role == "target")
            session.add(obj)
            _record(obj, session, user, found, change.etag)
            obj.shown_etag = None  # pushed again over whatever the account holds
            return Applied(change.href, "adopted", found.id)
        if calendar.role != "source":
            return Applied(change.href, "unchanged")  # the rep's own event in the target
        obj = LinkedObject(calendar_id=calendar.id, href=change.href, uid=data.uid,
                           pushed=False)
        session.add(obj)
        if not fetches_into_crm(direction):
            _record(obj, session, user, None, change.etag)
            obj.busy_start_utc, obj.busy_end_utc = data.span_start, data.span_end
            return Applied(change.href, "busy")
        diary_type = session.get(DiaryType, calendar.diary_type_id or -1)
        view = user_calendar(session, user, diary_type.slug) if diary_type else None
        if view is None or not view.writable:
            session.expunge(obj)
            return Applied(change.href, "refused", None, "no writable diary type to fetch into")
        outcome = put_event(session, user, view, _new_href(calendar.id, change.href),
                            change.ical, data)
        new = _live_entry(session, user, data.uid)
        _record(obj, session, user, new, change.etag)
        return Applied(change.href, "created" if outcome.created else "updated",
                       new.id if new else None)
    if entry is None:  # busy time only
        obj.busy_start_utc, obj.busy_end_utc = data.span_start, data.span_end
        _record(obj, session, user, None, change.etag)
        return Applied(change.href, "busy")
    if obj.etag is None:  # pushed, but the server gave no ETag: this is what we wrote
        obj.etag = change.etag
        return Applied(change.href, "unchanged", entry.id)
    crm_changed = entry.deleted_at is not None or entry.revision != obj.entry_revision
    stamp = remote_stamp(change.ical)
    writable = entry.deleted_at is None and _writable_from_calendar(session, user, entry)
    verdict = resolve(direction, crm_changed=crm_changed, remote_changed=True,
                      calendar_writable=writable,
                      remote_newer=stamp is not None and stamp > entry.updated_at)
    if verdict.winner == CALENDAR:
        before = entry.ical
        view = _view_of(session, user, entry)
        assert view is not None
        put_event(session, user, view, entry.href, change.ical, data)
        session.refresh(entry)
        _record(obj, session, user, entry, change.etag)
        note = None
        if verdict.conflict:
            note = (f"edited on both sides; the account's version stands ({direction}); "
                    "the CRM's version is kept here")
            _keep_loser(obj, before, note)
        return Applied(change.href, "updated", entry.id, note)
    obj.etag = change.etag  # the next write's If-Match: the account's version, now known
    note = (f"edited on the account, but the CRM's version stands ({direction}"
            + ("" if writable else "; read-only in the CRM") + "); the account's is kept here")
    if verdict.conflict:
        _keep_loser(obj, change.ical, note)
    obj.shown_etag = None
    return Applied(change.href, "kept-crm", entry.id, note if verdict.conflict else None)


def _remote_deleted(session: Session, user: User, direction: str, obj: LinkedObject | None,
                    entry: DiaryEntry | None, change: RemoteChange) -> Applied:
    if obj is None:
        return Applied(change.href, "unchanged")
    if entry is None or entry.deleted_at is not None:
        if obj.conflict_at is None:
            session.delete(obj)
        return Applied(change.href, "unchanged", None)
    crm_changed = entry.revision != obj.entry_revision
    verdict = resolve(direction, crm_changed=crm_changed, remote_changed=True,
                      calendar_writable=_writable_from_calendar(session, user, entry),
                      remote_newer=True)
    if verdict.winner == CALENDAR:
        view = _view_of(session, user, entry)
        assert view is not None
        delete_event(session, user, view, entry.href)
        session.delete(obj)
        return Applied(change.href, "deleted", entry.id)
    session.delete(obj)  # gone there: the CRM's version is pushed as a new object
    return Applied(change.href, "kept-crm", entry.id,
                   f"deleted on the account, but the CRM's version stands ({direction})")
