"""Polling a rep's real mailbox: what gets logged, what is read, and nothing twice.

Each test runs a private Dovecot and polls it the way ``crm-gateway mail poll --once`` does,
on SQLite and on PostgreSQL. What was fetched is read from Dovecot's own log, and flags
from Dovecot, so the poller's own counters are not the only witness.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from imap_world import (
    ALICE,
    BOB,
    HANK,
    PASSWORDS,
    activities,
    connect_mailbox,
    cursors,
    fetched_bodies,
    mail,
    make_config,
    poll,
    seed_crm,
)
from peers.dovecot import DovecotServer, dovecot_fixture

from gateway.activities import record_email
from gateway.db import Store
from gateway.logging_policy import LoggingPolicy
from gateway.mail.parse import parse_message
from gateway.users import get_user

pytestmark = pytest.mark.dovecot
dovecot = dovecot_fixture(tls=False, users=PASSWORDS)

FROM_HANK = mail(HANK, [ALICE], "Spring order", message_id="order-1@globex.example")
FROM_GLOBEX = mail("buyer@globex.example", [ALICE], "Invoice 7", message_id="inv-7@globex.example")
TO_HANK = mail(ALICE, [HANK], "Re: Spring order", message_id="reply-1@acme.example")
NEWSLETTER = mail("news@shop.example", [ALICE], "Deals", message_id="deal@shop.example",
                  headers=["List-Id: <deals.shop.example>"])
COLLEAGUE = mail(BOB, [ALICE], "Lunch?", message_id="lunch@acme.example")
STRANGER = mail("someone@elsewhere.example", [ALICE], "Hi", message_id="hi@elsewhere.example")


def fill(dovecot: DovecotServer) -> None:
    for raw in (FROM_HANK, NEWSLETTER, COLLEAGUE, FROM_GLOBEX, STRANGER):
        dovecot.append("alice", "INBOX", raw, flags=["\\Seen"] if raw is NEWSLETTER else ())
    dovecot.append("alice", "Sent", TO_HANK, flags=["\\Seen"])


@pytest_twisted.ensureDeferred
async def test_first_poll_logs_mail_with_contacts_both_ways_and_reads_nothing_else(
    dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path
) -> None:
    seed_crm(store)
    connect_mailbox(store, "alice", dovecot)
    fill(dovecot)
    flags_before = {f: dovecot.flags("alice", f) for f in ("INBOX", "Sent")}

    [report] = await poll(make_config(database_url, tmp_path), store)

    assert report.error is None
    logged = activities(store)
    assert set(logged) == {"order-1@globex.example", "inv-7@globex.example",
                           "reply-1@acme.example"}
    assert logged["order-1@globex.example"] == {
        "direction": "received", "source": "imap", "subject": "Spring order",
        "users": {"alice"}, "contacts": {HANK}, "accounts": {"Globex"},
    }
    assert logged["reply-1@acme.example"]["direction"] == "sent"
    assert logged["reply-1@acme.example"]["contacts"] == {HANK}
    assert logged["inv-7@globex.example"]["accounts"] == {"Globex"}
    # Only the three messages involving Globex were read whole; six headers were read.
    assert (report.counts.examined, report.counts.fetched) == (6, 3)
    assert fetched_bodies(dovecot, "alice", sessions=1) == 3
    # Read-only: \Seen is neither set nor cleared, nothing moved or deleted.
    assert {f: dovecot.flags("alice", f) for f in ("INBOX", "Sent")} == flags_before


@pytest_twisted.ensureDeferred
async def test_a_second_poll_adds_nothing_and_new_mail_is_picked_up(
    dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path
) -> None:
    seed_crm(store)
    connect_mailbox(store, "alice", dovecot)
    fill(dovecot)
    config = make_config(database_url, tmp_path)
    await poll(config, store)

    [again] = await poll(config, store)
    assert (again.error, again.counts.examined, again.counts.fetched) == (None, 0, 0)
    assert len(activities(store)) == 3

    dovecot.append("alice", "INBOX", mail(HANK, [ALICE], "Delivery date",
                                          message_id="date@globex.example"))
    dovecot.append("alice", "INBOX", mail("x@elsewhere.example", [ALICE], "Spam"))
    [new] = await poll(config, store)
    assert (new.counts.examined, new.counts.fetched, new.counts.logged) == (2, 1, 1)
    assert "date@globex.example" in activities(store)
    assert fetched_bodies(dovecot, "alice", sessions=3) == 3 + 0 + 1


@pytest_twisted.ensureDeferred
async def test_a_recreated_folder_is_rescanned_without_duplicates(
    dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path
) -> None:
    seed_crm(store)
    connect_mailbox(store, "alice", dovecot, folders=["INBOX", "Customers"])
    dovecot.create_folder("alice", "Customers")
    dovecot.append("alice", "Customers", FROM_HANK)
    dovecot.append("alice", "Customers", FROM_GLOBEX)
    config = make_config(database_url, tmp_path)
    await poll(config, store)
    old_validity = cursors(store, "alice")["Customers"][0]

    # DELETE and CREATE give the folder a new UIDVALIDITY (RFC 3501 section 2.3.1.1).
    dovecot.delete_folder("alice", "Customers")
    dovecot.create_folder("alice", "Customers")
    dovecot.append("alice", "Customers", FROM_HANK)
    dovecot.append("alice", "Customers", FROM_GLOBEX)
    [report] = await poll(config, store)

    assert report.error is None
    assert (report.counts.examined, report.counts.linked, report.counts.logged) == (2, 2, 0)
    assert len(activities(store)) == 2
    validity, last_uid = cursors(store, "alice")["Customers"]
    assert validity != old_validity and last_uid == 2


@pytest.mark.parametrize("bcc_first", [True, False], ids=["bcc-then-imap", "imap-then-bcc"])
@pytest_twisted.ensureDeferred
async def test_the_same_mail_by_bcc_and_imap_is_one_activity_linked_to_everyone(
    bcc_first: bool, dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path
) -> None:
    # Alice writes to Hank with Bob in copy and BCCs the logging address; Bob's mailbox is
    # polled and holds the same message.
    seed_crm(store)
    connect_mailbox(store, "bob", dovecot)
    raw = mail(ALICE, [HANK], "Proposal", cc=[BOB], message_id="proposal@acme.example")
    config = make_config(database_url, tmp_path)

    def log_by_bcc() -> None:
        with store.transaction() as session:
            outcome = record_email(session, parse_message(raw), raw=raw,
                                   user=get_user(session, "alice"), source="bcc",
                                   policy=LoggingPolicy.from_config(config))
        assert outcome.status == ("logged" if bcc_first else "linked")

    if bcc_first:
        log_by_bcc()
    dovecot.append("bob", "INBOX", raw)
    [report] = await poll(config, store)
    assert report.error is None
    if not bcc_first:
        log_by_bcc()

    logged = activities(store)
    assert list(logged) == ["proposal@acme.example"]
    assert logged["proposal@acme.example"]["users"] == {"alice", "bob"}
    assert logged["proposal@acme.example"]["contacts"] == {HANK}
    assert logged["proposal@acme.example"]["accounts"] == {"Globex"}
    assert logged["proposal@acme.example"]["source"] == ("bcc" if bcc_first else "imap")
