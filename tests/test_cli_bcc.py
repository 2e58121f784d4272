"""The command line of BCC logging: secret addresses, activities (read-only), the inbound queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from peers.bcc_listener import BUYER, LOG, REP, World, eml, seed_world
from sqlalchemy import select

from bcc_ingest.smtp.queue_worker import ProcessingSettings, process_next
from gateway.bcc_addresses import UNKNOWN, USER, check_recipient
from gateway.clock import utcnow
from gateway.db import Store
from gateway.inbound_queue import claim_next, enqueue, record_failure
from gateway.logging_policy import FREE_MAIL_DOMAINS, LoggingPolicy
from gateway.models import InboundMessage, User

Run = Callable[..., tuple[int, str, str]]
POLICY = LoggingPolicy(LOG, frozenset({"crm.example"}), frozenset(), True, FREE_MAIL_DOMAINS)
QUOTE = "smtp/quote_with_attachments.eml"


@pytest.fixture(autouse=True)
def _logging_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_GATEWAY_SMTP_LOGGING_ADDRESS", LOG)


@pytest.fixture
def world(store: Store) -> World:
    return seed_world(store)


def queue(store: Store, raw: bytes, username: str = "rep") -> int:
    with store.transaction() as session:
        user = session.scalar(select(User).where(User.username == username))
        assert user is not None
        [row_id] = enqueue(session, raw=raw, user_ids=[user.id], peer="192.0.2.7:4321",
                           mail_from=REP, rcpt_tos=[LOG])
    return row_id


def process_all(store: Store) -> None:
    while process_next(store, POLICY, ProcessingSettings(3, 0, 60)):
        pass


def test_users_bcc_address_prints_the_secret_address_and_rotates_it(
    cli: Run, store: Store, world: World
) -> None:
    assert cli("users", "bcc-address", "rep") == (0, world.rep + "\n", "")
    code, out, _ = cli("--json", "users", "bcc-address", "rep", "--rotate")
    rotated = json.loads(out)["bcc_address"]
    assert code == 0 and rotated != world.rep and rotated.startswith("log+")
    with store.reading() as session:
        assert check_recipient(session, world.rep, LOG).kind == UNKNOWN  # the old one is dead
        assert check_recipient(session, rotated, LOG).kind == USER
    assert cli("users", "bcc-address", "nobody") == (2, "", "crm-gateway: no user named 'nobody'\n")


def test_demo_prints_each_users_bcc_address_and_keeps_it(cli: Run) -> None:
    code, first, _ = cli("demo")
    assert code == 0 and "BCC logging:" in first
    addresses = [line.split()[1] for line in first.splitlines()[-3:]]
    assert [a.split("@")[1] for a in addresses] == ["crm.example"] * 3
    assert all(a.startswith("log+") for a in addresses)
    _, again, _ = cli("demo")
    assert again.splitlines()[-3:] == first.splitlines()[-3:]  # no rotation on re-run


def test_activities_list_show_and_save_an_attachment(
    cli: Run, store: Store, world: World, tmp_path: Path
) -> None:
    queue(store, eml(QUOTE))
    process_all(store)
    code, out, _ = cli("activities", "list", "--contact", BUYER.upper())
    assert code == 0 and "Quote Q-2026-001 for 100 widgets  [2 attachments]" in out
    assert cli("activities", "list", "--user", "rep2") == (0, "no activities\n", "")
    assert cli("activities", "list", "--contact", "x@nowhere.example")[0] == 2
    activity_id = out.split()[0]

    code, out, _ = cli("activities", "show", activity_id)
    assert code == 0
    assert "  users:       rep\n" in out
    assert "  accounts:    Customer Ltd\n" in out
    assert "  attachment:  pricing.csv (text/csv, 51 bytes)\n" in out
    assert out.rstrip().endswith("please find our quote attached.\n\nRep")
    shown = json.loads(cli("--json", "activities", "show", activity_id)[1])
    assert shown["contacts"] == [BUYER, "ceo@customer.example", "freelancer@gmail.com"]
    assert shown["html"].startswith("<p>Hello Bea,</p>")

    target = tmp_path / "saved.csv"
    code, out, _ = cli("activities", "attachment", activity_id, "pricing.csv", "--out",
                       str(target))
    assert code == 0 and target.read_bytes().startswith(b"item,qty,price\r\n")
    code, _, err = cli("activities", "attachment", activity_id, "pricing.csv", "--out",
                       str(target))
    assert code == 2 and "exists already" in err
    code, _, err = cli("activities", "attachment", activity_id, "nope.txt", "--out",
                       str(tmp_path / "n"))
    assert code == 2 and "has no attachment 'nope.txt' (it has: 'Q-2026-001.pdf'" in err
    assert cli("activities", "show", "999")[2] == "crm-gateway: no activity 999\n"
    # Activities are read-only: there is no command that changes one.
    assert cli("activities", "delete", activity_id)[0] == 2


def test_inbound_list_show_and_retry(cli: Run, store: Store, world: World) -> None:
    done = queue(store, eml(QUOTE))
    process_all(store)
    parked = queue(store, eml("smtp/cc_logging_address.eml"))
    with store.transaction() as session:  # a try that failed for good
        claim = claim_next(session, utcnow(), lease_seconds=60, max_attempts=1)
        assert claim is not None and claim.id == parked
        record_failure(session, claim, "OperationalError: database is locked", utcnow(),
                       max_attempts=1, retry_delay=0)

    code, out, _ = cli("inbound", "list")
    assert code == 0 and len(out.splitlines()) == 2
    code, out, _ = cli("inbound", "list", "--status", "failed")
    assert [line.split()[:2] for line in out.splitlines()] == [[str(parked), "failed"]]
    code, out, _ = cli("inbound", "show", str(parked))
    assert "  decision:     parked after 1 tries: OperationalError: database is locked\n" in out
    assert "  subject:      Meeting notes\n" in out and "  client:       192.0.2.7:4321\n" in out
    shown = json.loads(cli("--json", "inbound", "show", str(done))[1])
    assert shown["status"] == "done" and shown["decision"].startswith("logged as activity")

    assert cli("inbound", "retry", str(done))[2] == (
        f"crm-gateway: inbound message {done} is already logged (activity "
        f"{shown['activity_id']}); nothing to retry\n")
    assert cli("inbound", "retry", str(parked)) == (
        0, f"queued inbound message {parked} again\n", "")
    assert cli("inbound", "retry", "--all") == (0, "queued 0 failed message(s) again\n", "")
    assert cli("inbound", "retry")[0] == 2  # an ID or --all is required
    process_all(store)
    with store.reading() as session:
        row = session.get(InboundMessage, parked)
        assert row is not None and (row.status, row.attempts) == ("done", 1)
