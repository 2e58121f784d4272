"""One sync pass of one leased link: fetch what changed on the account, then push the CRM.

Network I/O and transactions alternate, never overlap: each calendar's listing is read from
the server, then its changes are applied in one short transaction that first re-checks the
lease (``gateway.linked_calendars.hold``); pushes are written one by one and recorded in
batches the same way. Sync tokens and push cursors advance only after what they cover is
committed, so a pass cut short is simply done again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from gateway.clock import utcnow
from gateway.db import Store
from gateway.errors import DomainError
from gateway.linked_calendars import LinkTarget, hold
from gateway.linked_push import PushItem, pending_pushes, record_gone, record_written, save_cursors
from gateway.linked_state import (
    Applied,
    RemoteChange,
    apply_remote,
    changed_hrefs,
    known_etags,
    save_calendar_state,
)
from gateway.models import LinkedAccount, User
from linked.dav import Account, PreconditionFailed, RemoteError

log = logging.getLogger(__name__)
BATCH = 50


@dataclass
class PassReport:
    """What one pass did, for ``calendars sync --now`` and the logs."""

    link_id: int
    username: str
    pushed: int = 0
    deleted: int = 0
    fetched: int = 0
    removed: int = 0
    busy: int = 0
    conflicts: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    requests: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _apply(store: Store, target: LinkTarget, owner: str, changes: list[RemoteChange],
           report: PassReport) -> set[int]:
    """Apply account-side changes; returns entries whose CRM version must be pushed again."""
    forced: set[int] = set()
    for chunk in range(0, len(changes), BATCH):
        with store.transaction() as session:
            hold(session, target.link_id, owner, utcnow())
            link = session.get(LinkedAccount, target.link_id)
            user = session.get(User, target.user_id)
            assert link is not None and user is not None
            for change in changes[chunk:chunk + BATCH]:
                try:
                    with session.begin_nested():
                        applied = apply_remote(session, link, user, change)
                except DomainError as exc:  # the CRM's rules refuse it: say so, go on
                    applied = Applied(change.href, "refused", None, str(exc))
                if applied.action in ("created", "updated"):
                    report.fetched += 1
                elif applied.action == "deleted":
                    report.removed += 1
                elif applied.action == "busy":
                    report.busy += 1
                elif applied.action == "refused":
                    report.refused.append(f"{change.href}: {applied.conflict}")
                if applied.action in ("kept-crm", "adopted") and applied.entry_id is not None:
                    forced.add(applied.entry_id)
                if applied.conflict and applied.action != "refused":
                    report.conflicts.append(f"{change.href}: {applied.conflict}")
    return forced


def fetch(account: Account, store: Store, target: LinkTarget, owner: str,
          report: PassReport) -> set[int]:
    forced: set[int] = set()
    for calendar in target.calendars:
        known = None
        if calendar.sync_token is None and calendar.ctag is not None:
            with store.reading() as session:
                known = known_etags(session, calendar.id)
        listing = account.changes(calendar.url, calendar.sync_token, calendar.ctag, known)
        if listing.full and known is None:
            with store.reading() as session:
                known = known_etags(session, calendar.id)
            listed = {href for href, _ in listing.changed}
            listing.deleted += [href for href in known if href not in listed]
        with store.reading() as session:
            hrefs = changed_hrefs(session, calendar.id, listing.changed)
        texts = account.fetch(calendar.url, hrefs) if hrefs else {}
        changes = [RemoteChange(calendar.id, href, etag, text)
                   for href, (etag, text) in texts.items()]
        changes += [RemoteChange(calendar.id, href, None, None) for href in listing.deleted]
        changes += [RemoteChange(calendar.id, href, None, None)
                    for href in hrefs if href not in texts]  # gone between listing and GET
        forced |= _apply(store, target, owner, changes, report)
        if listing.sync_token != calendar.sync_token or listing.ctag != calendar.ctag:
            with store.transaction() as session:
                hold(session, target.link_id, owner, utcnow())
                save_calendar_state(session, calendar.id, sync_token=listing.sync_token,
                                    ctag=listing.ctag)
    return forced


def _write(account: Account, store: Store, target: LinkTarget, owner: str, item: PushItem,
           report: PassReport) -> tuple[str, str | None]:
    """One write; a 412 fetches the account's version and resolves it first."""
    for _attempt in range(2):
        try:
            if item.ical is None:
                gone = not account.delete(item.href, item.if_match)
                report.deleted += 1
                return ("gone" if gone else "deleted", None)
            etag = account.put(item.href, item.ical, item.if_match)
            report.pushed += 1
            return ("written", etag)
        except PreconditionFailed:
            current = account.get(item.href)
            calendar_id = item.calendar_id
            change = RemoteChange(calendar_id, item.href, *(current or (None, None)))
            forced = _apply(store, target, owner, [change], report)
            if item.entry_id not in forced or (current is None and item.ical is None):
                return ("resolved", None)
            item = PushItem(item.entry_id, item.entry_revision, item.calendar_id, item.href,
                            item.uid, item.ical, item.shown_etag,
                            current[0] if current else None)
    raise RemoteError(f"{item.href} keeps changing on the account; tried twice")


def push(account: Account, store: Store, target: LinkTarget, owner: str, forced: set[int],
         report: PassReport) -> None:
    with store.transaction() as session:
        hold(session, target.link_id, owner, utcnow())
        link = session.get(LinkedAccount, target.link_id)
        user = session.get(User, target.user_id)
        assert link is not None and user is not None
        pending = pending_pushes(session, link, user, forced=forced)
    done: list[tuple[PushItem, str, str | None]] = []

    def flush() -> None:
        with store.transaction() as session:
            hold(session, target.link_id, owner, utcnow())
            for item, outcome, etag in done:
                if outcome == "written" or outcome == "deleted":
                    record_written(session, item, etag)
                elif outcome == "gone":
                    record_gone(session, item)
        done.clear()

    for item in pending.items:
        outcome, etag = _write(account, store, target, owner, item, report)
        done.append((item, outcome, etag))
        if len(done) >= BATCH:
            flush()
    flush()
    with store.transaction() as session:
        hold(session, target.link_id, owner, utcnow())
        save_cursors(session, target.link_id, pending.cursors)


def run_pass(store: Store, target: LinkTarget, owner: str, *, timeout: int) -> PassReport:
    """Fetch, then push, for one leased link. Raises on a failure of the server or the
    lease (the caller records it and backs off)."""
    report = PassReport(target.link_id, target.username)
    account = Account(target.url, target.login, target.password, timeout)
    try:
        forced = fetch(account, store, target, owner, report)
        push(account, store, target, owner, forced, report)
    finally:
        report.requests = account.requests
        account.close()
    return report
