"""The poller role as ``serve`` runs it: several pollers share mailboxes, IDLE wakes them.

Two services with their own owner names run against one database (as two processes would)
and one Dovecot holding four reps' mailboxes. Sampled throughout: no account is ever in a
session of both; every account is served; new mail arrives through IDLE long before the
polling interval; stopping gives every lease back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from imap_world import (
    HANK,
    SECRET_KEY,
    account_state,
    activities,
    connect_mailbox,
    mail,
    make_config,
)
from peers.dovecot import DovecotServer, dovecot_fixture
from twisted.internet import defer, task

from bcc_ingest.imap.service import PollerService, make_context
from gateway.contacts import create_account, create_contact
from gateway.db import Store
from gateway.users import create_user

pytestmark = pytest.mark.dovecot
REPS = ["ann", "ben", "cat", "dan"]
dovecot = dovecot_fixture(tls=False, users={rep: f"{rep}'s password" for rep in REPS})


async def wait_until(condition: object, timeout: float, what: str) -> None:
    from twisted.internet import reactor

    for _ in range(int(timeout / 0.05)):
        if condition():  # type: ignore[operator]
            return
        await task.deferLater(reactor, 0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest_twisted.ensureDeferred
async def test_two_pollers_share_the_mailboxes_and_never_hold_one_together(
    dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path
) -> None:
    from twisted.internet import reactor

    with store.transaction() as session:
        for rep in REPS:
            create_user(session, rep, f"{rep}@acme.example")
        create_account(session, "Globex", ["globex.example"])
        create_contact(session, HANK)
    for rep in REPS:
        connect_mailbox(store, rep, dovecot, password=f"{rep}'s password")
        dovecot.append(rep, "INBOX", mail(HANK, [f"{rep}@acme.example"], "Before",
                                          message_id=f"before-{rep}@globex.example"))
    # A polling interval far longer than the test: only IDLE can bring new mail in time.
    config = make_config(database_url, tmp_path, interval="300", max_accounts="3")
    assert config.get("security", "secret_key") == SECRET_KEY
    services = [PollerService(make_context(reactor, store, config, f"poller-{n}"),
                              tick_seconds=0.1) for n in (1, 2)]
    overlaps: list[set[int]] = []

    def sample() -> None:
        both = set(services[0].sessions) & set(services[1].sessions)
        if both:
            overlaps.append(both)

    sampler = task.LoopingCall(sample)
    sampler.clock = reactor
    sampler.start(0.01)
    try:
        for service in services:
            service.start()
        await wait_until(lambda: len(activities(store)) == 4, 10, "the first pass of every rep")
        await wait_until(lambda: sum(len(s.sessions) for s in services) == 4, 5,
                         "an IDLE session for every rep")
        held = [set(service.sessions) for service in services]
        assert held[0] and held[1] and not held[0] & held[1]

        for rep in REPS:
            dovecot.append(rep, "INBOX", mail(HANK, [f"{rep}@acme.example"], "After",
                                              message_id=f"after-{rep}@globex.example"))
        await wait_until(lambda: len(activities(store)) == 8, 5, "new mail through IDLE")
    finally:
        await defer.gatherResults([service.stop() for service in services])
        sampler.stop()
    assert overlaps == []
    logged = activities(store)
    assert all(logged[f"after-{rep}@globex.example"]["users"] == {rep} for rep in REPS)
    for rep in REPS:
        state = account_state(store, rep)
        assert state.lease_owner is None and state.consecutive_failures == 0
