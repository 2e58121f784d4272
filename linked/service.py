"""The ``linked`` role of ``serve``: every linked account synced on an interval.

Every few seconds the service leases the due links (``gateway.linked_calendars``: a
compare-and-set in the database, so N processes never sync one link at once) and runs each
pass on a worker thread (the ``caldav`` client blocks). A pass that fails is recorded on the
link and backs off (60 s, doubling, at most ``linked.max_backoff_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from gateway.clock import utcnow
from gateway.config import Config
from gateway.db import Store
from gateway.linked_calendars import (
    LeaseLost,
    lease_links,
    load_link,
    record_failure,
    record_success,
    release,
)
from gateway.secrets import SecretBox
from linked.sync import PassReport, run_pass

log = logging.getLogger(__name__)
TICK_SECONDS = 2.0


def owner_name(suffix: str = "") -> str:
    """Names this process in ``linked_accounts.lease_owner`` (shown by ``calendars show``)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}{suffix}"


def sync_one(config: Config, store: Store, link_id: int, owner: str) -> PassReport:
    """One pass over a link this owner holds; the outcome recorded, the lease given back."""
    box = SecretBox(config.get("security", "secret_key"))
    interval = config.get("linked", "interval")
    cap = config.get("linked", "max_backoff_seconds")
    try:
        target = load_link(store, link_id, box)
        report = run_pass(store, target, owner, timeout=config.get("linked", "timeout_seconds"))
    except LeaseLost as exc:
        log.warning("linked account %s: %s", link_id, exc)
        return PassReport(link_id, "", error=str(exc))
    except Exception as exc:  # the server, the network, a refusal: back off and retry
        error = f"{type(exc).__name__}: {exc}"
        log.warning("linked account %s: pass failed: %s", link_id, error)
        record_failure(store, link_id, owner, utcnow(), error, cap_seconds=cap)
        return PassReport(link_id, "", error=error)
    now = utcnow()
    record_success(store, link_id, owner, now, next_sync_at=now + timedelta(seconds=interval))
    log.info("linked account %s of %s: pushed %d, deleted %d, fetched %d, removed %d, "
             "%d conflicts", link_id, report.username, report.pushed, report.deleted,
             report.fetched, report.removed, len(report.conflicts))
    return report


def sync_now(config: Config, store: Store, usernames: Sequence[str] | None) -> list[PassReport]:
    """One pass over every active link (or those of ``usernames``), due or not, in this
    thread. Links another process holds right now are left to it."""
    owner = owner_name(":now")
    limit = 10_000
    ids = lease_links(store, owner, utcnow(), limit=limit, usernames=usernames, due_only=False)
    return [sync_one(config, store, link_id, owner) for link_id in ids]


class LinkedService:
    def __init__(self, config: Config, store: Store):
        self.config, self.store = config, store
        self.owner = owner_name()
        self.running: dict[int, asyncio.Future[PassReport]] = {}
        self.task: asyncio.Task[None] | None = None
        # Its own threads, so that stopping the role leaves none behind.
        self.threads = ThreadPoolExecutor(config.get("linked", "max_links") + 1,
                                          thread_name_prefix="linked")

    def start(self) -> None:
        self.task = asyncio.get_event_loop().create_task(self._loop())

    async def _loop(self) -> None:
        limit = self.config.get("linked", "max_links")
        while True:
            try:
                free = limit - len(self.running)
                loop = asyncio.get_event_loop()
                ids = await loop.run_in_executor(
                    self.threads, self._lease, free) if free > 0 else []
                for link_id in ids:
                    task = loop.run_in_executor(self.threads, sync_one, self.config,
                                                self.store, link_id, self.owner)
                    self.running[link_id] = task
                    task.add_done_callback(self._finished(link_id))
            except Exception:  # the database is down: try again next tick
                log.warning("linked calendars: cannot lease links", exc_info=True)
            await asyncio.sleep(TICK_SECONDS)

    def _lease(self, limit: int) -> list[int]:
        return lease_links(self.store, self.owner, utcnow(), limit=limit)

    def _finished(self, link_id: int) -> Callable[[asyncio.Future[PassReport]], None]:
        def forget(_: asyncio.Future[PassReport]) -> None:
            self.running.pop(link_id, None)
        return forget

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.running:
            await asyncio.wait(list(self.running.values()), timeout=10)
        for link_id in list(self.running):
            with contextlib.suppress(Exception):
                release(self.store, link_id, self.owner)
        self.threads.shutdown(wait=not self.running, cancel_futures=True)


def start(config: Config, store: Store) -> object:
    """The ``linked`` role of ``gateway.host``: returns the function that stops it."""
    service = LinkedService(config, store)
    service.start()
    log.info("linked calendars sync %s started", service.owner)
    return service.stop
