"""Who sends which webhook delivery, and what each attempt left behind.

Several deliverers share the outbox through the database: a due delivery is leased to one
owner until ``lease_until`` with a compare-and-set (PostgreSQL picks rows with ``FOR UPDATE
SKIP LOCKED``; SQLite, whose writers ``BEGIN IMMEDIATE`` one at a time, takes each with a
conditional UPDATE), so each attempt is made by one process. The lease outlasts the HTTP
timeout; a deliverer that dies mid-attempt leaves a lease that runs out, and the delivery is
tried again by whoever comes next. The outcome of an attempt is recorded only by the lease's
holder; an attempt itself is always recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from gateway.db import Store
from gateway.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from gateway.outbox_leases import RetryPolicy, anything_due, claim_due
from gateway.webhooks import DELIVERED, FAILED, PENDING

_ERROR_LIMIT = 1000


@dataclass(frozen=True)
class Job:
    """One leased delivery with what sending it needs (the secret still encrypted)."""

    delivery_id: int
    event_id: str
    event_type: str
    body: str
    url: str
    secret: bytes
    attempts: int
    event_created_at: datetime

    def __repr__(self) -> str:
        return f"Job(delivery_id={self.delivery_id}, event_id={self.event_id!r})"


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: an HTTP status, or the reason there was none."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def body_of(payload: dict[str, Any]) -> str:
    """The bytes signed and sent: the same for every attempt of one event."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def lease_due(store: Store, owner: str, now: datetime, *, limit: int,
              lease_seconds: float) -> list[Job]:
    """Lease up to ``limit`` due deliveries to ``owner``; returns them, oldest due first."""
    if limit <= 0:
        return []
    if not anything_due(store, WebhookDelivery, now):
        return []
    with store.transaction() as session:
        ids = claim_due(store, session, WebhookDelivery, owner, now, limit=limit,
                        lease_seconds=lease_seconds)
        return _jobs(session, ids)


def _jobs(session: Session, ids: list[int]) -> list[Job]:
    if not ids:
        return []
    rows = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.attempts, WebhookEvent.id.label("event_id"),
               WebhookEvent.type, WebhookEvent.payload, WebhookEvent.created_at,
               WebhookEndpoint.url, WebhookEndpoint.secret)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id.in_(ids))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id))
    return [Job(row.id, row.event_id, row.type, body_of(row.payload), row.url,
                bytes(row.secret), row.attempts, row.created_at) for row in rows]


def record_attempt(store: Store, job: Job, owner: str, outcome: Outcome, now: datetime,
                   policy: RetryPolicy) -> str | None:
    """Record the attempt and settle the delivery: delivered, due again after a backoff, or
    failed once the retry window after its event is spent. Returns the new status, or None
    when the lease was lost meanwhile (the attempt is recorded; the new holder decides)."""
    attempts = job.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "last_status": outcome.status_code,
                              "last_error": outcome.error[:_ERROR_LIMIT] if outcome.error
                              else None, "lease_owner": None, "lease_until": None}
    if outcome.delivered:
        values.update(status=DELIVERED, delivered_at=now, last_error=None)
    else:
        due = now + policy.delay(attempts)
        window_ends = job.event_created_at + timedelta(seconds=policy.retry_for_seconds)
        if due > window_ends:
            values.update(status=FAILED)
        else:
            values.update(next_attempt_at=due)
    with store.transaction() as session:
        result = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == job.delivery_id, WebhookDelivery.lease_owner == owner,
                   WebhookDelivery.status == PENDING)
            .values(**values))
        settled = result.rowcount == 1  # type: ignore[attr-defined]
        if settled or session.scalar(select(WebhookDelivery.id)
                                     .where(WebhookDelivery.id == job.delivery_id)):
            # A removed endpoint takes its deliveries along: then there is nothing to record.
            session.execute(insert(WebhookAttempt).values(
                delivery_id=job.delivery_id, attempted_at=now, status_code=outcome.status_code,
                error=outcome.error[:_ERROR_LIMIT] if outcome.error else None,
                duration_ms=outcome.duration_ms))
    return str(values.get("status", PENDING)) if settled else None


def release(store: Store, job: Job, owner: str) -> None:
    """Give a lease back unattempted (the deliverer is stopping)."""
    with store.transaction() as session:
        session.execute(update(WebhookDelivery)
                        .where(WebhookDelivery.id == job.delivery_id,
                               WebhookDelivery.lease_owner == owner)
                        .values(lease_owner=None, lease_until=None))
