"""Claiming due rows of an outbox (webhook deliveries, outbound mail) for one sender.

A row is due when it is pending, its next attempt has come and no live lease holds it.
Claiming sets ``lease_owner``/``lease_until`` so N processes on one database never work on
one row at once: PostgreSQL skips rows another claimer has locked (``FOR UPDATE SKIP
LOCKED``); SQLite has one writer at a time, and each row is taken by a compare-and-set
UPDATE that re-checks it is still due.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from gateway.db import Store
from gateway.models import OutboundMail, WebhookDelivery

# An outbox table: id, status, next_attempt_at, lease_owner, lease_until.
Row = TypeVar("Row", OutboundMail, WebhookDelivery)
PENDING = "pending"
MAX_RETRY_SECONDS = 3600  # the doubling delay stops here
JITTER = 0.25  # each delay is drawn within ±25 %, so retries of a burst spread out


@dataclass(frozen=True)
class RetryPolicy:
    """When a sender tries again, and how long its lease on a row lasts."""

    first_retry_seconds: float
    retry_for_seconds: float
    timeout_seconds: float
    # One attempt may wait the timeout this many times (an SMTP conversation: at each step).
    timeouts_per_attempt: int = 1
    margin_seconds: float = 10  # beyond the timeouts: time to record the outcome

    @property
    def lease_seconds(self) -> float:
        return self.timeout_seconds * self.timeouts_per_attempt + self.margin_seconds

    def delay(self, attempts: int, draw: Callable[[float, float], float] = random.uniform
              ) -> timedelta:
        """The wait after the ``attempts``-th failed attempt: doubling, with jitter."""
        base = min(self.first_retry_seconds * 2 ** min(attempts - 1, 30), MAX_RETRY_SECONDS)
        return timedelta(seconds=base * draw(1 - JITTER, 1 + JITTER))


def due(rows: type[Row], now: datetime) -> list[Any]:
    return [rows.status == PENDING, rows.next_attempt_at <= now,
            or_(rows.lease_until.is_(None), rows.lease_until < now)]


def claim_due(store: Store, session: Session, rows: type[Row], owner: str, now: datetime, *,
              limit: int, lease_seconds: float) -> list[int]:
    """Lease up to ``limit`` due rows to ``owner`` in ``session`` (a write transaction):
    their ids, oldest due first. Call ``anything_due`` first, outside any write transaction."""
    query = (select(rows.id).where(*due(rows, now))
             .order_by(rows.next_attempt_at, rows.id).limit(limit))
    until = now + timedelta(seconds=lease_seconds)
    if store.dialect == "postgresql":
        ids = list(session.scalars(query.with_for_update(skip_locked=True)))
        if ids:
            session.execute(update(rows).where(rows.id.in_(ids))
                            .values(lease_owner=owner, lease_until=until))
        return ids
    ids = []
    for row_id in session.scalars(query).all():
        result = session.execute(update(rows).where(rows.id == row_id, *due(rows, now))
                                 .values(lease_owner=owner, lease_until=until))
        if result.rowcount == 1:  # type: ignore[attr-defined]
            ids.append(row_id)
    return ids


def anything_due(store: Store, rows: type[Row], now: datetime) -> bool:
    """Whether a row is due: most polls find nothing, and should not take SQLite's write
    lock to learn that."""
    with store.reading() as session:
        return session.scalar(select(rows.id).where(*due(rows, now)).limit(1)) is not None
