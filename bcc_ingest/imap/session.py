"""One leased account from connect to logout: poll, maybe IDLE, and record the outcome.

The lease is renewed in the background while the session lives; losing it aborts the
connection at once. Every ending is recorded on the account: success (failures reset), a
failure (counted, backed off exponentially up to ``imap.max_backoff``), or a pause when the
server refused the login or the stored secret cannot be decrypted. An account paused (or its
user's email sync turned off) while held ends the session at the next lease renewal or write,
before anything more is logged, and its lease is given back. Nothing here lets one
account's trouble reach another's session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from bcc_ingest.imap.connect import ImapOptions, StepFailed, describe_error, open_session
from bcc_ingest.imap.protocol import GatewayIMAP4Client
from bcc_ingest.imap.sync import Cursors, PassCounts, Stopping, SyncContext, sync_mailbox
from gateway.clock import utcnow
from gateway.db import Store
from gateway.logging_policy import LoggingPolicy
from gateway.mail_import import LeaseRef
from gateway.mail_leases import (
    LEASE_SECONDS,
    LeaseLost,
    PollingStopped,
    load_target,
    record_failure,
    record_success,
    release,
    renew,
)
from gateway.secrets import SecretBox, SecretError

log = logging.getLogger(__name__)

RENEW_SECONDS = LEASE_SECONDS / 4


@dataclass(frozen=True)
class PollerContext:
    """What every session of one poller shares."""

    reactor: Any
    store: Store
    policy: LoggingPolicy
    options: ImapOptions
    box: SecretBox
    owner: str


@dataclass
class AccountReport:
    """How one session went, for `mail poll --once` and the logs."""

    account_id: int
    username: str = ""
    counts: PassCounts = field(default_factory=PassCounts)
    error: str | None = None
    paused: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"user": self.username, **self.counts.as_dict(), "error": self.error,
                "paused": self.paused}


@dataclass
class _Connected:
    """A logged-in session's connection and what its passes share."""

    client: GatewayIMAP4Client
    sync: SyncContext
    folders: tuple[str, ...]
    cursors: Cursors  # as committed, updated by every pass
    can_idle: bool


