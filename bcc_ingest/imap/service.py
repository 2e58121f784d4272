"""The IMAP poller role of ``crm-gateway serve``, and the one-off pass of ``mail poll --once``.

Every few seconds the service leases the accounts that are due, up to ``imap.max_accounts``
sessions at once, and runs each in its own `AccountSession`: a server with IDLE keeps the
session (and the lease) and wakes on new INBOX mail or after ``imap.interval``; a server
without it is polled again after ``imap.interval``. Any number of poller processes can run
against one database; the leases keep them off each other's mailboxes.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from bcc_ingest.imap.connect import ImapOptions, describe_error
from bcc_ingest.imap.session import AccountReport, AccountSession, PollerContext
from gateway.clock import utcnow
from gateway.config import Config
from gateway.db import Store
from gateway.logging_policy import LoggingPolicy
from gateway.mail_leases import lease_accounts
from gateway.secrets import SecretBox

log = logging.getLogger(__name__)

TICK_SECONDS = 5.0
STOP_GRACE_SECONDS = 10.0


def owner_name(suffix: str = "") -> str:
    """Names this poller in `mail_accounts.lease_owner` (shown by `mail show`)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}{suffix}"


def make_context(reactor: Any, store: Store, config: Config, owner: str) -> PollerContext:
    return PollerContext(
        reactor=reactor, store=store, policy=LoggingPolicy.from_config(config),
        options=ImapOptions.from_config(config),
        box=SecretBox(config.get("security", "secret_key")), owner=owner,
    )


class PollerService:
    """Leases due accounts and keeps a session running for each."""

    def __init__(self, ctx: PollerContext, *, tick_seconds: float = TICK_SECONDS) -> None:
        self.ctx = ctx
        self.tick_seconds = tick_seconds
        self.sessions: dict[int, AccountSession] = {}
        self._done: dict[int, defer.Deferred[AccountReport]] = {}
        self._loop = LoopingCall(self._tick)
        self._loop.clock = ctx.reactor
        self._stopping = False
        self._ticking: defer.Deferred[None] | None = None

    def start(self) -> None:
        self._loop.start(self.tick_seconds, now=True).addErrback(self._loop_died)

    @staticmethod
    def _loop_died(failure: Failure) -> None:
        log.error("imap poller loop stopped: %s", failure.value)

    def _tick(self) -> defer.Deferred[None] | None:
        if self._stopping or self._ticking is not None:
            return None
        ticking = defer.Deferred.fromCoroutine(self._lease_and_start())
        self._ticking = ticking
        ticking.addErrback(self._tick_failed)
        ticking.addBoth(self._tick_done)
        return None  # the loop never waits on (or dies with) one tick

    @staticmethod
    def _tick_failed(failure: Failure) -> None:
        log.warning("imap: cannot lease accounts: %s",
                    describe_error(failure.value or Exception("unknown")))

    def _tick_done(self, _: Any) -> None:
        self._ticking = None

    async def _lease_and_start(self) -> None:
        free = self.ctx.options.max_accounts - len(self.sessions)
        if free <= 0:
            return
        reactor = self.ctx.reactor
        ids: list[int] = await deferToThreadPool(
            reactor, reactor.getThreadPool(), lease_accounts, self.ctx.store, self.ctx.owner,
            utcnow(), limit=free,
        )
        for account_id in ids:
            if self._stopping:
                break
            session = AccountSession(self.ctx, account_id, keep_idle=True)
            self.sessions[account_id] = session
            done = defer.Deferred.fromCoroutine(session.run())
            self._done[account_id] = done
            done.addBoth(self._session_ended, account_id)

    def _session_ended(self, result: Any, account_id: int) -> Any:
        self.sessions.pop(account_id, None)
        self._done.pop(account_id, None)
        if isinstance(result, Failure):  # a bug: sessions record their own failures
            log.error("imap account %d: session crashed: %s", account_id,
                      describe_error(result.value or Exception("unknown")))
            return None
        return result

    def stop(self) -> defer.Deferred[None]:
        """Stop leasing, end every session (IDLE at once) and give their leases back."""
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        self._stopping = True
        if self._loop.running:
            self._loop.stop()
        if self._ticking is not None:
            await self._ticking
        for session in list(self.sessions.values()):
            session.stop()
        # Cutting a fetch short is safe (cursors move only with committed batches), so a
        # session still busy after the grace period has its connection dropped.
        deadline = self.ctx.reactor.callLater(STOP_GRACE_SECONDS, self._abort_all)
        await defer.DeferredList(list(self._done.values()), consumeErrors=True)
        if deadline.active():
            deadline.cancel()

    def _abort_all(self) -> None:
        for session in list(self.sessions.values()):
            session.abort()


async def poll_once(
    ctx: PollerContext, usernames: Sequence[str] | None = None,
    on_report: Callable[[AccountReport], None] | None = None,
) -> list[AccountReport]:
    """One pass over every active account (or those of `usernames`), due or not.

    Accounts another poller holds are left to it. Up to ``imap.max_accounts`` run at once.
    """
    reports: list[AccountReport] = []
    seen: set[int] = set()
    reactor = ctx.reactor
    while True:
        ids: list[int] = await deferToThreadPool(
            reactor, reactor.getThreadPool(), lease_accounts, ctx.store, ctx.owner, utcnow(),
            limit=ctx.options.max_accounts, usernames=usernames, due_only=False, exclude=seen,
        )
        if not ids:
            return reports
        seen.update(ids)
        sessions = [AccountSession(ctx, account_id, keep_idle=False) for account_id in ids]
        results = await defer.gatherResults(
            [defer.Deferred.fromCoroutine(session.run()) for session in sessions]
        )
        for report in results:
            reports.append(report)
            if on_report is not None:
                on_report(report)


def start(config: Config, store: Store) -> Callable[[], defer.Deferred[None]]:
    """The ``imap`` role of `gateway.host`: returns the function that stops it."""
    from twisted.internet import reactor

    service = PollerService(make_context(reactor, store, config, owner_name()))
    service.start()
    log.info("imap poller %s started", service.ctx.owner)
    return service.stop
