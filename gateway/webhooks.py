"""Webhooks: the endpoints the CRM application listens at, and the transactional outbox.

``emit`` writes an event and one delivery per matching endpoint in the caller's transaction:
a rolled-back change sends nothing and a committed one is never lost. The "webhooks" role of
``serve`` (``delivery.webhooks``) sends what is due, signed per the Standard Webhooks
specification; ``gateway.webhook_leases`` hands deliveries out and records every attempt.
An event's id (``msg_...``) is its ``webhook-id``: the same on every retry and replay, so a
receiver drops duplicates by it. Endpoint secrets (``whsec_<base64>``) are encrypted at rest
with ``gateway.secrets`` and shown once, when the endpoint is made.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.errors import Invalid, NotFound
from gateway.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from gateway.secrets import SecretBox

EVENT_TYPES = (
    "entry.created", "entry.updated", "entry.deleted", "activity.logged", "contact.created",
    "mail_account.failed", "inbound.failed", "entry.conflict",
)
ORIGINS = ("calendar", "crm", "api", "mail")
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)
SECRET_PREFIX = "whsec_"
_GROUPS = {name.partition(".")[0] for name in EVENT_TYPES}
_CACHE = "webhooks.endpoints"  # session.info key: the endpoints read by this transaction
MAX_PAGE = 500


class NewEndpoint(NamedTuple):
    """An endpoint just made, with its signing secret: the only time the secret is shown.
    Unpacks as ``endpoint, secret``."""

    endpoint: WebhookEndpoint
    secret: str

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"NewEndpoint(id={self.endpoint.id}, url={self.endpoint.url!r})"


def check_patterns(patterns: Iterable[str]) -> list[str]:
    """Event names and ``group.*`` patterns (``*``: every event); raises Invalid naming an
    unknown one."""
    found: list[str] = []
    for raw in patterns:
        pattern = raw.strip()
        if not pattern:
            continue
        group, _, rest = pattern.partition(".")
        known = (pattern == "*" or pattern in EVENT_TYPES
                 or (rest == "*" and group in _GROUPS))
        if not known:
            raise Invalid(f"unknown event {pattern!r}; known: {', '.join(EVENT_TYPES)} "
                          "(or a group such as entry.*, or * for all)")
        if pattern not in found:
            found.append(pattern)
    if not found:
        raise Invalid("name at least one event (e.g. --events entry.*,activity.logged)")
    return found


def matches(patterns: Sequence[str], event_type: str) -> bool:
    group = event_type.partition(".")[0]
    return any(p in ("*", event_type, f"{group}.*") for p in patterns)


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{url!r} is not an http:// or https:// URL")
    if len(url) > 2000:
        raise Invalid("the URL is longer than 2000 characters")
    return url


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def add_endpoint(session: Session, url: str, events: Iterable[str],
                 description: str | None = None, *, box: SecretBox) -> NewEndpoint:
    """Make an endpoint; its secret is returned once and stored only encrypted."""
    secret = new_secret()
    endpoint = WebhookEndpoint(url=check_url(url), events=check_patterns(events),
                               description=(description or "").strip() or None,
                               secret=box.encrypt(secret), created_at=utcnow())
    session.add(endpoint)
    session.flush()
    session.info.pop(_CACHE, None)
    return NewEndpoint(endpoint, secret)


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


def remove_endpoint(session: Session, endpoint_id: int) -> None:
    """Remove an endpoint with its deliveries and their attempts; nothing more is sent to it."""
    get_endpoint(session, endpoint_id)
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint_id)
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
    session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))
    session.info.pop(_CACHE, None)


def subscriptions(session: Session) -> list[tuple[int, list[str]]]:
    """(endpoint id, patterns) of every endpoint, read once per transaction."""
    transaction = session.get_transaction()
    cached = session.info.get(_CACHE)
    if cached is not None and cached[0] is transaction:
        return list(cached[1])
    found = [(row.id, list(row.events)) for row in
             session.execute(select(WebhookEndpoint.id, WebhookEndpoint.events))]
    session.info[_CACHE] = (transaction, found)
    return found


def new_event_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def emit(session: Session, event_type: str, data: dict[str, Any]) -> str | None:
    """Queue ``event_type`` with ``data`` for every endpoint that listens to it, in the caller's
    transaction; returns the event id, or None when no endpoint listens (nothing is written).
    ``data`` must be JSON-serialisable."""
    assert event_type in EVENT_TYPES, event_type
    endpoint_ids = [endpoint_id for endpoint_id, patterns in subscriptions(session)
                    if matches(patterns, event_type)]
    if not endpoint_ids:
        return None
    now = utcnow()
    event_id = new_event_id()
    payload = {"type": event_type, "timestamp": iso(now), "data": data}
    session.execute(insert(WebhookEvent).values(id=event_id, type=event_type, payload=payload,
                                                created_at=now))
    session.execute(insert(WebhookDelivery), [
        {"event_id": event_id, "endpoint_id": endpoint_id, "status": PENDING, "attempts": 0,
         "next_attempt_at": now, "created_at": now}
        for endpoint_id in endpoint_ids
    ])
    return event_id


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


# --- deliveries: what was sent, and sending again ---------------------------------------------


def list_deliveries(session: Session, *, failed_only: bool = False, limit: int = 100,
                    cursor: int | None = None, endpoint_id: int | None = None
                    ) -> list[tuple[WebhookDelivery, WebhookEvent]]:
    """Deliveries newest first, at most ``limit`` (capped at 500); ``cursor`` is the id of the
    last delivery of the previous page."""
    query = (select(WebhookDelivery, WebhookEvent)
             .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
             .order_by(WebhookDelivery.id.desc())
             .limit(max(1, min(limit, MAX_PAGE))))
    if failed_only:
        query = query.where(WebhookDelivery.status == FAILED)
    if cursor is not None:
        query = query.where(WebhookDelivery.id < cursor)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    return [(delivery, event) for delivery, event in session.execute(query)]


def get_delivery(session: Session, delivery_id: int
                 ) -> tuple[WebhookDelivery, WebhookEvent, list[WebhookAttempt]]:
    """A delivery, its event and every attempt at it (oldest first)."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    event = session.get(WebhookEvent, delivery.event_id)
    assert event is not None  # the foreign key guarantees it
    attempts = list(session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.id)))
    return delivery, event, attempts


