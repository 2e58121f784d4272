"""Logging polled mail: which messages matter, and committing a batch with its cursor.

Called by the IMAP poller from worker threads, never across network I/O. A batch's
activities and the folder cursor that covers them commit in one transaction, together with a
check that the poller still holds the account's lease: the cursor can never run ahead of what
was logged, and a crash anywhere before the commit leaves the batch to be fetched again
(dedupe by Message-ID makes that harmless).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gateway.activities import (
    LINKED,
    LOGGED,
    record_email,
    record_emails,
    relevant_messages,
)
from gateway.db import Store
from gateway.logging_policy import LoggingPolicy
from gateway.mail.parse import ParsedEmail
from gateway.mail_leases import LeaseLost, hold, save_cursor
from gateway.models import InboundMessage, User

log = logging.getLogger(__name__)

SOURCE = "imap"


@dataclass(frozen=True)
class LeaseRef:
    """The account a poller holds, and under which owner name."""

    account_id: int
    user_id: int
    owner: str


@dataclass
class BatchCounts:
    logged: int = 0
    linked: int = 0
    not_logged: int = 0
    set_aside: int = 0


def relevance(
    store: Store, user_id: int, policy: LoggingPolicy, address_sets: Sequence[frozenset[str]]
) -> list[bool]:
    """For each message's participant addresses: does it involve a CRM contact or account?"""
    with store.reading() as session:
        user = session.get(User, user_id)
        if user is None:
            return [False] * len(address_sets)
        return relevant_messages(session, address_sets, user=user, policy=policy)


def commit_batch(
    store: Store,
    lease: LeaseRef,
    policy: LoggingPolicy,
    *,
    folder: str,
    uidvalidity: int,
    cursor_uid: int,
    messages: Sequence[tuple[int, ParsedEmail, bytes]],
    now: datetime,
) -> BatchCounts:
    """Record `messages` (uid, parsed, raw) and move the folder's cursor to `cursor_uid`.

    The batch is logged by ``record_emails``. If it fails with anything but a database error,
    the messages are logged again one by one, each in a savepoint, and the one
    ``record_email`` cannot handle is set aside in the inbound queue as failed, with its raw
    bytes, instead of blocking the folder for good; a database error fails the whole batch,
    which is then fetched again.
    """
    try:
        return _commit(store, lease, policy, folder, uidvalidity, cursor_uid, messages, now,
                       guarded=False)
    except (DBAPIError, LeaseLost):
        raise
    except Exception:
        # Some message broke record_emails: again, each in a savepoint, setting it aside.
        return _commit(store, lease, policy, folder, uidvalidity, cursor_uid, messages, now,
                       guarded=True)


def _commit(
    store: Store, lease: LeaseRef, policy: LoggingPolicy, folder: str, uidvalidity: int,
    cursor_uid: int, messages: Sequence[tuple[int, ParsedEmail, bytes]], now: datetime, *,
    guarded: bool,
) -> BatchCounts:
    counts = BatchCounts()
    with store.transaction() as session:
        hold(session, lease.account_id, lease.owner, now)
        user = session.get(User, lease.user_id)
        assert user is not None  # a user's mail account is deleted with the user
        if guarded:
            for uid, parsed, raw in messages:
                _record_guarded(session, user, policy, folder, uid, parsed, raw, now, counts)
        else:
            outcomes = record_emails(session, [(parsed, raw) for _, parsed, raw in messages],
                                     user=user, source=SOURCE, policy=policy)
            for outcome in outcomes:
                _count(counts, outcome.status)
        save_cursor(session, lease.account_id, folder, uidvalidity, cursor_uid, now)
    return counts


def _count(counts: BatchCounts, status: str) -> None:
    if status == LOGGED:
        counts.logged += 1
    elif status == LINKED:
        counts.linked += 1
    else:
        counts.not_logged += 1


def _record_guarded(
    session: Session, user: User, policy: LoggingPolicy, folder: str, uid: int,
    parsed: ParsedEmail, raw: bytes, now: datetime, counts: BatchCounts,
) -> None:
    savepoint = session.begin_nested()
    try:
        outcome = record_email(session, parsed, raw=raw, user=user, source=SOURCE,
                               policy=policy)
        savepoint.commit()
    except DBAPIError:
        raise
    except Exception as exc:
        savepoint.rollback()
        log.error("imap %s: %s UID %d set aside: %s", user.username, folder, uid,
                  type(exc).__name__)
        session.add(InboundMessage(
            source=SOURCE, received_at=now, peer=f"imap {folder} UID {uid}",
            mail_from=parsed.sender.email if parsed.sender else "", rcpt_tos=[],
            user_id=user.id, raw=raw, size=len(raw), status="failed", attempts=1,
            next_attempt_at=now, processed_at=now,
            decision="set aside by the IMAP poller: logging it failed",
            last_error=f"{type(exc).__name__}: {exc}"[:1000],
        ))
        counts.set_aside += 1
        return
    _count(counts, outcome.status)
