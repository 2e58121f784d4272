"""Who sends which outbound mail, and what each attempt left behind.

Several senders share the outbox through the database, as webhook deliverers do
(``gateway.webhook_leases``): a due mail is leased to one owner until ``lease_until`` by a
compare-and-set (PostgreSQL picks rows ``FOR UPDATE SKIP LOCKED``; SQLite, whose writers
``BEGIN IMMEDIATE`` one at a time, takes each with a conditional UPDATE). The lease is the
mail's "sending" state: taken and committed before the SMTP conversation, settled after it.
A sender that dies mid-send leaves a lease that runs out; the mail is then sent again, with
the same Message-ID, by whoever comes next.

Replies decide: 2xx sent; a 5xx reply to MAIL, RCPT or DATA fails the mail at once with the
reply (the smarthost will never take it); a 4xx reply, or no reply at all (connection, TLS,
AUTH), is retried with a doubling delay until the retry window after the mail was queued
(or last retried by hand) ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from gateway import outbox_leases
from gateway.db import Store
from gateway.models import OutboundAttempt, OutboundMail
from gateway.outbound import FAILED, PENDING, SENT
from gateway.outbox_leases import anything_due, claim_due

_REPLY_LIMIT = 1000


@dataclass(frozen=True)
class RetryPolicy(outbox_leases.RetryPolicy):
    # One conversation may wait up to the timeout at each of its steps.
    timeouts_per_attempt: int = 4
    margin_seconds: float = 30


@dataclass(frozen=True)
class Job:
    """One leased mail with what sending it needs."""

    mail_id: int
    message_id: str
    sender: str
    recipient: str
    message: str
    attempts: int
    window_start: datetime

    def __repr__(self) -> str:
        return f"Job(mail_id={self.mail_id}, message_id={self.message_id!r})"


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: the smarthost's reply, or why there was none (code None).
    ``permanent``: the reply refuses this mail for good (a 5xx to MAIL, RCPT or DATA)."""

    code: int | None
    reply: str | None
    duration_ms: int
    permanent: bool = False

    @property
    def sent(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


def lease_due(store: Store, owner: str, now: datetime, *, limit: int,
              lease_seconds: float) -> list[Job]:
    """Lease up to ``limit`` due mails to ``owner``; returns them, oldest due first."""
    if limit <= 0:
        return []
    if not anything_due(store, OutboundMail, now):
        return []
    with store.transaction() as session:
        ids = claim_due(store, session, OutboundMail, owner, now, limit=limit,
                        lease_seconds=lease_seconds)
        if not ids:
            return []
        rows = session.execute(
            select(OutboundMail.id, OutboundMail.message_id, OutboundMail.sender,
                   OutboundMail.recipient, OutboundMail.message, OutboundMail.attempts,
                   OutboundMail.created_at, OutboundMail.retried_at)
            .where(OutboundMail.id.in_(ids))
            .order_by(OutboundMail.next_attempt_at, OutboundMail.id))
        return [Job(row.id, row.message_id, row.sender, row.recipient, row.message,
                    row.attempts, row.retried_at or row.created_at) for row in rows]


def record_attempt(store: Store, job: Job, owner: str, outcome: Outcome, now: datetime,
                   policy: RetryPolicy) -> str | None:
    """Record the attempt and settle the mail: sent, failed, or due again after a backoff.
    Returns the new status, or None when the lease was lost meanwhile (the attempt is still
    recorded; the lease's new holder decides)."""
    attempts = job.attempts + 1
    reply = outcome.reply[:_REPLY_LIMIT] if outcome.reply else None
    values: dict[str, Any] = {"attempts": attempts, "last_code": outcome.code,
                              "last_reply": reply, "lease_owner": None, "lease_until": None}
    if outcome.sent:
        values.update(status=SENT, sent_at=now)
    elif outcome.permanent:
        values.update(status=FAILED)
    else:
        due = now + policy.delay(attempts)
        if due > job.window_start + timedelta(seconds=policy.retry_for_seconds):
            values.update(status=FAILED)
        else:
            values.update(next_attempt_at=due)
    with store.transaction() as session:
        result = session.execute(
            update(OutboundMail)
            .where(OutboundMail.id == job.mail_id, OutboundMail.lease_owner == owner,
                   OutboundMail.status == PENDING)
            .values(**values))
        settled = result.rowcount == 1  # type: ignore[attr-defined]
        session.execute(insert(OutboundAttempt).values(
            mail_id=job.mail_id, attempted_at=now, code=outcome.code, reply=reply,
            duration_ms=outcome.duration_ms))
    return str(values.get("status", PENDING)) if settled else None


def release(store: Store, job: Job, owner: str) -> None:
    """Give a lease back unattempted (the sender is stopping)."""
    with store.transaction() as session:
        session.execute(update(OutboundMail)
                        .where(OutboundMail.id == job.mail_id, OutboundMail.lease_owner == owner)
                        .values(lease_owner=None, lease_until=None))
