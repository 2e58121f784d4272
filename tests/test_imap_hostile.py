"""The poller against broken and hostile IMAP servers (tests/peers/hostile_imap.py).

No mail is skipped silently, the checkpoint only moves to UIDs the server returned for mail
that was handled, nothing the server announces makes the poller read or spool it, errors
built from server bytes are printable and short, and numbers outside the protocol's range
are protocol errors that leave the rest of the folder's mail handled. Dovecot stays the
peer for every normal behaviour (test_imap_poll.py, test_imap_failures.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from imap_world import (
    ALICE,
    HANK,
    SECRET_KEY,
    account_state,
    activities,
    cursors,
    mail,
    make_config,
    poll,
    seed_crm,
)
from peers import hostile_imap as hostile
from peers.hostile_imap import HostileImap, assert_shown_safely
from sqlalchemy import select
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

import bcc_ingest.imap.sync as imap_sync
from bcc_ingest.imap.check import check_mailbox
from bcc_ingest.imap.connect import ImapOptions
from bcc_ingest.imap.guard import AnswerLimits, AnswerTooLarge
from bcc_ingest.imap.protocol import GatewayIMAP4Client
from bcc_ingest.imap.wire import ImapError, printable
from gateway.db import Store
from gateway.mail_accounts import MailSettings, set_account
from gateway.mail_leases import PollTarget
from gateway.models import Activity
from gateway.secrets import SecretBox
from gateway.users import get_user


@pytest.fixture
def server() -> Iterator[HostileImap]:
    with hostile.hostile_imap(silence_seconds=3.0, trickle_seconds=0.5) as running:
        yield running


def connect(store: Store, username: str, server: HostileImap, mode: str) -> None:
    """`username`'s mailbox on the hostile server, logging in as `mode` (its misbehaviour)."""
    settings = MailSettings("127.0.0.1", server.port, "none", mode, "pw", ("INBOX",))
    with store.transaction() as session:
        set_account(session, get_user(session, username), settings, SecretBox(SECRET_KEY))


def from_hank(server: HostileImap, mode: str, count: int, *, start: int = 0) -> list[str]:
    """`count` messages from the CRM contact Hank to Alice; their Message-IDs."""
    ids = [f"hank-{mode}-{n}@globex.example" for n in range(start, start + count)]
    for message_id in ids:
        server.add(mode, mail(HANK, [ALICE], f"About {message_id}", message_id=message_id))
    return ids


@pytest_twisted.ensureDeferred
async def test_a_bogus_uidnext_once_never_moves_the_checkpoint_past_later_mail(
    server: HostileImap, store: Store, database_url: str, tmp_path: Path
) -> None:
    seed_crm(store)
    connect(store, "alice", server, hostile.BOGUS_UIDNEXT)
    first = from_hank(server, hostile.BOGUS_UIDNEXT, 2)
    config = make_config(database_url, tmp_path)

    [report] = await poll(config, store)  # EXAMINE announced UIDNEXT 4000000000

    assert report.error is None and set(activities(store)) == set(first)
    assert cursors(store, "alice")["INBOX"][1] == 2
    later = from_hank(server, hostile.BOGUS_UIDNEXT, 2, start=2)
    [report] = await poll(config, store)
    assert report.error is None and report.counts.logged == 2
    assert set(activities(store)) == {*first, *later}
    assert cursors(store, "alice")["INBOX"][1] == 4


@pytest_twisted.ensureDeferred
async def test_a_2gb_literal_is_never_read_and_the_account_reports_the_skipped_message(
    server: HostileImap, store: Store, database_url: str, tmp_path: Path
) -> None:
    seed_crm(store)
    connect(store, "alice", server, hostile.HUGE_LITERAL)
    wanted = from_hank(server, hostile.HUGE_LITERAL, 3)
    server.huge_uid = 2
    config = make_config(database_url, tmp_path, max_message_bytes=str(1024 * 1024))

    [report] = await poll(config, store)

    # The poller dropped the connection on the announcement: the server's silence and
    # trickle never started (it saw the reset at once, and sent nothing more).
    assert len(server.seen(hostile.HUGE_LITERAL, "announced")) == 1
    [reset] = server.wait_for(hostile.HUGE_LITERAL, "reset")
    print(f"2 GB literal: connection reset {reset.detail} s after the announcement")
    assert float(reset.detail) < server.silence_seconds
    assert not server.seen(hostile.HUGE_LITERAL, "trickled")
    assert report.error is not None
    assert "literal of 2147483648 bytes (the limit is 1048576) for UID 2" in report.error
    assert report.error.endswith("connection reset; UID 2 is skipped")
    state = account_state(store, "alice")
    assert state.last_error == report.error and state.consecutive_failures == 1
    # What came before it is logged; it is skipped with the reason on the account.
    assert cursors(store, "alice")["INBOX"][1] == 2 and set(activities(store)) == {wanted[0]}
    # And the mail after it is not blocked behind it.
    [report] = await poll(config, store)
    assert report.error is None and set(activities(store)) == {wanted[0], wanted[2]}


