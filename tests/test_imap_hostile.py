"""The poller against broken and hostile IMAP servers (tests/peers/hostile_imap.py).

No mail is skipped silently, the checkpoint only moves to UIDs the server returned for mail
that was handled, nothing the server announces makes the poller read or spool it, errors
built from server bytes are printable and short, and numbers outside the protocol's range
are protocol errors that leave the rest of the folder's mail handled. Dovecot stays the
peer for every normal behaviour (test_imap_poll.py, test_imap_failures.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_twisted
import requests
from caldav_peer import free_port, new_rep
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
from peers.bcc_listener import BUYER, CONFIG_NAME, REP, crlf, seed_world, send, write_config
from peers.hostile_imap import HostileImap
from sqlalchemy import or_, select

import bcc_ingest.imap.sync as imap_sync
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.mail_accounts import MailSettings, set_account
from gateway.models import Activity, MailAccount, MailFolderCursor
from gateway.secrets import SecretBox
from gateway.users import create_user, get_user


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


def assert_shown_safely(text: str | None) -> None:
    assert text is not None and 0 < len(text) <= 300
    assert text.isprintable() and "\ufffd" not in text


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
    from_hank(server, hostile.HUGE_LITERAL, 2)
    config = make_config(database_url, tmp_path, max_message_bytes=str(1024 * 1024))

    [report] = await poll(config, store)

    # The poller dropped the connection on the announcement: the server's silence and
    # trickle never started (it saw the reset at once, and sent nothing more).
    assert len(server.seen(hostile.HUGE_LITERAL, "announced")) == 1
    [reset] = server.seen(hostile.HUGE_LITERAL, "reset")
    assert float(reset.detail) < server.silence_seconds
    assert not server.seen(hostile.HUGE_LITERAL, "trickled")
    assert report.error is not None
    assert "literal of 2147483648 bytes (the limit is 1048576) for UID 1" in report.error
    assert report.error.endswith("connection reset; UID 1 is skipped")
    state = account_state(store, "alice")
    assert state.last_error == report.error and state.consecutive_failures == 1
    # Skipped, with the reason on the account: the next message is not blocked behind it.
    assert cursors(store, "alice")["INBOX"][1] == 1 and activities(store) == {}


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

    assert [e.detail for e in server.seen(hostile.DROP_MID_FETCH, "dropped")] == ["before UID 6"]
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
        [closed] = server.seen(hostile.TRICKLE, "closed")
    assert report.error == "login failed: no complete answer to LOGIN within the deadline of 3 s"
    held = closed.at - login.at  # measured by the server: how long the poller kept listening
    assert 3 <= held < 9, held
    assert took < 30
    assert account_state(store, "alice").last_error == report.error


# -- every misbehaviour at once, against a whole `crm-gateway serve` ------------------------

MANY = "many-uids"  # an honest server with 100,000 messages in INBOX
GREETING = "greeting"  # logs in to a second server, whose greeting is binary garbage
ONE_PASS = {hostile.BOGUS_UIDNEXT: 3, hostile.HUGE_LITERAL: 1, hostile.TRICKLE: 1,
            hostile.GARBAGE_LIST: 2, hostile.GARBAGE_ERROR: 1, hostile.HUGE_UID: 2,
            hostile.NEW_UIDVALIDITY: 2, hostile.DROP_MID_FETCH: 260, MANY: 3, GREETING: 1}
MANY_UIDS = 100_000


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str
    smtp_port: int


@contextmanager
def serve_everything(config_path: Path, workdir: Path, http_port: int) -> Iterator[Served]:
    """``crm-gateway serve`` with every role in one process; killed on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
    (workdir / "tmp").mkdir()
    env.update(CRM_GATEWAY_CONFIG=str(config_path), TMPDIR=str(workdir / "tmp"))
    log_path = workdir / "serve.log"
    script = Path(sys.executable).parent / "crm-gateway"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(script), "serve"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"BCC listener on [^ ]+:(\d+) ", log_path.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        url = f"http://127.0.0.1:{http_port}/"
        while requests.get(url + "healthz", timeout=5).status_code != 200:
            time.sleep(0.1)
        yield Served(process, log_path, url, int(found.group(1)))
    finally:
        process.kill()
        process.wait(10)


def memory(pid: int, key: str) -> int:
    """A memory figure of /proc/PID/status in bytes: VmRSS now, VmHWM the peak so far."""
    found = re.search(key + r":\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert found is not None
    return int(found.group(1)) * 1024


def peak_and_spooled(pid: int, tmp: Path) -> tuple[int, int]:
    """The process's peak resident memory, and the bytes of its open files under `tmp`."""
    peak = memory(pid, "VmHWM")
    spooled = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd).startswith(str(tmp)):
                spooled += fd.stat().st_size
    return peak, spooled


def timed(action: Callable[[], int]) -> tuple[int, float]:
    started = time.monotonic()
    status = action()
    return status, time.monotonic() - started


