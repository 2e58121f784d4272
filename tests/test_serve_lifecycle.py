"""``crm-gateway serve`` starts and stops like a service, as a real subprocess.

A taken port is one line and exit 2, at once. SIGTERM and SIGINT stop every role: requests
in hand are answered in full, an idle SMTP session is told 421, the IMAP lease held in IDLE
is given back, and the process exits 0. A second ``serve`` on the same data folder is refused
with the reason (its ports are taken) or, given its own ports, runs alongside.
"""

from __future__ import annotations

import base64
import http.client
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from caldav_peer import Rep, free_port, new_rep
from imap_world import SECRET_KEY, account_state, connect_mailbox, seed_crm
from peers.dovecot import DovecotServer, dovecot_fixture

from gateway.db import Store
from gateway.diary_types import create_type
from gateway.entries import EntryDraft, create_entry

START_SECONDS = 60.0
# The machine running the suite is shared and busy: bounds are generous; the log and the
# assertion messages carry the measured figures.
EXIT_SECONDS = 30.0

dovecot = dovecot_fixture(tls=False, users={"alice": "alice's mail password"})


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    log_path: Path
    http_port: int
    smtp_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def serve_env(database_url: str, folder: Path, http_port: int, smtp_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
    env.update({
        "CRM_GATEWAY_DATABASE_URL": database_url,
        "CRM_GATEWAY_PATHS_DATA_DIR": str(folder / "var"),
        "CRM_GATEWAY_SECURITY_SECRET_KEY": SECRET_KEY,
        "CRM_GATEWAY_HTTP_LISTEN": f"127.0.0.1:{http_port}",
        "CRM_GATEWAY_SMTP_LISTEN": f"127.0.0.1:{smtp_port}",
        "CRM_GATEWAY_SMTP_INTERNAL_DOMAINS": "acme.example",
    })
    return env


def script() -> str:
    return str(Path(sys.executable).parent / "crm-gateway")


def spawn(env: dict[str, str], folder: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = folder / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([script(), "serve"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=folder)
    return process, log_path


def wait_serving(served: Served) -> None:
    deadline = time.monotonic() + START_SECONDS
    while "role smtp started" not in served.log():
        if served.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"serve did not start:\n{served.log()}")
        time.sleep(0.1)
    assert requests.get(served.url + "healthz", timeout=10).status_code == 200


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    """Every role of ``serve`` on fresh ports, on the test database; killed if still alive."""
    http_port, smtp_port = free_port(), free_port()
    process, log_path = spawn(serve_env(database_url, tmp_path, http_port, smtp_port),
                              tmp_path, "serve")
    running = Served(process, log_path, http_port, smtp_port)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_serve_with_the_http_port_taken_says_so_in_one_line_and_exits_2(
    database_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = serve_env(database_url, tmp_path, port, free_port())
        started = time.monotonic()
        done = subprocess.run([script(), "serve"], env=env, capture_output=True, text=True,
                              timeout=EXIT_SECONDS, check=False, cwd=tmp_path)
        took = time.monotonic() - started
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert done.stderr == (
        f"crm-gateway: cannot start: http.listen 127.0.0.1:{port}: address already in use "
        "(is another crm-gateway serve running?)\n"
    ), f"after {took:.1f} s"


def test_serve_with_the_smtp_port_taken_stops_the_roles_already_started_and_exits_2(
    database_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        http_port = free_port()
        env = serve_env(database_url, tmp_path, http_port, port)
        done = subprocess.run([script(), "serve"], env=env, capture_output=True, text=True,
                              timeout=EXIT_SECONDS, check=False, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert "role http started" in done.stderr  # started, then stopped again
    assert lines[-1] == (f"crm-gateway: cannot start: smtp.listen 127.0.0.1:{port}: address "
                         "already in use (is another crm-gateway serve running?)")
    assert "Traceback" not in done.stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{http_port}/healthz", timeout=5)


def seed_calendar(store: Store, rep: Rep, count: int) -> None:
    start = datetime(2026, 12, 7, 9, tzinfo=UTC)
    with store.transaction() as session:
        create_type(session, "Meeting", color="#3A87AD", syncable=True)
        for n in range(count):
            moment = start + timedelta(hours=n)
            create_entry(session, EntryDraft("Meeting", f"Call {n}", moment,
                                             moment + timedelta(minutes=30),
                                             organizer=rep.username))


def open_keepalive(served: Served, rep: Rep) -> http.client.HTTPConnection:
    """A connection the gateway has certainly accepted: one request already answered on it."""
    connection = http.client.HTTPConnection("127.0.0.1", served.http_port, timeout=60)
    connection.request("GET", "/healthz")
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200
    return connection


@pytest.mark.dovecot
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_stops_every_role_finishing_what_is_in_hand(
    signum: signal.Signals, served: Served, store: Store, dovecot: DovecotServer,
) -> None:
    seed_crm(store)
    connect_mailbox(store, "alice", dovecot)
    rep = new_rep(store)
    events = 200
    seed_calendar(store, rep, events)
    wait_serving(served)
    deadline = time.monotonic() + START_SECONDS
    while account_state(store, "alice").lease_owner is None:  # leased, then held in IDLE
        assert time.monotonic() < deadline, served.log()
        time.sleep(0.1)

    login = base64.b64encode(f"{rep.username}:{rep.password}".encode()).decode()
    connections = [open_keepalive(served, rep) for _ in range(6)]
    smtp = smtplib.SMTP("127.0.0.1", served.smtp_port, timeout=60)
    smtp.ehlo("client.acme.example")
    for connection in connections:  # the whole calendar, rendered event by event
        connection.request("GET", f"/{rep.username}/meeting/",
                           headers={"Authorization": f"Basic {login}"})
    time.sleep(0.5)
    signalled = time.monotonic()
    served.process.send_signal(signum)

    bodies = []
    for connection in connections:
        answer = connection.getresponse()
        bodies.append((answer.status, answer.read().count(b"BEGIN:VEVENT")))
        connection.close()
    assert bodies == [(200, events)] * len(connections), served.log()
    code, message = smtp.noop()
    assert (code, message[:5]) == (421, b"4.3.2"), served.log()
    smtp.close()

    returncode = served.process.wait(EXIT_SECONDS)
    took = time.monotonic() - signalled
    assert returncode == 0, served.log()
    assert "Traceback" not in served.log()
    assert account_state(store, "alice").lease_owner is None, "the lease was given back"
    with pytest.raises(requests.ConnectionError):
        requests.get(served.url + "healthz", timeout=5)
    stamps = {line.rsplit(": ", 1)[1]: datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
              for line in served.log().splitlines() if line.endswith(": stopping")
              or line.endswith(": stopped")}
    inside = (stamps["stopped"] - stamps["stopping"]).total_seconds()
    print(f"roles stopped in {inside:.1f} s; the process ended {took:.1f} s after the signal")


def test_a_second_serve_on_the_same_data_folder_is_refused_or_runs_alongside(
    served: Served, database_url: str, tmp_path: Path
) -> None:
    wait_serving(served)
    same = serve_env(database_url, tmp_path, served.http_port, served.smtp_port)
    done = subprocess.run([script(), "serve"], env=same, capture_output=True, text=True,
                          timeout=EXIT_SECONDS, check=False, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "address already in use" in done.stderr
    assert "http.listen" in done.stderr

    second_http, second_smtp = free_port(), free_port()
    process, log_path = spawn(serve_env(database_url, tmp_path, second_http, second_smtp),
                              tmp_path, "second")
    second = Served(process, log_path, second_http, second_smtp)
    try:
        wait_serving(second)
        for running in (served, second):
            assert requests.get(running.url + "healthz", timeout=10).status_code == 200
            with smtplib.SMTP("127.0.0.1", running.smtp_port, timeout=30) as client:
                assert client.noop()[0] == 250
        process.send_signal(signal.SIGTERM)
        assert process.wait(EXIT_SECONDS) == 0, second.log()
        assert requests.get(served.url + "healthz", timeout=10).status_code == 200
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
