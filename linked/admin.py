"""Account-side operations an administrator asks for: remove what was pushed, dedupe.

Each reads the gateway's state in a short transaction, talks to the server outside any
transaction, then records what the server did.
"""

from __future__ import annotations

from sqlalchemy import delete

from gateway.db import Store
from gateway.ical import InvalidCalendarObject, parse_event
from gateway.linked_calendars import LinkTarget
from gateway.linked_ops import Removal
from gateway.linked_push import known_hrefs, pushed_objects
from gateway.linked_state import RemoteObject, duplicates
from gateway.models import LinkedObject
from linked.dav import Account, PreconditionFailed


def remove_pushed(store: Store, target: LinkTarget, *, timeout: int) -> Removal:
    """Delete every object the gateway created on the account, each with If-Match."""
    with store.reading() as session:
        objects = pushed_objects(session, target.link_id)
    result = Removal()
    account = Account(target.url, target.login, target.password, timeout)
    try:
        for href, etag in objects:
            try:
                account.delete(href, etag)
                result.removed.append(href)
            except PreconditionFailed:
                result.kept.append(href)
    finally:
        account.close()
    return result


def _listed(href: str, etag: str | None, text: str) -> RemoteObject | None:
    try:
        data = parse_event(text)
    except InvalidCalendarObject:
        return None
    return RemoteObject(href, etag, data.uid, data.title, data.start, data.end)


def dedupe(store: Store, target: LinkTarget, *, dry_run: bool, timeout: int) -> list[str]:
    """Remove duplicates (same UID, or same title, start and end) from each linked calendar,
    keeping the one the gateway knows; returns the removed (or, dry run, removable) hrefs."""
    account = Account(target.url, target.login, target.password, timeout)
    doomed: list[tuple[int, RemoteObject]] = []
    try:
        for calendar in target.calendars:
            listed = [obj for href, (etag, text) in account.all_objects(calendar.url).items()
                      if (obj := _listed(href, etag, text)) is not None]
            with store.reading() as session:
                known = known_hrefs(session, calendar.id)
            doomed += [(calendar.id, obj) for obj in duplicates(listed, known)]
        if dry_run:
            return [obj.href for _, obj in doomed]
        removed = []
        for calendar_id, obj in doomed:
            try:
                account.delete(obj.href, obj.etag)
            except PreconditionFailed:
                continue  # changed meanwhile: not a duplicate to remove blindly
            removed.append((calendar_id, obj.href))
    finally:
        account.close()
    with store.transaction() as session:
        for calendar_id, href in removed:
            session.execute(delete(LinkedObject).where(
                LinkedObject.calendar_id == calendar_id, LinkedObject.href == href))
    return [href for _, href in removed]


__all__ = ["Removal", "dedupe", "remove_pushed"]
