"""The inbound queue: raw messages committed before the SMTP 250, turned into activities later.

A row is ``queued`` until a worker settles it: ``done`` (logged, or linked to an activity that
was already there), ``skipped`` (not logged, ``decision`` says why) or ``failed`` (parked after
``smtp.max_attempts`` tries, ``last_error`` says why). A worker claims a row by counting the
attempt and pushing ``next_attempt_at`` one lease ahead, in a transaction of its own; if the
worker dies, the row comes due again when the lease ends, and the attempt still counts, so a
message that kills its worker every time is parked instead of tried forever.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, defer

from gateway.activities import LINKED, LOGGED, LogOutcome
from gateway.clock import utcnow
from gateway.db import Store
from gateway.errors import Conflict, NotFound
from gateway.keyset import Page, page
from gateway.models import InboundMessage
from gateway.webhook_payloads import inbound_failed

QUEUED = "queued"
DONE = "done"
SKIPPED = "skipped"
FAILED = "failed"
STATUSES = (QUEUED, DONE, SKIPPED, FAILED)

MAX_RETRY_DELAY = 3600.0  # seconds; the doubling backoff stops here
_ERROR_LIMIT = 1000


@dataclass(frozen=True)
class Claim:
    """A queued message a worker has taken: its attempt number and what it needs."""

    id: int
    attempts: int
    user_id: int | None
    source: str
    raw: bytes


@contextmanager
def durable_transaction(store: Store) -> Iterator[Session]:
    """A unit of work whose commit survives a power cut, not only a crash of this process.

    SQLite runs with synchronous=NORMAL (fast, but a WAL commit may be lost at a power cut);
    the commit that precedes an SMTP 250 is synced in full. The pragma cannot change inside a
    transaction, so it is set on the connection before BEGIN and restored after.
    """
    if store.dialect != "sqlite":
        with store.transaction() as session:
            yield session
        return
    with store.engine.connect() as connection:
        driver = connection.connection.dbapi_connection
        assert driver is not None
        driver.execute("PRAGMA synchronous=FULL")
        try:
            with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                yield session
        finally:
            with contextlib.suppress(sqlite3.Error):
                driver.execute("PRAGMA synchronous=NORMAL")


def enqueue(
    session: Session, *, raw: bytes, user_ids: Sequence[int], peer: str | None,
    mail_from: str, rcpt_tos: Sequence[str], source: str = "bcc",
) -> list[int]:
    """Queue one message once per attributed user; returns the new rows' ids."""
    rows = [
        InboundMessage(
            source=source, peer=peer, mail_from=mail_from[:320], rcpt_tos=list(rcpt_tos),
            user_id=user_id, raw=raw, size=len(raw), status=QUEUED, attempts=0,
            received_at=utcnow(), next_attempt_at=utcnow(),
        )
        for user_id in user_ids
    ]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]


def claim_next(
    session: Session, now: datetime, *, lease_seconds: float, max_attempts: int
) -> Claim | None:
    """Take the next due message, or None. Messages out of tries are parked on the way."""
    while True:
        row = session.scalar(
            select(InboundMessage)
            .where(InboundMessage.status == QUEUED, InboundMessage.next_attempt_at <= now)
            .order_by(InboundMessage.next_attempt_at, InboundMessage.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if row is None:
            return None
        if row.attempts >= max_attempts:
            # Every earlier try ended without a verdict: the worker died each time.
            _park(session, row, now,
                  "processing never finished (the worker stopped each time)")
            continue
        row.attempts += 1
        row.next_attempt_at = now + timedelta(seconds=lease_seconds)
        session.flush()
        return Claim(row.id, row.attempts, row.user_id, row.source, bytes(row.raw))


def complete(session: Session, claim: Claim, outcome: LogOutcome, now: datetime) -> None:
    """Record the verdict on a claimed message (unless a worker that took over after our
    lease ended has settled it already)."""
    session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == claim.id, InboundMessage.status == QUEUED)
        .values(status=DONE if outcome.status in (LOGGED, LINKED) else SKIPPED,
                decision=outcome.reason, activity_id=outcome.activity_id, processed_at=now)
    )


