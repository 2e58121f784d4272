"""Outbound mail sent by real ``serve`` processes through a real aiosmtpd smarthost.

A ``serve --only http`` gateway takes CalDAV PUTs from ``requests`` (a calendar app's
writes) and queues the rep's "added to the CRM" notification; ``serve --only outbound``
processes send it. Mail committed while no sender runs, or while a sender is killed with
SIGKILL, goes out once when one starts; two senders on one database send each mail once.
SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from caldav_peer import Gateway, event, new_rep, start_gateway, stop_gateway
from peers.role_process import RoleProcess, start_role
from peers.smarthost import Smarthost, smarthost
from sqlalchemy import select

from gateway.db import Store
from gateway.diary_types import create_type
from gateway.entries import EntryDraft, EntryEdit, create_entry, update_entry
from gateway.models import DiaryEntry, DiaryType, OutboundMail
from gateway.outbound import OutboundSettings, attach
from gateway.profiles import ProfileChanges, update_profile
from gateway.users import UserChanges, get_user, update_user

FROM = "crm@gateway.example"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smarthost]:
    with smarthost(tmp_path_factory.mktemp("relay")) as host:
        yield host


@pytest.fixture(scope="module")
def web(module_database_url: str, relay: Smarthost,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """``serve --only http`` of a gateway that mails through ``relay``."""
    running = start_gateway(module_database_url, tmp_path_factory.mktemp("web"),
                            *relay.env(FROM).items(),
                            ("CRM_GATEWAY_HTTP_PUBLIC_URL", "https://crm.example/"))
    with running.store.transaction() as session:
        if session.scalar(select(DiaryType).where(DiaryType.name == "Meeting")) is None:
            create_type(session, "Meeting")
    yield running
    stop_gateway(running)


@pytest.fixture
def fresh(web: Gateway, relay: Smarthost) -> Gateway:
    relay.clear()
    with web.store.transaction() as session:
        session.execute(OutboundMail.__table__.delete())
    return web


Sender = RoleProcess


def start_sender(database_url: str, relay: Smarthost, workdir: Path, **env: str) -> Sender:
    """``crm-gateway serve --only outbound``; started when it returns."""
    return start_role("outbound", database_url, workdir, "outbound mail sender",
                      {"CRM_GATEWAY_OUTBOUND_POLL_SECONDS": "1", **relay.env(FROM), **env})


def put(web: Gateway, username: str, password: str, href: str, body: str) -> int:
    answer = requests.put(f"{web.url}{username}/meeting/{href}", data=body.encode(),
                          auth=(username, password), timeout=10,
                          headers={"Content-Type": "text/calendar; charset=utf-8"})
    return answer.status_code


def statuses(store: Store) -> list[str]:
    with store.reading() as session:
        return list(session.scalars(select(OutboundMail.status).order_by(OutboundMail.id)))


def _attempts(store: Store) -> int:
    with store.reading() as session:
        return sum(session.scalars(select(OutboundMail.attempts)))


def settle(store: Store, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while statuses(store).count("sent") < count:
        assert time.monotonic() < deadline, statuses(store)
        time.sleep(0.1)


def test_a_client_made_event_notifies_the_rep_once_and_a_modification_never(
    fresh: Gateway, relay: Smarthost, module_database_url: str, tmp_path: Path,
) -> None:
    rep = new_rep(fresh.store, name="Rita Rep")
    quiet = new_rep(fresh.store)
    with fresh.store.transaction() as session:
        update_user(session, get_user(session, quiet.username),
                    UserChanges(notify_client_adds=False))
    uid = f"{uuid.uuid4()}@client"
    assert put(fresh, rep.username, rep.password, "call.ics",
               event(uid, "Call Globex")) == 201
    assert put(fresh, rep.username, rep.password, "call.ics",
               event(uid, "Call Globex (moved)", start="20261207T110000Z",
                     end="20261207T120000Z")) in (200, 204)
    assert put(fresh, quiet.username, quiet.password, "q.ics",
               event(f"{uuid.uuid4()}@client", "Quiet call")) == 201
    sender = start_sender(module_database_url, relay, tmp_path / "s")
    try:
        [mail] = relay.wait_for(1)
        settle(fresh.store, 1)
    finally:
        sender.stop()
    assert len(relay.messages()) == 1
    assert mail.rcpt_tos == (rep.email,)
    assert str(mail.message["Subject"]) == "Added to the CRM: Call Globex"
    text = mail.text()
    assert "Call Globex" in text and "Meeting" in text and "09:00" in text
    with fresh.store.reading() as session:
        entry_id = session.scalar(select(OutboundMail.entry_id))
    assert f"https://crm.example/account/entries/{entry_id}" in text
    assert mail.calendar() is None


def test_mail_committed_with_no_sender_running_or_with_one_killed_goes_out_once(
    fresh: Gateway, relay: Smarthost, module_database_url: str, tmp_path: Path,
) -> None:
    store = fresh.store
    rep = new_rep(store)
    with store.transaction() as session:
        update_profile(session, get_user(session, rep.username),
                       ProfileChanges(invitations="always"))
    attach(store, OutboundSettings(FROM))
    with store.transaction() as session:
        create_entry(session, EntryDraft(
            type_name="Meeting", title="Kick-off", organizer=rep.username,
            start=_at(9), end=_at(10), attendees=("carol@globex.example",)))
    # A sender killed before it can send (the smarthost is made to hold off first).
    relay.fail_next(1, "451 4.3.0 Try later")
    killed = start_sender(module_database_url, relay, tmp_path / "killed",
                          CRM_GATEWAY_OUTBOUND_FIRST_RETRY_SECONDS="1")
    deadline = time.monotonic() + 30
    while _attempts(store) < 1:  # deferred and recorded: killed with the mail still owed
        assert time.monotonic() < deadline
        time.sleep(0.02)
    killed.kill()
    assert relay.messages() == []
    sender = start_sender(module_database_url, relay, tmp_path / "again")
    try:
        [mail] = relay.wait_for(1)
        settle(store, 1)
    finally:
        sender.stop()
    assert len(relay.messages()) == 1
    assert mail.rcpt_tos == ("carol@globex.example",)
    assert mail.calendar() is not None


def test_two_senders_send_each_mail_once(
    fresh: Gateway, relay: Smarthost, module_database_url: str, tmp_path: Path,
) -> None:
    store = fresh.store
    rep = new_rep(store)
    with store.transaction() as session:
        update_profile(session, get_user(session, rep.username),
                       ProfileChanges(invitations="always"))
    attach(store, OutboundSettings(FROM))
    with store.transaction() as session:
        for n in range(6):
            create_entry(session, EntryDraft(
                type_name="Meeting", title=f"Meeting {n}", organizer=rep.username,
                start=_at(9 + n), end=_at(10 + n),
                attendees=(f"guest{n}@globex.example", f"other{n}@initech.example")))
    senders = [start_sender(module_database_url, relay, tmp_path / f"s{n}",
                            CRM_GATEWAY_OUTBOUND_WORKERS="3") for n in range(2)]
    try:
        relay.wait_for(12)
        settle(store, 12)
    finally:
        for sender in senders:
            sender.stop()
    counts = Counter(mail.message_id for mail in relay.messages())
    assert len(counts) == 12 and set(counts.values()) == {1}
    assert statuses(store) == ["sent"] * 12


def _at(hour: int) -> datetime:
    return datetime(2026, 12, 9, hour % 24, 0, tzinfo=UTC)


def test_after_first_sync_mails_only_entries_made_after_the_reps_first_calendar_sign_in(
    fresh: Gateway, relay: Smarthost, module_database_url: str, tmp_path: Path,
) -> None:
    store = fresh.store
    rep = new_rep(store)
    with store.transaction() as session:
        update_profile(session, get_user(session, rep.username),
                       ProfileChanges(invitations="after_first_sync"))
    attach(store, OutboundSettings(FROM))
    with store.transaction() as session:
        backlog = create_entry(session, EntryDraft(
            type_name="Meeting", title="Backlog", organizer=rep.username,
            start=_at(9), end=_at(10), attendees=("carol@globex.example",))).id
    # Entries keep whole seconds: connect in a later second than the backlog was made.
    time.sleep(1.05 - time.time() % 1)
    # The rep connects a calendar app: its first sign-in is the first sync.
    answer = requests.request("PROPFIND", f"{fresh.url}{rep.username}/", timeout=10,
                              auth=rep.auth, headers={"Depth": "1"})
    assert answer.status_code == 207
    with store.transaction() as session:
        entry = session.get(DiaryEntry, backlog)
        assert entry is not None
        update_entry(session, entry, EntryEdit(start=_at(11), end=_at(12)))
        create_entry(session, EntryDraft(
            type_name="Meeting", title="After connecting", organizer=rep.username,
            start=_at(13), end=_at(14), attendees=("dave@initech.example",)))
    sender = start_sender(module_database_url, relay, tmp_path / "s")
    try:
        [mail] = relay.wait_for(1)
        settle(store, 1)
    finally:
        sender.stop()
    assert len(relay.messages()) == 1
    assert mail.rcpt_tos == ("dave@initech.example",)
    calendar = mail.calendar()
    assert calendar is not None
    assert str(calendar.walk("VEVENT")[0]["SUMMARY"]) == "After connecting"
