"""IMAP over TLS: implicit TLS and STARTTLS against Dovecot's certificate from a test CA.

The gateway trusts the CA through ``imap.ca_file``; without it (the system trust store) the
same server fails at the tls step.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from imap_world import (
    ALICE,
    HANK,
    PASSWORDS,
    activities,
    connect_mailbox,
    mail,
    make_config,
    poll,
    seed_crm,
)
from peers.dovecot import DovecotServer, dovecot_fixture

from bcc_ingest.imap.check import OK, SKIPPED, check_mailbox
from bcc_ingest.imap.connect import ImapOptions
from gateway.db import Store
from gateway.mail_leases import PollTarget

pytestmark = pytest.mark.dovecot
dovecot = dovecot_fixture(tls=True, users=PASSWORDS)


def target(dovecot: DovecotServer, tls: str, host: str = "localhost") -> PollTarget:
    port = dovecot.tls_port if tls == "ssl" else dovecot.port
    return PollTarget(account_id=0, user_id=0, username="alice", host=host, port=port,
                      tls=tls, login="alice", password=PASSWORDS["alice"],
                      folders=("INBOX",), cursors={})


@pytest.mark.parametrize("tls", ["ssl", "starttls", "none"])
@pytest_twisted.ensureDeferred
async def test_every_step_passes_with_the_test_ca_trusted(
    dovecot: DovecotServer, tls: str
) -> None:
    from twisted.internet import reactor

    options = ImapOptions(ca_file=str(dovecot.ca_path), connect_timeout=5, command_timeout=5)
    result = await check_mailbox(reactor, target(dovecot, tls), ("INBOX",), options)

    assert [(step.name, step.status) for step in result.steps] == [
        ("resolve", OK), ("connect", OK), ("tls", SKIPPED if tls == "none" else OK),
        ("login", OK), ("folder INBOX", OK), ("folder Sent", OK),
    ]
    if tls != "none":
        assert "issued by 'crm-gateway test CA', verified for localhost" in result.steps[2].detail
    assert "found by SPECIAL-USE \\Sent" in result.steps[5].detail


@pytest.mark.parametrize("tls", ["ssl", "starttls"])
@pytest_twisted.ensureDeferred
async def test_an_untrusted_certificate_fails_at_the_tls_step(
    dovecot: DovecotServer, tls: str
) -> None:
    from twisted.internet import reactor

    options = ImapOptions(connect_timeout=5, command_timeout=5)  # system trust store only
    result = await check_mailbox(reactor, target(dovecot, tls), ("INBOX",), options)

    failed = result.failed
    assert failed is not None and failed.name == "tls"
    assert "certificate verify failed" in failed.detail
    assert [step.name for step in result.steps] == ["resolve", "connect", "tls"]


@pytest.mark.parametrize("tls", ["ssl", "starttls"])
@pytest_twisted.ensureDeferred
async def test_the_poller_logs_over_tls(
    dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path, tls: str
) -> None:
    seed_crm(store)
    connect_mailbox(store, "alice", dovecot, tls=tls, host="localhost")
    dovecot.append("alice", "INBOX", mail(HANK, [ALICE], "Secure", message_id="tls@globex.example"))

    config = make_config(database_url, tmp_path, ca_file=str(dovecot.ca_path))
    [report] = await poll(config, store)

    assert report.error is None and report.counts.logged == 1
    assert activities(store)["tls@globex.example"]["source"] == "imap"