@pytest_twisted.ensureDeferred
async def test_mail_over_the_message_limit_is_logged_from_its_headers_alone(
    server: HostileImap, store: Store, database_url: str, tmp_path: Path
) -> None:
    seed_crm(store)
    connect(store, "alice", server, hostile.HONEST)
    server.add(hostile.HONEST, mail(HANK, [ALICE], "The big deck", message_id="big@globex.example",
                                    body="slide\r\n" * 20_000))
    small = from_hank(server, hostile.HONEST, 1)
    config = make_config(database_url, tmp_path, max_message_bytes="65536")

    [report] = await poll(config, store)

    assert report.error is None and report.counts.logged == 2
    logged = activities(store)
    assert set(logged) == {"big@globex.example", *small}
    assert logged["big@globex.example"]["subject"] == "The big deck"
    assert logged["big@globex.example"]["contacts"] == {HANK}
    with store.reading() as session:
        big = session.scalar(select(Activity).where(Activity.message_id == "big@globex.example"))
        assert big is not None and big.text_body is not None
        assert "slide" not in big.text_body
        assert "more than the 65,536 bytes" in big.text_body
        assert "Only its headers were logged" in big.text_body


@pytest_twisted.ensureDeferred
async def test_binary_garbage_in_the_greeting_gives_a_short_printable_error(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    seed_crm(store)
    with hostile.hostile_imap(greeting=b"* " + hostile.GARBAGE * 2) as server:
        connect(store, "alice", server, hostile.HONEST)
        [report] = await poll(make_config(database_url, tmp_path), store)
    assert_shown_safely(report.error)
    assert report.error is not None and report.error.startswith("connect failed: 127.0.0.1:")
    assert ": no IMAP greeting: the server sent what is not IMAP: *? !\"#$%&" in report.error
    state = account_state(store, "alice")
    assert state.last_error == report.error and not state.paused


@pytest_twisted.ensureDeferred
async def test_binary_garbage_in_list_is_skipped_or_reported_printable_and_short(
    server: HostileImap, store: Store, database_url: str, tmp_path: Path
) -> None:
    seed_crm(store)
    connect(store, "alice", server, hostile.GARBAGE_LIST)
    connect(store, "bob", server, hostile.GARBAGE_ERROR)
    wanted = from_hank(server, hostile.GARBAGE_LIST, 2)
    server.add(hostile.GARBAGE_ERROR, mail(HANK, ["bob@acme.example"], "Hi Bob"))

    reports = {r.username: r for r in await poll(make_config(database_url, tmp_path), store)}

    # Garbage lines among good ones: ignored, the folder it names is polled.
    assert reports["alice"].error is None and set(activities(store)) == set(wanted)
    # A refusal made of garbage: the account shows a clean, short reason.
    assert_shown_safely(reports["bob"].error)
    assert reports["bob"].error is not None and reports["bob"].error.startswith("LIST: ")
    assert account_state(store, "bob").last_error == reports["bob"].error


@pytest_twisted.ensureDeferred
async def test_mail_test_shows_a_garbage_refusal_printable_and_short(server: HostileImap) -> None:
    from twisted.internet import reactor

    target = PollTarget(account_id=0, user_id=0, username="alice", host="127.0.0.1",
                        port=server.port, tls="none", login=hostile.GARBAGE_ERROR,
                        password="pw", folders=("INBOX",), cursors={})
    result = await check_mailbox(reactor, target, ("INBOX",), ImapOptions())
    assert [(step.name, step.status) for step in result.steps] == [
        ("resolve", "ok"), ("connect", "ok"), ("tls", "skipped"), ("login", "ok"),
        ("folders", "failed")]
    assert result.failed is not None and result.failed.detail.startswith(
        "cannot list the folders: LIST: ")
    assert_shown_safely(result.failed.detail)


@pytest_twisted.ensureDeferred
async def test_a_uid_of_2_to_the_40_is_a_protocol_error_and_the_rest_is_logged(
    server: HostileImap, store: Store, database_url: str, tmp_path: Path
) -> None:
    seed_crm(store)
    connect(store, "alice", server, hostile.HUGE_UID)
    wanted = from_hank(server, hostile.HUGE_UID, 3)
    config = make_config(database_url, tmp_path)

    [first] = await poll(config, store)
    wanted += from_hank(server, hostile.HUGE_UID, 1, start=3)
    [second] = await poll(config, store)  # new mail: the server sends the UID again

    for report, count in ((first, 3), (second, 1)):
        assert report.error is not None and report.error.startswith("INBOX: UID SEARCH ")
        assert "outside the protocol's range (1 to 4294967295), e.g. 1099511627776" \
            in report.error
        assert report.counts.logged == count
    assert_shown_safely(account_state(store, "alice").last_error)
    assert set(activities(store)) == set(wanted)
    assert cursors(store, "alice")["INBOX"][1] == 4


@pytest_twisted.ensureDeferred
async def test_a_uidvalidity_beyond_32_bits_is_a_protocol_error_and_other_mailboxes_go_on(
    server: HostileImap, store: Store, database_url: str, tmp_path: Path
) -> None:
    seed_crm(store)
    connect(store, "alice", server, hostile.HUGE_UIDVALIDITY)
    connect(store, "bob", server, hostile.HONEST)
    from_hank(server, hostile.HUGE_UIDVALIDITY, 1)
    server.add(hostile.HONEST, mail(HANK, ["bob@acme.example"], "Hi Bob",
                                    message_id="hi-bob@globex.example"))

    reports = {r.username: r for r in await poll(make_config(database_url, tmp_path), store)}

    assert reports["alice"].error == (
        "EXAMINE INBOX: the server sent UIDVALIDITY 1099511627776, outside the protocol's "
        "range (1 to 4294967295)")
    assert account_state(store, "alice").last_error == reports["alice"].error
    assert cursors(store, "alice") == {}
    assert reports["bob"].error is None and set(activities(store)) == {"hi-bob@globex.example"}


@pytest_twisted.ensureDeferred
async def test_a_uidvalidity_change_between_passes_rescans_without_doubling(
    server: HostileImap, store: Store, database_url: str, tmp_path: Path
) -> None:
    seed_crm(store)
    connect(store, "alice", server, hostile.NEW_UIDVALIDITY)
    wanted = from_hank(server, hostile.NEW_UIDVALIDITY, 3)
    config = make_config(database_url, tmp_path)

    [first] = await poll(config, store)
    [second] = await poll(config, store)

    assert first.error is None and second.error is None
    assert (first.counts.logged, second.counts.logged) == (3, 0)
    assert second.counts.examined == 3  # rescanned: the UIDs may name other mail now
    assert set(activities(store)) == set(wanted)
    assert cursors(store, "alice")["INBOX"] == (102, 3)


@pytest_twisted.ensureDeferred
async def test_a_disconnect_mid_fetch_never_moves_the_checkpoint_past_what_committed(
    server: HostileImap, store: Store, database_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_crm(store)
    connect(store, "alice", server, hostile.DROP_MID_FETCH)
    wanted = from_hank(server, hostile.DROP_MID_FETCH, 12)
    monkeypatch.setattr(imap_sync, "BODY_BATCH_COUNT", 2)  # bodies of UIDs 1-2, 3-4, 5-6 ...
    config = make_config(database_url, tmp_path)

    [dropped] = await poll(config, store)  # the third body FETCH dies after UID 5

    assert [e.detail for e in server.wait_for(hostile.DROP_MID_FETCH, "dropped")] == [
        "before UID 6"]
    assert dropped.error == "the server closed the connection"
    assert cursors(store, "alice")["INBOX"][1] == 4
    assert set(activities(store)) == set(wanted[:4])
    [resumed] = await poll(config, store)
    assert resumed.error is None and resumed.counts.logged == 8 and resumed.counts.linked == 0
    assert set(activities(store)) == set(wanted)


@pytest_twisted.ensureDeferred
async def test_a_server_trickling_one_byte_at_a_time_is_dropped_at_the_command_deadline(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    seed_crm(store)
    # A byte every second never trips the 2 s silence timeout; the 3 s deadline ends it.
    with hostile.hostile_imap(trickle_seconds=1.0) as server:
        connect(store, "alice", server, hostile.TRICKLE)
        config = make_config(database_url, tmp_path, command_timeout_seconds="2",
                             command_deadline_seconds="3")
        started = time.monotonic()
        [report] = await poll(config, store)
        took = time.monotonic() - started
        [login] = server.seen(hostile.TRICKLE, "login")
        [closed] = server.wait_for(hostile.TRICKLE, "closed")
    assert report.error == "login failed: no complete answer to LOGIN within the deadline of 3 s"
    held = closed.at - login.at  # measured by the server: how long the poller kept listening
    print(f"trickling server dropped after {held:.2f} s (deadline 3 s)")
    assert 3 <= held < 9, held
    assert took < 30
    assert account_state(store, "alice").last_error == report.error


# -- properties of the guards, whatever the server sends -------------------------------------

@given(st.text())
def test_server_text_is_always_shown_printable_short_and_stable(text: str) -> None:
    shown = printable(text)
    assert len(shown) <= 300 and shown.isprintable() and "\ufffd" not in shown
    assert printable(shown) == shown
    if text.isprintable() and text == text.strip() and len(text) <= 300:
        assert shown == text  # good text is left alone


@settings(deadline=None, max_examples=60)
@given(announced=st.integers(min_value=0, max_value=2**64), limit=st.integers(1, 4096),
       chunk=st.integers(1, 64))
def test_a_literal_is_read_only_when_within_the_limit(
    announced: int, limit: int, chunk: int
) -> None:
    client = GatewayIMAP4Client(60, Clock(), AnswerLimits(max_literal=limit,
                                                          max_answer=2 * limit + 1024))
    client.handshake.addErrback(lambda _: None)  # a plain connection: no TLS handshake
    transport = StringTransport()
    client.makeConnection(transport)
    client.dataReceived(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
    answer: list[Any] = []
    defer.Deferred.fromCoroutine(client.fetch([7], b"")).addBoth(answer.append)
    tag = transport.value().split(b" ")[0]
    body = b"x" * min(announced, 8192)
    wire = b"* 1 FETCH (UID 7 BODY[] {%d}\r\n" % announced + body
    if announced <= len(body):
        wire += b")\r\n" + tag + b" OK done\r\n"
    for start in range(0, len(wire), chunk):
        client.dataReceived(wire[start:start + chunk])
    if announced > limit:  # refused on the announcement: nothing of it was read
        assert transport.disconnecting
        assert isinstance(answer[0].value, AnswerTooLarge) and answer[0].value.uid == 7
    else:
        assert [m.data for m in answer[0]] == [body]


@settings(deadline=None, max_examples=200)
@given(st.lists(st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"* ", b"0001 ", b"OK ", b"NO ", b"{", b"}", b"{99999999999}\r\n",
                     b"{" + b"9" * 30 + b"}\r\n", b"{abc}\r\n", b"{-5}\r\n", b"\r\n",
                     b"(", b")", b"FETCH (UID ", b"SEARCH ", b"9" * 5000]),
), max_size=30))
def test_whatever_a_server_sends_the_client_fails_cleanly(pieces: list[bytes]) -> None:
    client = GatewayIMAP4Client(60, Clock(), AnswerLimits(max_literal=1024, max_answer=4096))
    client.handshake.addErrback(lambda _: None)
    transport = StringTransport()
    client.makeConnection(transport)
    client.dataReceived(b"* OK ready\r\n")
    answer: list[Any] = []
    defer.Deferred.fromCoroutine(client.uid_search("ALL")).addBoth(answer.append)
    for piece in pieces:
        client.dataReceived(piece)  # never raises, whatever the bytes
    if answer and isinstance(answer[0], Failure):
        assert answer[0].check(ImapError), answer[0]
        assert printable(str(answer[0].value)) == str(answer[0].value)
    elif answer:
        assert all(0 < uid < 2**32 for uid in answer[0])
