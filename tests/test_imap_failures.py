"""When mailboxes misbehave: crashes mid-fetch, wrong passwords, dead and silent servers.

Nothing may be lost or logged twice, every failure is recorded on its account, a refused
login pauses the account with the server's reason, and one account's trouble never stops
another's polling.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

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
    cursors,
    mail,
    make_config,
    poll,
    seed_crm,
)
from peers import procs
from peers.dovecot import DovecotServer, dovecot_fixture
from peers.imap_ops import AppendMessage

import bcc_ingest.imap.sync as imap_sync
from bcc_ingest.imap.check import check_mailbox
from bcc_ingest.imap.connect import ImapOptions
from gateway.cli import main
from gateway.clock import utcnow
from gateway.db import Store
from gateway.mail_leases import PollTarget

pytestmark = pytest.mark.dovecot
dovecot = dovecot_fixture(tls=False, users=PASSWORDS)


def crm_gateway(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: it runs its own reactor, as users run it."""
    env = {**os.environ, "CRM_GATEWAY_DATABASE_URL": database_url,
           "CRM_GATEWAY_PATHS_DATA_DIR": str(tmp_path / "var"),
           "CRM_GATEWAY_SECURITY_SECRET_KEY": SECRET_KEY}
    env.pop("CRM_GATEWAY_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-c", "from gateway.cli import main; raise SystemExit(main())", *args],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port where nothing listens (bound, never listening: nobody else gets it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest_twisted.ensureDeferred
async def test_a_connection_dropped_mid_fetch_resumes_with_nothing_lost_or_doubled(
    dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_crm(store)
    connect_mailbox(store, "alice", dovecot)
    messages = [mail(HANK if n % 2 else f"x{n}@elsewhere.example", [ALICE], f"Note {n}",
                     message_id=f"note-{n}@example") for n in range(60)]
    dovecot.append_many("alice", "INBOX", [AppendMessage(raw) for raw in messages])
    wanted = {f"note-{n}@example" for n in range(60) if n % 2}
    # Small batches, and Dovecot killed (every process, at once) after the third commit.
    monkeypatch.setattr(imap_sync, "HEADER_BATCH", 10)
    monkeypatch.setattr(imap_sync, "BODY_BATCH_COUNT", 2)
    real_commit = imap_sync.commit_batch
    commits: list[int] = []

    def commit_then_crash(*args: Any, **kwargs: Any) -> Any:
        result = real_commit(*args, **kwargs)
        commits.append(kwargs["cursor_uid"])
        if len(commits) == 3:
            dovecot.kill()
        return result

    monkeypatch.setattr(imap_sync, "commit_batch", commit_then_crash)
    config = make_config(database_url, tmp_path)

    [crashed] = await poll(config, store)
    assert crashed.error is not None and not crashed.paused
    assert account_state(store, "alice").consecutive_failures == 1
    partial = activities(store)
    assert 0 < len(partial) < len(wanted)
    # The cursor stands where the last committed batch ends, not beyond.
    assert cursors(store, "alice")["INBOX"][1] == commits[-1] < 60

    dovecot.start()
    monkeypatch.setattr(imap_sync, "commit_batch", real_commit)
    [resumed] = await poll(config, store)
    assert resumed.error is None
    assert set(activities(store)) == wanted
    # Nothing committed before the crash was fetched or recorded again.
    assert crashed.counts.logged + resumed.counts.logged == len(wanted)
    assert resumed.counts.linked == 0
    assert account_state(store, "alice").consecutive_failures == 0


@pytest_twisted.ensureDeferred
async def test_a_refused_login_pauses_the_account_and_others_are_still_polled(
    dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path
) -> None:
    seed_crm(store)
    connect_mailbox(store, "alice", dovecot, password="not alice's password")
    connect_mailbox(store, "bob", dovecot)
    dovecot.append("bob", "INBOX", mail(HANK, ["bob@acme.example"], "Hi Bob",
                                        message_id="bob-1@globex.example"))
    config = make_config(database_url, tmp_path)

    reports = {report.username: report for report in await poll(config, store)}

    assert reports["alice"].paused and "AUTHENTICATIONFAILED" in (reports["alice"].error or "")
    assert reports["bob"].error is None and reports["bob"].counts.logged == 1
    alice = account_state(store, "alice")
    assert alice.paused and alice.paused_reason is not None
    assert alice.paused_reason.startswith("login failed: [AUTHENTICATIONFAILED]")
    # Paused stays paused: the next pass does not even connect for alice.
    assert [r.username for r in await poll(config, store)] == ["bob"]
    # New settings end the pause.
    connect_mailbox(store, "alice", dovecot)
    assert not account_state(store, "alice").paused
    assert [r.error for r in await poll(config, store, ["alice"])] == [None]


def test_mail_test_names_the_login_step_and_mail_show_gives_the_reason(
    dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_crm(store)
    connect_mailbox(store, "alice", dovecot, password="wrong")
    connect_mailbox(store, "bob", dovecot)
    dovecot.append("bob", "INBOX", mail(HANK, ["bob@acme.example"], "Hi",
                                        message_id="hi-bob@globex.example"))
    # Bob first: Dovecot slows down logins from an address right after a failed one.
    run = crm_gateway(database_url, tmp_path, "--json", "mail", "poll", "bob", "--once")
    assert run.returncode == 0, run.stderr
    assert [(r["user"], r["examined"], r["logged"]) for r in json.loads(run.stdout)] == [
        ("bob", 1, 1)]

    run = crm_gateway(database_url, tmp_path, "mail", "test", "alice")

    assert run.returncode == 1
    assert "mail test alice: failed at step login: [AUTHENTICATIONFAILED]" in run.stderr
    assert "resolve" in run.stdout and "connect" in run.stdout  # the steps before it passed
    monkeypatch.setenv("CRM_GATEWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("CRM_GATEWAY_PATHS_DATA_DIR", str(tmp_path / "var"))
    assert main(["mail", "show", "alice"]) == 0
    shown = capsys.readouterr().out
    assert "state:        paused: login failed: [AUTHENTICATIONFAILED]" in shown
    run = crm_gateway(database_url, tmp_path, "mail", "poll", "alice", "--once")
    assert run.returncode == 1
    assert "alice: not polled: paused: login failed: [AUTHENTICATIONFAILED]" in run.stdout


def test_mail_set_on_an_unreachable_server_names_the_connect_step(
    store: Store, database_url: str, tmp_path: Path, closed_port: int
) -> None:
    seed_crm(store)
    run = crm_gateway(database_url, tmp_path, "mail", "set", "alice", "--host", "127.0.0.1",
                      "--port", str(closed_port), "--tls", "none", "--login", "alice",
                      "--password-file", "/dev/null")
    assert run.returncode == 2 and "is empty" in run.stderr  # bad input: nothing stored
    (tmp_path / "pw").write_text("secret\n")
    run = crm_gateway(database_url, tmp_path, "mail", "set", "alice", "--host", "127.0.0.1",
                      "--port", str(closed_port), "--tls", "none", "--login", "alice",
                      "--password-file", str(tmp_path / "pw"))
    assert run.returncode == 1
    assert "failed at step connect: 127.0.0.1:" in run.stderr
    assert "connection refused" in run.stderr
    assert not account_state(store, "alice").paused  # a dead server is not a wrong password


def _target(port: int, password: str = "pw") -> PollTarget:
    return PollTarget(account_id=0, user_id=0, username="alice", host="127.0.0.1", port=port,
                      tls="none", login="alice", password=password, folders=("INBOX",),
                      cursors={})


@pytest_twisted.ensureDeferred
async def test_a_server_that_never_greets_times_out_at_the_connect_step() -> None:
    from twisted.internet import reactor

    with socket.socket() as silent:  # accepts connections (the backlog) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        options = ImapOptions(connect_timeout=5, command_timeout=1)
        result = await check_mailbox(reactor, _target(silent.getsockname()[1]), ("INBOX",),
                                     options)
    failed = result.failed
    assert failed is not None and failed.name == "connect"
    assert "no answer to the server's greeting within 1 s" in failed.detail


def _signal_dovecot(dovecot: DovecotServer, signum: int) -> None:
    master = int((dovecot.base_dir / "master.pid").read_text())
    for pid in [master, *procs.children(master)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


@pytest_twisted.ensureDeferred
async def test_a_server_that_stops_answering_mid_session_times_out_and_backs_off(
    dovecot: DovecotServer, store: Store, database_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_crm(store)
    connect_mailbox(store, "alice", dovecot)
    dovecot.append_many("alice", "INBOX", [
        AppendMessage(mail(HANK, [ALICE], f"Note {n}", message_id=f"n{n}@globex.example"))
        for n in range(8)
    ])
    monkeypatch.setattr(imap_sync, "HEADER_BATCH", 2)
    monkeypatch.setattr(imap_sync, "BODY_BATCH_COUNT", 1)
    real_commit = imap_sync.commit_batch

    def commit_then_freeze(*args: Any, **kwargs: Any) -> Any:
        result = real_commit(*args, **kwargs)
        _signal_dovecot(dovecot, signal.SIGSTOP)  # alive, connected, and silent
        return result

    monkeypatch.setattr(imap_sync, "commit_batch", commit_then_freeze)
    try:
        [report] = await poll(make_config(database_url, tmp_path, command_timeout_seconds="1"),
                              store)
    finally:
        _signal_dovecot(dovecot, signal.SIGCONT)

    assert report.error is not None and "within 1 s" in report.error
    assert report.error.startswith("no answer to ")
    state = account_state(store, "alice")
    assert state.consecutive_failures == 1 and state.last_error == report.error
    assert state.next_poll_at >= utcnow() + timedelta(seconds=55)  # backing off, not paused
    assert not state.paused and state.lease_owner is None
    # What was committed before the silence stays, and the cursor stands right after it.
    logged = len(activities(store))
    assert 0 < logged < 8 and cursors(store, "alice")["INBOX"][1] == logged