def replay(session: Session, delivery_id: int) -> WebhookDelivery:
    """A new delivery of the same event to the same endpoint, due now; the receiver sees the
    same ``webhook-id``."""
    delivery, _event, _attempts = get_delivery(session, delivery_id)
    now = utcnow()
    again = WebhookDelivery(event_id=delivery.event_id, endpoint_id=delivery.endpoint_id,
                            status=PENDING, attempts=0, next_attempt_at=now, created_at=now)
    session.add(again)
    session.flush()
    return again


def describe_endpoint(endpoint: WebhookEndpoint) -> dict[str, Any]:
    """An endpoint as plain values; never its secret."""
    return {"id": endpoint.id, "url": endpoint.url, "events": list(endpoint.events),
            "description": endpoint.description, "created_at": iso(endpoint.created_at)}


def describe_delivery(delivery: WebhookDelivery, event: WebhookEvent) -> dict[str, Any]:
    return {
        "id": delivery.id, "event_id": event.id, "event_type": event.type,
        "endpoint_id": delivery.endpoint_id, "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": iso(delivery.next_attempt_at) if delivery.status == PENDING else None,
        "last_status": delivery.last_status, "last_error": delivery.last_error,
        "delivered_at": iso(delivery.delivered_at), "created_at": iso(delivery.created_at),
    }


def describe_attempt(attempt: WebhookAttempt) -> dict[str, Any]:
    return {"at": iso(attempt.attempted_at), "status_code": attempt.status_code,
            "error": attempt.error, "duration_ms": attempt.duration_ms}
