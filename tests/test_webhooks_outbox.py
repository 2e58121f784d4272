"""The webhook outbox on SQLite and PostgreSQL: events written in the transaction of their
change, one delivery per listening endpoint, leases that hand each delivery to one deliverer,
retries with backoff until the window ends, and the events the core's services emit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from peers import TEST_SECRET_KEY
from sqlalchemy import func, select, update

from gateway.clock import utcnow
from gateway.contacts import create_contact
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.entries import (
    EntryDraft,
    EntryEdit,
    TaskDraft,
    create_entry,
    delete_entry,
    update_entry,
)
from gateway.errors import Invalid, NotFound
from gateway.inbound_queue import claim_next, enqueue
from gateway.key_check import KeyMismatch, check_key
from gateway.mail_accounts import MailSettings, set_account
from gateway.mail_leases import lease_accounts, record_failure, record_success
from gateway.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from gateway.secrets import SecretBox
from gateway.users import UserChanges, create_user, get_user, update_user
from gateway.webhook_leases import Outcome, RetryPolicy, lease_due, record_attempt
from gateway.webhooks import (
    add_endpoint,
    check_patterns,
    get_delivery,
    list_deliveries,
    remove_endpoint,
    replay,
)

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
BOX = SecretBox(TEST_SECRET_KEY)
POLICY = RetryPolicy(first_retry_seconds=10, retry_for_seconds=100, timeout_seconds=5)


@pytest.fixture
def crm(store: Store) -> Store:
    with store.transaction() as session:
        create_type(session, "Meeting")
        alice = create_user(session, "alice", "alice@acme.example", name="Alice Martin")
        update_user(session, alice, UserChanges(diary_sync=True))
    return store


def endpoint(store: Store, *events: str, url: str = "http://127.0.0.1:9/hooks") -> int:
    with store.transaction() as session:
        return add_endpoint(session, url, events, box=BOX).endpoint.id


def draft(title: str = "Pricing") -> EntryDraft:
    return EntryDraft(type_name="Meeting", title=title, start=START,
                      end=START + timedelta(hours=1), organizer="alice")


def events(store: Store) -> list[tuple[str, dict[str, object]]]:
    with store.reading() as session:
        return [(e.type, e.payload) for e in
                session.scalars(select(WebhookEvent).order_by(WebhookEvent.created_at))]


def count(store: Store, table: type[object]) -> int:
    with store.reading() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def test_a_rolled_back_change_emits_nothing_and_a_committed_one_is_queued(crm: Store) -> None:
    endpoint(crm, "entry.*")
    with pytest.raises(RuntimeError), crm.transaction() as session:
        create_entry(session, draft())
        raise RuntimeError("the change fails after the entry was written")
    assert count(crm, WebhookEvent) == 0 and count(crm, WebhookDelivery) == 0

    with crm.transaction() as session:
        entry = create_entry(session, draft())
        entry_id, uid = entry.id, entry.uid
    [(event_type, payload)] = events(crm)
    assert event_type == "entry.created"
    data = payload["data"]
    assert isinstance(data, dict)
    assert payload["type"] == "entry.created" and str(payload["timestamp"]).endswith("Z")
    assert {k: data[k] for k in ("id", "uid", "title", "start", "end", "type", "owner",
                                 "origin")} == {
        "id": entry_id, "uid": uid, "title": "Pricing", "start": "2026-12-07T09:00:00Z",
        "end": "2026-12-07T10:00:00Z", "type": "Meeting", "owner": "alice", "origin": "crm"}
    assert str(data["etag"]).startswith('"')
    assert count(crm, WebhookDelivery) == 1


def test_a_task_entry_reports_its_own_fields(crm: Store) -> None:
    endpoint(crm, "entry.*")
    with crm.transaction() as session:
        create_type(session, "To do", kind="task")
        create_entry(session, EntryDraft(type_name="To do", title="Send offer", start=None,
                                         end=None, organizer="alice",
                                         task=TaskDraft(due=START, priority=2)))
    [(_, payload)] = events(crm)
    data = payload["data"]
    assert isinstance(data, dict)
    assert (data["start"], data["end"]) == (None, None)
    assert data["task"] == {"due": "2026-12-07T09:00:00Z", "completed": None, "priority": 2,
                            "status": "NEEDS-ACTION", "percent_complete": None}


def test_each_listening_endpoint_gets_a_delivery_and_others_none(crm: Store) -> None:
    entries_only = endpoint(crm, "entry.*")
    everything = endpoint(crm, "*")
    endpoint(crm, "activity.logged")
    with crm.transaction() as session:
        entry = create_entry(session, draft(), origin="api")
        update_entry(session, entry, EntryEdit(title="Pricing, again"), origin="api")
        delete_entry(session, entry, origin="api")
    assert [(t, p["data"]["origin"]) for t, p in events(crm)] == [  # type: ignore[index]
        ("entry.created", "api"), ("entry.updated", "api"), ("entry.deleted", "api")]
    with crm.reading() as session:
        owed = sorted(session.execute(select(WebhookDelivery.endpoint_id)).scalars())
    assert owed == sorted([entries_only, everything] * 3)


def test_nothing_is_written_while_no_endpoint_listens(crm: Store) -> None:
    endpoint(crm, "activity.logged")
    with crm.transaction() as session:
        create_entry(session, draft())
    assert count(crm, WebhookEvent) == 0


def test_unknown_events_and_bad_urls_are_refused_and_nothing_is_stored(crm: Store) -> None:
    assert check_patterns(["entry.*", " activity.logged", "entry.*"]) == [
        "entry.*", "activity.logged"]
    for patterns, reason in ((["entry.made"], "unknown event 'entry.made'"),
                             (["bogus.*"], "unknown event 'bogus.*'"),
                             ([""], "name at least one event")):
        with pytest.raises(Invalid, match=reason), crm.transaction() as session:
            add_endpoint(session, "https://crm.example/hooks", patterns, box=BOX)
    with pytest.raises(Invalid, match="not an http"), crm.transaction() as session:
        add_endpoint(session, "ftp://crm.example/hooks", ["*"], box=BOX)
    assert count(crm, WebhookEndpoint) == 0


def test_the_secret_is_stored_encrypted_and_opens_with_the_key(crm: Store) -> None:
    with crm.transaction() as session:
        made = add_endpoint(session, "https://crm.example/hooks", ["*"], box=BOX)
    assert made.secret.startswith("whsec_") and made.secret not in repr(made)
    with crm.reading() as session:
        stored = session.scalar(select(WebhookEndpoint.secret))
    assert stored is not None and made.secret.encode() not in bytes(stored)
    assert BOX.decrypt(stored) == made.secret


def test_concurrent_deliverers_never_lease_one_delivery_twice(crm: Store) -> None:
    endpoint(crm, "entry.*")
    with crm.transaction() as session:
        for n in range(30):
            create_entry(session, draft(f"Entry {n}"))
    taken: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def deliverer(owner: str) -> None:
        start.wait()
        mine = taken.setdefault(owner, [])
        while jobs := lease_due(crm, owner, utcnow(), limit=3, lease_seconds=60):
            mine.extend(job.delivery_id for job in jobs)

    threads = [threading.Thread(target=deliverer, args=(f"d{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    every = [delivery for ids in taken.values() for delivery in ids]
    assert len(every) == 30 and len(set(every)) == 30


def test_a_failed_attempt_backs_off_and_the_window_ends_in_failed(crm: Store) -> None:
    endpoint(crm, "entry.*")
    with crm.transaction() as session:
        create_entry(session, draft())
    now = utcnow()
    waits = []
    statuses = []
    for offset in (0, 15, 40, 90):  # seconds after the event: the fourth is late in the window
        at = now + timedelta(seconds=offset)
        [job] = lease_due(crm, "me", now + timedelta(days=1), limit=1, lease_seconds=60)
        statuses.append(record_attempt(crm, job, "me", Outcome(500, "HTTP 500", 3), at, POLICY))
        with crm.reading() as session:
            delivery = session.scalar(select(WebhookDelivery))
            assert delivery is not None
            waits.append((delivery.next_attempt_at - at).total_seconds())
    # 10, 20, 40 s (each within the jitter); the fourth would be due past the 100 s window.
    assert statuses == ["pending", "pending", "pending", "failed"]
    for wait, base in zip(waits[:3], (10, 20, 40), strict=True):
        assert base * 0.75 <= wait <= base * 1.25
    assert count(crm, WebhookAttempt) == 4
    with crm.reading() as session:
        [(delivery, _event)] = list_deliveries(session, failed_only=True)
        assert (delivery.attempts, delivery.last_status) == (4, 500)
    assert lease_due(crm, "me", now + timedelta(days=2), limit=5, lease_seconds=60) == []


def test_a_lost_lease_records_the_attempt_but_not_the_outcome(crm: Store) -> None:
    endpoint(crm, "entry.*")
    with crm.transaction() as session:
        create_entry(session, draft())
    now = utcnow()
    [job] = lease_due(crm, "slow", now, limit=1, lease_seconds=1)
    [again] = lease_due(crm, "next", now + timedelta(seconds=2), limit=1, lease_seconds=60)
    assert record_attempt(crm, job, "slow", Outcome(204, None, 1), now, POLICY) is None
    assert record_attempt(crm, again, "next", Outcome(204, None, 1), now, POLICY) == "delivered"
    assert count(crm, WebhookAttempt) == 2


def test_replay_sends_the_same_event_again_and_removal_stops_deliveries(crm: Store) -> None:
    target = endpoint(crm, "entry.*")
    with crm.transaction() as session:
        create_entry(session, draft())
    [job] = lease_due(crm, "me", utcnow(), limit=1, lease_seconds=60)
    record_attempt(crm, job, "me", Outcome(204, None, 1), utcnow(), POLICY)
    with crm.transaction() as session:
        again = replay(session, job.delivery_id)
    [second] = lease_due(crm, "me", utcnow(), limit=1, lease_seconds=60)
    assert (second.delivery_id, second.event_id) == (again.id, job.event_id)
    assert second.body == job.body
    with crm.transaction() as session:
        remove_endpoint(session, target)
    with crm.reading() as session, pytest.raises(NotFound):
        get_delivery(session, job.delivery_id)
    assert record_attempt(crm, second, "me", Outcome(204, None, 1), utcnow(), POLICY) is None
    assert count(crm, WebhookDelivery) == 0 and count(crm, WebhookAttempt) == 0


def test_contacts_made_by_hand_emit_contact_created(crm: Store) -> None:
    endpoint(crm, "contact.created")
    with crm.transaction() as session:
        contact = create_contact(session, "Hank@Globex.example", name="Hank Scorpio")
        contact_id = contact.id
    assert events(crm) == [("contact.created", {
        "type": "contact.created", "timestamp": events(crm)[0][1]["timestamp"],
        "data": {"id": contact_id, "name": "Hank Scorpio", "emails": ["hank@globex.example"],
                 "account_id": None, "source": "crm"}})]


def test_a_mail_account_failing_emits_once_per_run_of_failures(crm: Store) -> None:
    endpoint(crm, "mail_account.failed")
    with crm.transaction() as session:
        set_account(session, get_user(session, "alice"),
                    MailSettings("127.0.0.1", 143, "none", "alice", "pw"), BOX)
    now = utcnow()
    for error in ("connect failed: refused", "connect failed: refused again"):
        [account_id] = lease_accounts(crm, "me", now, limit=1, due_only=False)
        record_failure(crm, account_id, "me", now, error, cap_seconds=300, pause=False)
    assert [(t, p["data"]["error"]) for t, p in events(crm)] == [  # type: ignore[index]
        ("mail_account.failed", "connect failed: refused")]
    [account_id] = lease_accounts(crm, "me", now, limit=1, due_only=False)
    record_success(crm, account_id, "me", now, next_poll_at=now, keep_lease=False)
    [account_id] = lease_accounts(crm, "me", now, limit=1, due_only=False)
    record_failure(crm, account_id, "me", now, "login refused", cap_seconds=300, pause=True)
    assert [(p["data"]["error"], p["data"]["paused"], p["data"]["user"])  # type: ignore[index]
            for _, p in events(crm)][1:] == [("login refused", True, "alice")]


def test_a_parked_inbound_message_emits_inbound_failed(crm: Store) -> None:
    endpoint(crm, "inbound.failed")
    with crm.transaction() as session:
        [message_id] = enqueue(session, raw=b"Subject: x\r\n\r\nbody\r\n",
                               user_ids=[get_user(session, "alice").id], peer=None,
                               mail_from="alice@acme.example", rcpt_tos=["log@crm.example"])
        session.execute(update(WebhookDelivery).values(status="delivered"))
    now = utcnow()
    for attempt in range(2):  # two workers claim it and die
        with crm.transaction() as session:
            assert claim_next(session, now + timedelta(seconds=61 * attempt), lease_seconds=60,
                              max_attempts=2) is not None
    assert events(crm) == []
    with crm.transaction() as session:
        assert claim_next(session, now + timedelta(days=1), lease_seconds=60,
                          max_attempts=2) is None
    [(event_type, payload)] = events(crm)
    data = payload["data"]
    assert isinstance(data, dict)
    assert (event_type, data["id"], data["user"], data["attempts"]) == (
        "inbound.failed", message_id, "alice", 2)
    assert "parked after 2 tries" in str(data["decision"])


def test_a_process_whose_key_cannot_open_the_webhook_secrets_is_refused(crm: Store) -> None:
    endpoint(crm, "*")
    with pytest.raises(KeyMismatch, match="does not open the webhook secrets stored"):
        check_key(crm, "another key")
    check_key(crm, TEST_SECRET_KEY)
