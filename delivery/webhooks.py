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

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import requests
from standardwebhooks import Webhook

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


class Deliverer:
    """Leases, sends and records deliveries on ``workers`` threads until stopped."""

    def __init__(self, store: Store, box: SecretBox, policy: RetryPolicy, *,
                 poll_seconds: float, workers: int, owner: str) -> None:
        self.store = store
        self.box = box
        self.policy = policy
        self.poll_seconds = poll_seconds
        self.workers = workers
        self.owner = owner
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="crm-webhooks")
        # Rounds run on their own thread, not the loop's default executor, so that stopping
        # the role ends every thread it started.
        self._rounds = ThreadPoolExecutor(1, thread_name_prefix="crm-webhooks-round")
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = _current_loop().create_task(self._run())

    def _deliver(self, job: Job) -> None:
        outcome = send(job, self.box, self.policy.timeout_seconds)
        status = record_attempt(self.store, job, self.owner, outcome, utcnow(), self.policy)
        log.info("webhook %s (%s) attempt %d to %r: %s%s", job.event_id, job.event_type,
                 job.attempts + 1, job.url, status or "lease lost meanwhile",
                 f" ({outcome.error})" if outcome.error else "")

    def _round(self) -> int:
        """Lease what is due and deliver it; returns how many were attempted."""
        jobs = lease_due(self.store, self.owner, utcnow(), limit=self.workers,
                         lease_seconds=self.policy.lease_seconds)
        for finished in [self._executor.submit(self._deliver, job) for job in jobs]:
            finished.result()
        return len(jobs)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                worked = await loop.run_in_executor(self._rounds, self._round)
            except Exception as exc:  # the store is unreachable: wait, then try again
                log.warning("webhook deliveries unavailable: %s", exc)
                worked = 0
            if not worked:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.poll_seconds)

    async def stop(self) -> None:
        """Finish the attempts in hand (each bounded by the timeout), then stop."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._rounds.shutdown(wait=True)
        self._executor.shutdown(wait=True)


def _current_loop() -> asyncio.AbstractEventLoop:
    """The running loop; under ``serve`` roles start before Twisted's reactor runs its loop,
    so then the loop the reactor installed as current."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop_policy().get_event_loop()


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
