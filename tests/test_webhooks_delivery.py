"""Signed webhooks delivered by real ``serve --only webhooks`` processes to a real receiver.

The receiver is an HTTP server on loopback that can fail its first calls or be down; the CLI
runs in-process on the same database; changes come from the CLI, from the core services and
from a BCC mail sent with smtplib. Each test checks what the CRM application would see: the
signature verifies with ``standardwebhooks``, each event arrives once by its webhook-id
however many attempts, processes or crashes it took. SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CliRun
from peers import TEST_SECRET_KEY
from peers.bcc_listener import REP, World, eml, running_listener, send, settle, write_config
from sqlalchemy import select
from standardwebhooks import Webhook
from webhook_peers import deliverers, delivery_states, receiver, start_deliverer

from gateway.clock import utcnow
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.entries import EntryDraft, create_entry
from gateway.models import WebhookAttempt
from gateway.users import UserChanges, create_user, update_user

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def hooks_cli(cli: CliRun, monkeypatch: pytest.MonkeyPatch) -> CliRun:
    """The CLI with the key the deliverers use (it encrypts the endpoints' secrets)."""
    monkeypatch.setenv("CRM_GATEWAY_SECURITY_SECRET_KEY", TEST_SECRET_KEY)
    return cli


@pytest.fixture
def crm(store: Store) -> Store:
    with store.transaction() as session:
        create_type(session, "Meeting")
        alice = create_user(session, "alice", "alice@acme.example", name="Alice Martin")
        update_user(session, alice, UserChanges(diary_sync=True))
    return store


def add_endpoint(cli: CliRun, url: str, events: str) -> tuple[int, str]:
    code, out, err = cli("--json", "webhooks", "add", url, "--events", events)
    assert code == 0, err
    made = json.loads(out)
    return made["id"], made["secret"]


def add_entries(store: Store, count: int) -> None:
    with store.transaction() as session:
        for n in range(count):
            create_entry(session, EntryDraft(
                type_name="Meeting", title=f"Entry {n}", start=START + timedelta(hours=n),
                end=START + timedelta(hours=n, minutes=30), organizer="alice"))


def wait_until(condition: object, timeout: float = 60.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_cli_adds_an_endpoint_and_an_entry_made_there_arrives_signed(
    hooks_cli: CliRun, crm: Store, database_url: str, tmp_path: Path,
) -> None:
    with receiver() as hooks, deliverers(database_url, tmp_path):
        endpoint_id, secret = add_endpoint(hooks_cli, hooks.url, "entry.*,activity.logged")
        code, out, _ = hooks_cli("entries", "add", "--type", "Meeting", "--title", "Pricing",
                                 "--start", "2026-12-07T09:00", "--end", "2026-12-07T10:00",
                                 "--organizer", "alice")
        assert code == 0, out
        [request] = hooks.wait_for(1)
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "entry.created"
    assert (payload["data"]["title"], payload["data"]["origin"], payload["data"]["owner"]) == (
        "Pricing", "crm", "alice")
    assert request.webhook_id.startswith("msg_")
    assert request.headers["content-type"] == "application/json"
    forged = request.body.replace(b"Pricing", b"Discount")
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(forged, request.headers)

    code, out, _ = hooks_cli("webhooks", "list")
    assert code == 0 and f"{endpoint_id}  {hooks.url}  entry.*,activity.logged" in out
    assert secret not in out
    code, out, _ = hooks_cli("--json", "webhooks", "deliveries")
    [delivery] = json.loads(out)
    assert (delivery["status"], delivery["attempts"], delivery["last_status"],
            delivery["event_id"]) == ("delivered", 1, 204, request.webhook_id)


def test_cli_mistakes_are_one_line_and_exit_2_with_nothing_stored(hooks_cli: CliRun) -> None:
    code, out, err = hooks_cli("webhooks", "add", "https://crm.example/hooks",
                               "--events", "entry.created,entry.moved")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "unknown event 'entry.moved'" in err
    code, _, err = hooks_cli("webhooks", "add", "crm.example/hooks", "--events", "*")
    assert code == 2 and "not an http:// or https:// URL" in err
    for argv in (("webhooks", "remove", "7"), ("webhooks", "replay", "7")):
        code, _, err = hooks_cli(*argv)
        assert code == 2 and len(err.splitlines()) == 1 and "no webhook" in err
    assert hooks_cli("webhooks", "list")[1].strip() == "no webhook endpoints"


def test_a_receiver_that_fails_then_recovers_gets_the_event_once(
    hooks_cli: CliRun, crm: Store, database_url: str, tmp_path: Path,
) -> None:
    with receiver(fail_first=2) as hooks, deliverers(database_url, tmp_path):
        _, secret = add_endpoint(hooks_cli, hooks.url, "entry.created")
        add_entries(crm, 1)
        [request] = hooks.wait_for(1)
        time.sleep(2)  # a duplicate would come within the next poll or two
        assert len(hooks.received) == 1 and hooks.calls == 3
    Webhook(secret).verify(request.body, request.headers)
    [(event_id, status, attempts)] = delivery_states(crm)
    assert (event_id, status, attempts) == (request.webhook_id, "delivered", 3)
    [delivery] = json.loads(hooks_cli("--json", "webhooks", "deliveries")[1])
    _, out, _ = hooks_cli("--json", "webhooks", "show", str(delivery["id"]))
    shown = json.loads(out)
    assert [a["status_code"] for a in shown["attempts_made"]] == [500, 500, 204]


def test_a_crash_while_the_receiver_is_down_still_delivers_after_restart(
    hooks_cli: CliRun, crm: Store, database_url: str, tmp_path: Path,
) -> None:
    with receiver() as probe:  # a free port, closed again: nothing listens there now
        port = probe.port
    first = start_deliverer(database_url, tmp_path / "first")
    try:
        _, secret = add_endpoint(hooks_cli, f"http://127.0.0.1:{port}/hooks", "entry.*")
        add_entries(crm, 1)  # committed: the outbox holds it
        wait_until(lambda: delivery_states(crm)[0][2] >= 1)  # an attempt failed
    finally:
        first.kill()
    assert "ConnectionError" in first.log()
    [(_, status, _)] = delivery_states(crm)
    assert status == "pending"
    with receiver(port=port) as hooks, deliverers(database_url, tmp_path / "second"):
        [request] = hooks.wait_for(1)
        time.sleep(2)
        assert len(hooks.received) == 1
    Webhook(secret).verify(request.body, request.headers)
    assert request.payload["type"] == "entry.created"
    [(event_id, status, _)] = delivery_states(crm)
    assert (event_id, status) == (request.webhook_id, "delivered")


def test_two_processes_deliver_each_of_fifty_events_exactly_once(
    hooks_cli: CliRun, crm: Store, database_url: str, tmp_path: Path,
) -> None:
    with receiver() as hooks, deliverers(database_url, tmp_path, count=2) as running:
        add_endpoint(hooks_cli, hooks.url, "entry.created")
        add_entries(crm, 50)
        received = hooks.wait_for(50, timeout=120)
        time.sleep(3)  # long enough for a second delivery of any of them to show
        received = list(hooks.received)
        logs = [deliverer.log() for deliverer in running]
    ids = [request.webhook_id for request in received]
    assert len(ids) == 50 and len(set(ids)) == 50
    assert sorted(request.payload["data"]["title"] for request in received) == sorted(
        f"Entry {n}" for n in range(50))
    assert {status for _, status, _ in delivery_states(crm)} == {"delivered"}
    assert all(attempts == 1 for _, _, attempts in delivery_states(crm))
    with crm.reading() as session:
        assert len(session.scalars(select(WebhookAttempt.id)).all()) == 50
    assert all("started" in log for log in logs)


def test_replay_sends_the_same_webhook_id_again(
    hooks_cli: CliRun, crm: Store, database_url: str, tmp_path: Path,
) -> None:
    with receiver() as hooks, deliverers(database_url, tmp_path):
        add_endpoint(hooks_cli, hooks.url, "entry.created")
        add_entries(crm, 1)
        [first] = hooks.wait_for(1)
        [delivery] = json.loads(hooks_cli("--json", "webhooks", "deliveries")[1])
        code, out, _ = hooks_cli("webhooks", "replay", str(delivery["id"]))
        assert code == 0 and f"replay of delivery {delivery['id']}" in out
        second = hooks.wait_for(2)[1]
    assert second.webhook_id == first.webhook_id and second.body == first.body
    assert int(second.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"])


def test_a_delivery_out_of_its_retry_window_is_failed_and_listed(
    hooks_cli: CliRun, crm: Store, database_url: str, tmp_path: Path,
) -> None:
    with receiver(fail_first=100) as hooks, deliverers(
            database_url, tmp_path, CRM_GATEWAY_WEBHOOKS_RETRY_FOR_SECONDS="2"):
        add_endpoint(hooks_cli, hooks.url, "entry.created")
        add_entries(crm, 1)
        wait_until(lambda: delivery_states(crm)[0][1] == "failed", timeout=30)
        calls = hooks.calls
    assert 1 <= calls <= 3
    code, out, _ = hooks_cli("webhooks", "deliveries", "--failed")
    assert code == 0 and "failed" in out and "the receiver answered HTTP 500" in out


@pytest.fixture
def smtp_world(crm: Store, world: World) -> World:
    return world


@pytest.fixture
def listener(tmp_path: Path, database_url: str, crm: Store,
             smtp_world: World) -> Iterator[int]:
    with running_listener(write_config(tmp_path / "smtp", database_url), crm) as running:
        yield running.port


def test_a_bcc_mail_fires_activity_logged_and_contact_created(
    hooks_cli: CliRun, crm: Store, database_url: str, tmp_path: Path, smtp_world: World,
    listener: int,
) -> None:
    with receiver() as hooks, deliverers(database_url, tmp_path / "hooks"):
        _, secret = add_endpoint(hooks_cli, hooks.url, "activity.logged,contact.created")
        replies = send(listener, eml("smtp/quote_with_attachments.eml"), mail_from=REP,
                       rcpt_tos=[smtp_world.rep])
        assert replies.final == 250
        settle(crm)
        # The mail copies two people the CRM did not know: they become contacts.
        hooks.wait_for(3)
        time.sleep(2)
        received = list(hooks.received)
    for request in received:
        Webhook(secret).verify(request.body, request.headers)
    [logged] = [r.payload for r in received if r.payload["type"] == "activity.logged"]
    made = [r.payload["data"] for r in received if r.payload["type"] == "contact.created"]
    assert len(received) == 3
    assert sorted(email for contact in made for email in contact["emails"]) == [
        "ceo@customer.example", "freelancer@gmail.com"]
    assert {contact["source"] for contact in made} == {"mail"}
    data = logged["data"]
    assert (data["user"], data["source"], data["direction"]) == ("rep", "bcc", "sent")
    assert data["subject"] == "Quote Q-2026-001 for 100 widgets"
    assert data["from"] == REP and "buyer@customer.example" in data["to"]
    assert {contact["id"] for contact in made} < set(data["contact_ids"])
    assert len(data["contact_ids"]) == 3 and len(data["account_ids"]) == 1
    stamp = datetime.fromisoformat(logged["timestamp"].replace("Z", "+00:00"))
    assert utcnow() - stamp < timedelta(minutes=5)
