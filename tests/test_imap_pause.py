"""Pausing a mailbox that a poller holds, and one-off polls while it holds it.

The poller is the ``serve`` role's `PollerService`, holding its account in IDLE against a real
Dovecot; the administrator is the real ``crm-gateway`` command in its own process, on the same
database (SQLite and PostgreSQL). What is logged is read from the database.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted
from imap_world import (
    ALICE,
    HANK,
    PASSWORDS,
    SECRET_KEY,
    account_state,
    activities,
    connect_mailbox,
    mail,
    make_config,
    seed_crm,
)
from peers.dovecot import DovecotServer, dovecot_fixture
from twisted.internet import defer, task
from twisted.internet.threads import deferToThread

from bcc_ingest.imap.service import PollerService, make_context
from gateway.clock import utcnow
from gateway.db import Store

pytestmark = pytest.mark.dovecot
dovecot = dovecot_fixture(tls=False, users=PASSWORDS)
OWNER = "serve-on-host-a:4242:abc123"
CLI = Path(sys.executable).parent / "crm-gateway"


def crm_gateway(database_url: str, tmp_path: Path, *argv: str) -> defer.Deferred[
        subprocess.CompletedProcess[str]]:
    """The command line in its own process, off the reactor thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
    env.update(CRM_GATEWAY_DATABASE_URL=database_url,
               CRM_GATEWAY_PATHS_DATA_DIR=str(tmp_path / "var"),
               CRM_GATEWAY_SECURITY_SECRET_KEY=SECRET_KEY)
    return deferToThread(subprocess.run, [str(CLI), *argv], env=env, capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)


async def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    from twisted.internet import reactor

    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await task.deferLater(reactor, 0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


async def holding(store: Store, database_url: str, tmp_path: Path, dovecot: DovecotServer,
                  interval: str) -> PollerService:
    """A poller that has logged alice's first mail and holds her account in IDLE."""
    from twisted.internet import reactor

    seed_crm(store)
    connect_mailbox(store, "alice", dovecot)
    dovecot.append("alice", "INBOX", mail(HANK, [ALICE], "Before", message_id="before@globex"))
    config = make_config(database_url, tmp_path, interval=interval)
    service = PollerService(make_context(reactor, store, config, OWNER), tick_seconds=0.1)
    service.start()
    await wait_until(lambda: set(activities(store)) == {"before@globex"}, 15, "the first pass")
    await wait_until(lambda: service.sessions, 5, "alice's session in IDLE")
    return service


@pytest_twisted.ensureDeferred
async def test_mail_pause_stops_a_poller_that_holds_the_account_before_new_mail_is_logged(
    dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path
) -> None:
    from twisted.internet import reactor

    # An interval far beyond the test: the new mail wakes the IDLE session at once.
    service = await holding(store, database_url, tmp_path, dovecot, interval="300")
    try:
        paused = await crm_gateway(database_url, tmp_path, "mail", "pause", "alice")
        assert paused.returncode == 0, paused.stderr
        dovecot.append("alice", "INBOX", mail(HANK, [ALICE], "After", message_id="after@globex"))

        await wait_until(lambda: not service.sessions, 10, "the session to end")
        assert account_state(store, "alice").lease_owner is None
        shown = await crm_gateway(database_url, tmp_path, "mail", "show", "alice")
        assert "state:        paused: paused with 'crm-gateway mail pause'" in shown.stdout
        assert "polled by" not in shown.stdout
        # Several poller ticks later: still not leased again, the new mail not logged.
        await task.deferLater(reactor, 1.0)
        assert not service.sessions
        assert set(activities(store)) == {"before@globex"}

        resumed = await crm_gateway(database_url, tmp_path, "mail", "resume", "alice")
        assert resumed.returncode == 0, resumed.stderr
        await wait_until(lambda: "after@globex" in activities(store), 15,
                         "the mail logged after resume")
    finally:
        await service.stop()


@pytest_twisted.ensureDeferred
async def test_turning_email_sync_off_stops_the_poller_that_holds_the_account(
    dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path
) -> None:
    service = await holding(store, database_url, tmp_path, dovecot, interval="300")
    try:
        off = await crm_gateway(database_url, tmp_path, "users", "set", "alice",
                                "--email-sync", "off")
        assert off.returncode == 0, off.stderr
        dovecot.append("alice", "INBOX", mail(HANK, [ALICE], "After", message_id="after@globex"))
        await wait_until(lambda: not service.sessions, 10, "the session to end")
        assert account_state(store, "alice").lease_owner is None
        assert set(activities(store)) == {"before@globex"}
    finally:
        await service.stop()


@pytest_twisted.ensureDeferred
async def test_a_pause_without_new_mail_gives_the_lease_back_within_one_interval(
    dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path
) -> None:
    service = await holding(store, database_url, tmp_path, dovecot, interval="2")
    try:
        paused = await crm_gateway(database_url, tmp_path, "mail", "pause", "alice")
        assert paused.returncode == 0, paused.stderr
        # One interval (2 s) is the bound; 5x margin for a busy machine.
        await wait_until(lambda: account_state(store, "alice").lease_owner is None, 10,
                         "the lease given back")
        # The session ends just after it gives the lease back.
        await wait_until(lambda: not service.sessions, 5, "the session ended")
    finally:
        await service.stop()


@pytest_twisted.ensureDeferred
async def test_a_one_off_poll_names_the_poller_that_holds_the_account(
    dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path
) -> None:
    service = await holding(store, database_url, tmp_path, dovecot, interval="300")
    try:
        named = await crm_gateway(database_url, tmp_path, "mail", "poll", "alice", "--once")
        every = await crm_gateway(database_url, tmp_path, "mail", "poll", "--once")
        lease_until = account_state(store, "alice").lease_until
        assert set(activities(store)) == {"before@globex"}
    finally:
        await service.stop()
    held = re.compile(rf"^alice: not polled: {re.escape(OWNER)} is polling it \(lease until "
                      r"(\S+)Z, renewed while it polls\)$", re.M)
    assert named.returncode == 1
    assert held.search(named.stdout), named.stdout
    # Without a user: held accounts are not "no accounts", and not a failure.
    assert every.returncode == 0, every.stderr
    found = held.search(every.stdout)
    assert found, every.stdout
    assert "no active mail accounts" not in every.stdout
    printed = datetime.fromisoformat(found.group(1)).replace(tzinfo=UTC)
    assert lease_until is not None and printed <= lease_until
    assert printed > utcnow()  # when it ends, not when it began
