"""The "webhooks" role of ``crm-gateway serve``: POST due deliveries to their endpoints.

Every ``webhooks.poll_seconds`` (at once while there is work) the deliverer leases up to
``webhooks.workers`` due deliveries (``gateway.webhook_leases``), POSTs each with ``requests``
on a worker thread, never on the event loop, signed per the Standard Webhooks specification
(``webhook-id``: the event's id, ``webhook-timestamp``: this attempt, ``webhook-signature``:
HMAC-SHA256 of ``id.timestamp.body``), and records the attempt. A 2xx answer delivers it;
anything else, a redirect included, is retried with a doubling delay until the retry window
ends. Several processes may run this role on one database: the lease makes each attempt
one process's.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

import requests
from standardwebhooks import Webhook

from delivery.rounds import Rounds, owner_name
from gateway.clock import utcnow
from gateway.config import Config
from gateway.db import Store
from gateway.secrets import SecretBox, SecretError
from gateway.webhook_leases import Job, Outcome, RetryPolicy, lease_due, record_attempt

log = logging.getLogger(__name__)

USER_AGENT = "crm-gateway-webhooks"


def signed_headers(secret: str, job: Job, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt at ``job``."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": job.event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(job.event_id, now, job.body),
    }


def _error_of(exc: requests.RequestException) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def send(job: Job, box: SecretBox, timeout: float) -> Outcome:
    """One attempt at ``job``: the receiver's status code, or why there was none."""
    try:
        secret = box.decrypt(job.secret)
    except SecretError as exc:
        return Outcome(None, f"the endpoint's secret cannot be decrypted: {exc}", 0)
    started = time.monotonic()
    try:
        answer = requests.post(job.url, data=job.body.encode("utf-8"),
                               headers=signed_headers(secret, job, utcnow()),
                               timeout=timeout, allow_redirects=False, stream=True)
        answer.close()  # the body is not read: a receiver cannot make us download much
    except requests.RequestException as exc:
        return Outcome(None, _error_of(exc), _ms_since(started))
    status = answer.status_code
    error = None if 200 <= status < 300 else f"the receiver answered HTTP {status}"
    return Outcome(status, error, _ms_since(started))


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class Deliverer(Rounds[Job]):
    """Leases, sends and records deliveries on ``workers`` threads until stopped."""

    name = "webhooks"

    def __init__(self, store: Store, box: SecretBox, policy: RetryPolicy, *,
                 poll_seconds: float, workers: int, owner: str) -> None:
        super().__init__(poll_seconds=poll_seconds, workers=workers, owner=owner)
        self.store = store
        self.box = box
        self.policy = policy

    def lease(self) -> list[Job]:
        return lease_due(self.store, self.owner, utcnow(), limit=self.workers,
                         lease_seconds=self.policy.lease_seconds)

    def work(self, job: Job) -> None:
        outcome = send(job, self.box, self.policy.timeout_seconds)
        status = record_attempt(self.store, job, self.owner, outcome, utcnow(), self.policy)
        log.info("webhook %s (%s) attempt %d to %r: %s%s", job.event_id, job.event_type,
                 job.attempts + 1, job.url, status or "lease lost meanwhile",
                 f" ({outcome.error})" if outcome.error else "")


def start(config: Config, store: Store) -> object:
    """The role's entry point (gateway.host.ROLES): start, and return the stop coroutine."""
    policy = RetryPolicy(
        first_retry_seconds=config.get("webhooks", "first_retry_seconds"),
        retry_for_seconds=config.get("webhooks", "retry_for_seconds"),
        timeout_seconds=config.get("webhooks", "timeout_seconds"),
    )
    deliverer = Deliverer(store, SecretBox(config.get("security", "secret_key")), policy,
                          poll_seconds=config.get("webhooks", "poll_seconds"),
                          workers=config.get("webhooks", "workers"), owner=owner_name())
    deliverer.start()
    log.info("webhook deliverer %s started", deliverer.owner)
    return deliverer.stop
