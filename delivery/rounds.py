"""The loop both outbox senders run (webhook deliveries, outbound mail).

Every ``poll_seconds`` (at once while there is work) a round leases up to ``workers`` due
jobs, works each on a worker thread, never on the event loop, and records the attempt.
Rounds run on a thread of their own, not the loop's default executor, so that stopping the
role ends every thread it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Job = TypeVar("Job")


class Rounds(ABC, Generic[Job]):
    """Leases and works due jobs on ``workers`` threads until stopped."""

    name = "outbox"  # in thread names and log lines

    def __init__(self, *, poll_seconds: float, workers: int, owner: str) -> None:
        self.poll_seconds = poll_seconds
        self.workers = workers
        self.owner = owner
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"crm-{self.name}")
        self._rounds = ThreadPoolExecutor(1, thread_name_prefix=f"crm-{self.name}-round")
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    def lease(self) -> Sequence[Job]:
        """Lease up to ``workers`` due jobs to this owner."""

    @abstractmethod
    def work(self, job: Job) -> None:
        """One attempt at ``job``, recorded."""

    def start(self) -> None:
        self._task = _current_loop().create_task(self._run())

    def _round(self) -> int:
        """Lease what is due and work it; returns how many were attempted."""
        jobs = self.lease()
        for finished in [self._executor.submit(self.work, job) for job in jobs]:
            finished.result()
        return len(jobs)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                worked = await loop.run_in_executor(self._rounds, self._round)
            except Exception as exc:  # the store is unreachable: wait, then try again
                log.warning("%s unavailable: %s", self.name, exc)
                worked = 0
            if not worked:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.poll_seconds)

    async def stop(self) -> None:
        """Finish the attempts in hand (each bounded by its timeout), then stop."""
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
    """Names this process in the leases it holds."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