class AccountSession:
    """Poll one leased account; with `keep_idle`, stay connected in IDLE between passes."""

    def __init__(self, ctx: PollerContext, account_id: int, *, keep_idle: bool) -> None:
        self.ctx = ctx
        self.account_id = account_id
        self.keep_idle = keep_idle
        self.report = AccountReport(account_id)
        self.stopping = False
        self._lease_lost = False
        self._stopped_by: PollingStopped | None = None  # a pause seen by the lease renewal
        self._aborted = False
        self._client: GatewayIMAP4Client | None = None
        self._connected: _Connected | None = None

    def _in_thread(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        reactor = self.ctx.reactor
        return deferToThreadPool(reactor, reactor.getThreadPool(), function, *args, **kwargs)

    def stop(self) -> None:
        """Finish soon: leave IDLE now, or end the pass after the current batch."""
        self.stopping = True
        if self._client is not None:
            self._client.stop_idle()

    def abort(self) -> None:
        self._aborted = True
        if self._client is not None and self._client.transport is not None:
            self._client.transport.abortConnection()

    async def run(self) -> AccountReport:
        renewer = LoopingCall(self._renew)
        renewer.clock = self.ctx.reactor
        renewer.start(RENEW_SECONDS, now=False).addErrback(self._renew_failed)
        try:
            await self._poll()
        except Exception as exc:
            if not (self.stopping and (isinstance(exc, Stopping) or self._aborted)):
                await self._ended_badly(exc)
                return self.report
            # Stopped (and maybe cut short): another poller may take over at once.
            await self._give_back()
        finally:
            if renewer.running:
                renewer.stop()
            self.abort()
        return self.report

    async def _give_back(self) -> None:
        try:
            await self._in_thread(release, self.ctx.store, self.account_id,
                                  self.ctx.owner, next_poll_at=utcnow())
        except Exception as db_exc:  # the lease then simply runs out
            log.warning("imap account %d: cannot release the lease: %s",
                        self.account_id, describe_error(db_exc))

    async def _ended_badly(self, exc: Exception) -> None:
        stopped = exc if isinstance(exc, PollingStopped) else self._stopped_by
        if stopped is not None:
            # Paused (or email sync off) while held: nothing after it was logged.
            self.report.error = str(stopped)
            log.info("imap %s: %s; polling stopped", self.report.username or self.account_id,
                     stopped)
            await self._give_back()
            return
        if isinstance(exc, LeaseLost) or self._lease_lost:
            # Not a failure of the mailbox: another poller may hold the account now.
            self.report.error = str(exc) if isinstance(exc, LeaseLost) else (
                "the lease ran out; another poller may hold the account")
            log.warning("imap %s: %s", self.report.username or self.account_id,
                        self.report.error)
            return
        await self._failed(exc)

    async def _poll(self) -> None:
        await self.connect()
        while await self.run_pass():
            await self.wait_for_mail()
        try:
            await self._live().client.close_session()
        except Exception as exc:  # logged and recorded already; a rude goodbye changes nothing
            log.debug("imap %s: LOGOUT: %s", self.report.username, describe_error(exc))

    async def connect(self) -> None:
        """Load the leased account and log in; `run_pass` then works on this connection."""
        ctx = self.ctx
        target = await self._in_thread(load_target, ctx.store, self.account_id, ctx.box)
        self.report.username = target.username
        sync = SyncContext(
            reactor=ctx.reactor, store=ctx.store, policy=ctx.policy, options=ctx.options,
            lease=LeaseRef(self.account_id, target.user_id, ctx.owner),
            username=target.username, stopping=lambda: self.stopping,
        )
        client = self._client = await open_session(ctx.reactor, target, ctx.options)
        self._connected = _Connected(
            client=client, sync=sync, folders=target.folders, cursors=dict(target.cursors),
            can_idle="IDLE" in client.capabilities and "INBOX" in target.folders,
        )

    def _live(self) -> _Connected:
        if self._connected is None:
            raise RuntimeError("the session is not connected")
        return self._connected

    async def run_pass(self) -> bool:
        """One pass over the mailbox on the open connection, recorded on the account.

        Returns whether the session stays connected and should wait in IDLE (`wait_for_mail`)
        before the next pass; if not, the lease has been given back.
        """
        ctx, conn = self.ctx, self._live()
        await sync_mailbox(conn.sync, conn.client, conn.folders, conn.cursors,
                           self.report.counts)
        idle = self.keep_idle and conn.can_idle and not self.stopping
        now = utcnow()
        await self._in_thread(
            record_success, ctx.store, self.account_id, ctx.owner, now,
            next_poll_at=now + timedelta(seconds=ctx.options.interval), keep_lease=idle,
        )
        log.info("imap %s: %r", self.report.username, self.report.counts)
        return idle

    async def wait_for_mail(self) -> None:
        """IDLE on INBOX until new mail, ``imap.interval`` or `stop`; raises Stopping then."""
        conn = self._live()
        # RFC 2177: IDLE reports changes to the selected folder after it was selected, so
        # mail that came in since the pass looked at INBOX is caught here instead.
        info = await conn.client.examine("INBOX")
        seen = conn.cursors.get("INBOX")
        if seen is not None and seen[0] == info.uidvalidity and info.uidnext is not None \
                and info.uidnext - 1 <= seen[1] and not self.stopping:
            await conn.client.idle(self.ctx.options.interval)
        if self.stopping:
            raise Stopping

    async def _failed(self, exc: Exception) -> None:
        pause = isinstance(exc, SecretError) or (isinstance(exc, StepFailed) and exc.auth)
        if isinstance(exc, StepFailed):
            reason = f"{exc.step} failed: {exc.reason}"
        elif isinstance(exc, SecretError):
            reason = str(exc)
        else:
            reason = describe_error(exc)
        self.report.error, self.report.paused = reason, pause
        log.warning("imap %s: %s%s", self.report.username or self.account_id, reason,
                    " (account paused)" if pause else "")
        try:
            await self._in_thread(
                record_failure, self.ctx.store, self.account_id, self.ctx.owner, utcnow(),
                reason, cap_seconds=self.ctx.options.max_backoff, pause=pause,
            )
        except Exception as db_exc:  # the database is down too: the lease simply runs out
            log.error("imap %s: cannot record the failure: %s", self.report.username,
                      describe_error(db_exc))

    def _renew(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = self._in_thread(
            renew, self.ctx.store, self.account_id, self.ctx.owner, utcnow()
        )
        d.addErrback(self._renew_failed)
        return d

    def _renew_failed(self, failure: Failure) -> None:
        # Without the lease another poller may start on this mailbox: stop touching it now.
        self._lease_lost = True
        if isinstance(failure.value, PollingStopped):
            self._stopped_by = failure.value
        log.warning("imap account %d: lease renewal failed: %s", self.account_id,
                    describe_error(failure.value or Exception("unknown")))
        self.abort()
