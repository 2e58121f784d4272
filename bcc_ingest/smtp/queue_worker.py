"""From the inbound queue to activities: one message at a time, off the event loop.

``process_next`` claims a due message (its own short transaction), parses it outside any
transaction, then logs it and records the verdict in one transaction: either both happen or
neither, so a crash anywhere leaves the message queued for a later try. ``QueueWorker`` runs
it on worker threads, woken when the listener queues something and polling for retries and
for what other processes queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from gateway.activities import NOT_LOGGED, LogOutcome, record_email
from gateway.clock import utcnow
from gateway.db import Store
from gateway.inbound_queue import claim_next, complete, describe_error, record_failure
from gateway.logging_policy import LoggingPolicy
from gateway.mail.parse import DEFAULT_LIMITS, ParseLimits, parse_message
from gateway.models import User

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0  # how soon retries and other processes' messages are noticed
# While the listener is busy, each worker rests this many times as long as its last message
# took: processing then uses at most 1/(1+YIELD_FACTOR) of a core per worker.
YIELD_FACTOR = 3.0


@dataclass(frozen=True)
class ProcessingSettings:
    max_attempts: int
    retry_delay: float  # seconds before the first retry; doubles
    lease_seconds: float
    limits: ParseLimits = field(default=DEFAULT_LIMITS)


def process_next(
    store: Store, policy: LoggingPolicy, settings: ProcessingSettings,
    clock: Callable[[], datetime] = utcnow,
) -> bool:
    """Process one due message; False when none is due."""
    with store.transaction() as session:
        claim = claim_next(session, clock(), lease_seconds=settings.lease_seconds,
                           max_attempts=settings.max_attempts)
    if claim is None:
        return False
    try:
        parsed = parse_message(claim.raw, settings.limits)
        with store.transaction() as session:
            user = session.get(User, claim.user_id) if claim.user_id is not None else None
            if user is None:
                outcome = LogOutcome(NOT_LOGGED, None, "not logged: no CRM user is attributed")
            else:
                outcome = record_email(session, parsed, raw=claim.raw, user=user,
                                       source=claim.source, policy=policy)
            complete(session, claim, outcome, clock())
        log.info("inbound %d: %s", claim.id, outcome.reason)
    except Exception as exc:  # whatever it was, the message stays queued or is parked
        error = describe_error(exc)
        log.warning("inbound %d: try %d failed: %s", claim.id, claim.attempts, error)
        with store.transaction() as session:
            record_failure(session, claim, error, clock(), max_attempts=settings.max_attempts,
                           retry_delay=settings.retry_delay)
    return True


class QueueWorker:
    """``threads`` loops of ``process_next`` on the running asyncio loop's behalf.

    ``intake_busy`` says whether mail is arriving right now; processing then yields.
    """

    def __init__(self, store: Store, policy: LoggingPolicy, settings: ProcessingSettings,
                 threads: int, intake_busy: Callable[[], bool] = lambda: False) -> None:
        self.store = store
        self.intake_busy = intake_busy
        self.policy = policy
        self.settings = settings
        self.threads = threads
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.threads == 0:
            return
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="crm-inbound")
        self._tasks = [loop.create_task(self._run()) for _ in range(self.threads)]

    def notify(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake.clear()
            started = time.monotonic()
            try:
                worked = await loop.run_in_executor(
                    self._executor, process_next, self.store, self.policy, self.settings
                )
            except Exception as exc:  # the store is unreachable: wait, then try again
                log.warning("inbound queue unavailable: %s", describe_error(exc))
                worked = False
            if worked and self.intake_busy():
                # Intake first: while mail is arriving, processing takes a share of the CPU
                # and of SQLite's single write lock, not all of it; the queue absorbs bursts.
                await asyncio.sleep((time.monotonic() - started) * YIELD_FACTOR)
            elif not worked and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def stop(self) -> None:
        """Finish the messages in hand, then stop."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