def test_hostile_servers_leave_caldav_smtp_memory_and_disk_of_serve_unharmed(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    world = seed_world(store)
    with store.transaction() as session:
        create_type(session, "Meeting", color="#3A87AD", syncable=True)
    rep = new_rep(store)
    config_path = tmp_path / CONFIG_NAME
    write_config(tmp_path, database_url, dkim_dns="")  # token addresses need no DKIM
    http_port = free_port()
    with config_path.open("a") as extra:
        extra.write(f'[http]\nlisten = "127.0.0.1:{http_port}"\n'
                    f'[security]\nsecret_key = "{SECRET_KEY}"\n'
                    "[imap]\ninterval = 2\ncommand_timeout_seconds = 3\n"
                    f"command_deadline_seconds = 5\nmax_message_bytes = {1024 * 1024}\n")

    def caldav() -> int:
        return requests.request("PROPFIND", f"{served.url}{rep.username}/", auth=rep.auth,
                                headers={"Depth": "1"}, timeout=30).status_code

    def smtp() -> int:
        quote = time.monotonic_ns()
        raw = crlf(f"From: {REP}\nTo: {BUYER}\nSubject: Quote {quote}\n"
                   f"Message-ID: <quote-{quote}@crm.example>\n\nHi\n".encode())
        return send(served.smtp_port, raw, mail_from=REP, rcpt_tos=[world.rep]).final

    with (hostile.hostile_imap(max_seconds=300) as server,
          hostile.hostile_imap(greeting=b"* " + hostile.GARBAGE) as rude,
          serve_everything(config_path, tmp_path, http_port) as served):
        usual = [timed(request) for _ in range(5) for request in (caldav, smtp)]
        baseline = memory(served.process.pid, "VmRSS")
        server.folder(MANY).generated = MANY_UIDS
        with store.transaction() as session:
            for mode, count in ONE_PASS.items():
                user = create_user(session, mode.replace("-", ""), f"{mode}@crm.example")
                target = rude if mode == GREETING else server
                set_account(session, user, MailSettings(
                    "127.0.0.1", target.port, "none", mode, "pw", ("INBOX",)),
                    SecretBox(SECRET_KEY))
                for n in range(count):
                    target.add(mode, mail(BUYER, [f"{mode}@crm.example"], f"{mode} {n}",
                                          message_id=f"{mode}-{n}@customer.example"))
        during: list[tuple[int, float]] = []
        peaks: list[tuple[int, int]] = []
        deadline = time.monotonic() + 240
        while not all_passed(store) and time.monotonic() < deadline:
            during += [timed(caldav), timed(smtp)]
            peaks.append(peak_and_spooled(served.process.pid, tmp_path / "tmp"))

    assert all_passed(store), served.log_path.read_text()[-3000:]
    assert {status for status, _ in usual + during} <= {207, 250}
    usual_worst = max(seconds for _, seconds in usual)
    worst = max(seconds for _, seconds in during)
    print(f"usual median {statistics.median(s for _, s in usual):.3f} s, during median "
          f"{statistics.median(s for _, s in during):.3f} s; "
          f"usual worst {usual_worst:.3f} s, during worst {worst:.3f} s over {len(during)} "
          f"requests; peak RSS {max(p for p, _ in peaks) / 2**20:.0f} MiB, "
          f"baseline {baseline / 2**20:.0f} MiB")
    assert worst < max(3 * usual_worst, 2.0)
    assert max(spooled for _, spooled in peaks) == 0  # never a temporary file
    assert max(peak for peak, _ in peaks) - baseline < 200 * 2**20
    states = {mode: account_state(store, mode.replace("-", "")) for mode in ONE_PASS}
    assert "2147483648" in (states[hostile.HUGE_LITERAL].last_error or "")
    assert "deadline of 5 s" in (states[hostile.TRICKLE].last_error or "")
    for mode in (hostile.GARBAGE_ERROR, GREETING, hostile.HUGE_UID):
        assert_shown_safely(states[mode].last_error)
    got = cursors_by_mode(store)
    assert got[MANY] == MANY_UIDS + 3 and got[hostile.BOGUS_UIDNEXT] == 3
    # The two body batches committed before the drop, or (after the backoff) everything:
    # never a checkpoint past what is logged, never a message twice.
    dropped = [m for m in activities(store) if m.startswith(hostile.DROP_MID_FETCH)]
    assert got[hostile.DROP_MID_FETCH] in (200, 260) and len(dropped) == got[hostile.DROP_MID_FETCH]


def all_passed(store: Store) -> bool:
    """Every hostile account has finished a first pass (well or badly)."""
    with store.reading() as session:
        done = session.scalars(select(MailAccount).where(or_(
            MailAccount.last_success_at.is_not(None), MailAccount.last_error_at.is_not(None))))
        return len(done.all()) == len(ONE_PASS)


def cursors_by_mode(store: Store) -> dict[str, int]:
    with store.reading() as session:
        rows = session.execute(select(MailAccount.login, MailFolderCursor.last_uid).join(
            MailFolderCursor, MailFolderCursor.mail_account_id == MailAccount.id))
        return {login: last_uid for login, last_uid in rows}
