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

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bcc_ingest.parse import ParsedEmail
from gateway.activities import LINKED, LOGGED, LoggingPolicy, is_relevant, record_email
from gateway.db import Store
from gateway.mail_leases import LeaseLost, hold, save_cursor
from gateway.models import AccountDomain, ContactEmail, InboundMessage, User

log = logging.getLogger(__name__)

SOURCE = "imap"
_IN_CHUNK = 2000  # addresses per IN (...) list, well inside SQLite's parameter limit


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
    """For each message's participant addresses: does it involve a CRM contact or account?

    ``is_relevant`` decides; it is asked only about messages that pass `_possibly_known`,
    a necessary condition checked for the whole batch in two queries.
    """
    with store.reading() as session:
        user = session.get(User, user_id)
        if user is None:
            return [False] * len(address_sets)
        possible = _possibly_known(session, set().union(*address_sets))
        exact: dict[frozenset[str], bool] = {}
        answers: list[bool] = []
        for addresses in address_sets:
            if addresses.isdisjoint(possible):
                answers.append(False)
                continue
            if addresses not in exact:
                exact[addresses] = is_relevant(session, sorted(addresses), user=user,
                                               policy=policy)
            answers.append(exact[addresses])
        return answers


def _suffixes(address: str) -> list[str]:
    labels = address.rpartition("@")[2].split(".")
    return [".".join(labels[start:]) for start in range(len(labels))]


def _possibly_known(session: Session, addresses: set[str]) -> set[str]:
    """The addresses that are a contact's, or whose domain or a parent domain is an account's.

    A superset of the addresses that can make ``is_relevant`` true (it matches contacts by
    address and accounts by domain), so a message with none of them is not relevant.
    """
    found: set[str] = set()
    ordered = sorted(addresses)
    for start in range(0, len(ordered), _IN_CHUNK):
        chunk = ordered[start:start + _IN_CHUNK]
        found.update(session.scalars(select(ContactEmail.email).where(ContactEmail.email.in_(chunk))))
        suffixes = sorted({suffix for address in chunk for suffix in _suffixes(address)})
        domains = set(session.scalars(
            select(AccountDomain.domain).where(AccountDomain.domain.in_(suffixes))
        ))
        found.update(a for a in chunk if not domains.isdisjoint(_suffixes(a)))
    return found


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

    A message that ``record_email`` cannot handle (anything but a database error) is set
    aside in the inbound queue as failed, with its raw bytes, instead of blocking the folder
    for good; a database error fails the whole batch, which is then fetched again.
    """
    try:
        return _commit(store, lease, policy, folder, uidvalidity, cursor_uid, messages, now,
                       guarded=False)
    except (DBAPIError, LeaseLost):
        raise
    except Exception:
        # Some message broke record_email: again, each in a savepoint, setting it aside.
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
        for uid, parsed, raw in messages:
            if guarded:
                _record_guarded(session, user, policy, folder, uid, parsed, raw, now, counts)
            else:
                _count(counts, record_email(session, parsed, raw=raw, user=user,
                                            source=SOURCE, policy=policy).status)
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