def record_failure(
    session: Session, claim: Claim, error: str, now: datetime, *,
    max_attempts: int, retry_delay: float,
) -> None:
    """A try failed: retry later with a doubling delay, or park the message when out of tries."""
    row = session.get(InboundMessage, claim.id, with_for_update=True)
    if row is None or row.status != QUEUED:
        return
    row.last_error = error[:_ERROR_LIMIT]
    if row.attempts >= max_attempts:
        _park(session, row, now, error)
    else:
        delay = min(retry_delay * 2 ** (row.attempts - 1), MAX_RETRY_DELAY)
        row.next_attempt_at = now + timedelta(seconds=delay)
    session.flush()


def _park(session: Session, row: InboundMessage, now: datetime, why: str) -> None:
    row.status = FAILED
    row.decision = f"parked after {row.attempts} tries: {why}"[:_ERROR_LIMIT]
    row.processed_at = now
    inbound_failed(session, row)


# --- administration (crm-gateway inbound ...) ---------------------------------------------


def list_messages(session: Session, status: str | None = None) -> list[InboundMessage]:
    query = select(InboundMessage).order_by(InboundMessage.id)
    if status is not None:
        query = query.where(InboundMessage.status == status)
    return list(session.scalars(query))


def page_messages(session: Session, *, status: str | None, limit: int,
                  after: int | None) -> Page[InboundMessage]:
    """Queue rows by id, optionally of one status, without their raw bytes; O(page)."""
    query = select(InboundMessage).options(defer(InboundMessage.raw))
    if status is not None:
        query = query.where(InboundMessage.status == status)
    return page(session, query, InboundMessage.id, limit, after)


def queue_depth(session: Session) -> dict[str, int]:
    """How many messages wait (queued) and how many are parked (failed)."""
    counts = dict(session.execute(
        select(InboundMessage.status, func.count()).where(
            InboundMessage.status.in_((QUEUED, FAILED))).group_by(InboundMessage.status)
    ).tuples().all())
    return {QUEUED: int(counts.get(QUEUED, 0)), FAILED: int(counts.get(FAILED, 0))}


def get_message(session: Session, message_id: int) -> InboundMessage:
    row = session.get(InboundMessage, message_id)
    if row is None:
        raise NotFound(f"no inbound message {message_id}")
    return row


def retry(session: Session, message_id: int) -> InboundMessage:
    """Queue a parked (failed) or skipped message again, with a fresh count of tries."""
    row = get_message(session, message_id)
    if row.status == DONE:
        raise Conflict(f"inbound message {message_id} is already logged "
                       f"(activity {row.activity_id}); nothing to retry")
    if row.status == QUEUED:
        raise Conflict(f"inbound message {message_id} is already queued")
    _requeue(row)
    session.flush()
    return row


def retry_failed(session: Session) -> int:
    """Queue every parked message again; returns how many."""
    result = session.execute(
        update(InboundMessage)
        .where(InboundMessage.status == FAILED)
        .values(status=QUEUED, attempts=0, next_attempt_at=utcnow(), decision=None,
                processed_at=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _requeue(row: InboundMessage) -> None:
    row.status = QUEUED
    row.attempts = 0
    row.next_attempt_at = utcnow()
    row.decision = None
    row.processed_at = None


def describe_error(error: BaseException) -> str:
    """One line fit for logs and ``last_error``: no statement parameters (message bytes)."""
    original = getattr(error, "orig", None)  # a DBAPI error wrapped by SQLAlchemy
    shown = original if isinstance(original, BaseException) else error
    text = " ".join(str(shown).split())[:300]
    return f"{type(shown).__name__}: {text}" if text else type(shown).__name__


def recent_decisions(session: Session, user_id: int, limit: int) -> list[InboundMessage]:
    """The user's last ``limit`` inbound messages, newest first: one indexed query."""
    return list(session.scalars(
        select(InboundMessage).where(InboundMessage.user_id == user_id)
        .options(defer(InboundMessage.raw))  # up to the size limit each; not shown
        .order_by(InboundMessage.id.desc()).limit(limit)))


def status_counts(session: Session) -> dict[str, int]:
    """How many inbound messages are in each status; one grouped query."""
    rows = session.execute(select(InboundMessage.status, func.count()).group_by(
        InboundMessage.status))
    return {status: int(count) for status, count in rows}
