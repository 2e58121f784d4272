"""A running gateway (``crm-gateway serve --only http``) and CRM data for CalDAV tests.

The server is a real subprocess on a free loopback port; tests talk to it over a socket with
real clients (the ``caldav`` library, ``vdirsyncer``, ``requests``). Each test gets its own
users (unique names), so one server per module and backend serves many tests.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from peers import TEST_SECRET_KEY

from gateway import app_passwords
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.models import DiaryType
from gateway.users import UserChanges, create_user, update_user

_names = itertools.count(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Gateway:
    url: str
    store: Store
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass(frozen=True)
class Rep:
    username: str
    email: str
    password: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)


def start_gateway(database_url: str, workdir: Path, *extra_env: tuple[str, str]) -> Gateway:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
    env.update({
        "CRM_GATEWAY_DATABASE_URL": database_url,
        "CRM_GATEWAY_HTTP_LISTEN": f"127.0.0.1:{port}",
        "CRM_GATEWAY_PATHS_DATA_DIR": str(workdir / "var"),
        "CRM_GATEWAY_HTTP_MAX_BODY_BYTES": str(256 * 1024),
        # Every process on one database shares the key (serve refuses to start otherwise).
        "CRM_GATEWAY_SECURITY_SECRET_KEY": TEST_SECRET_KEY,
    })
    env.update(dict(extra_env))
    log_path = workdir / f"gateway-{port}.log"
    script = Path(sys.executable).parent / "crm-gateway"
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(script), "serve", "--only", "http"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(url + "healthz", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"gateway did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    return Gateway(url, Store(database_url), process, log_path)


def stop_gateway(gateway: Gateway) -> None:
    gateway.process.terminate()
    try:
        gateway.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
    gateway.store.dispose()


@pytest.fixture(scope="module")
def gateway(module_database_url: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Gateway]:
    running = start_gateway(module_database_url, tmp_path_factory.mktemp("gateway"))
    with running.store.transaction() as session:
        for name, color, syncable in (("Meeting", "#3A87AD", True), ("Call", "#4CAF50", True),
                                      ("Internal", "#9E9E9E", False)):
            if session.query(DiaryType).filter_by(name=name).first() is None:
                create_type(session, name, color=color, syncable=syncable)
    yield running
    stop_gateway(running)


def new_rep(store: Store, *, diary_sync: bool = True, name: str = "") -> Rep:
    """A fresh CRM user with diary sync and an app password."""
    username = f"rep{next(_names)}x{os.getpid()}"
    email = f"{username}@acme.example"
    with store.transaction() as session:
        user = create_user(session, username, email, name=name or username.title())
        if diary_sync:
            update_user(session, user, UserChanges(diary_sync=True))
        password = app_passwords.issue(session, user, "tests").password
    return Rep(username, email, password)


@pytest.fixture
def rep(gateway: Gateway) -> Rep:
    return new_rep(gateway.store)


EVENT = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Tests//EN\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTAMP:20261201T090000Z\r
DTSTART:{start}\r
DTEND:{end}\r
SUMMARY:{summary}\r
END:VEVENT\r
END:VCALENDAR\r
"""


def event(uid: str, summary: str = "Call Globex", start: str = "20261207T090000Z",
          end: str = "20261207T100000Z") -> str:
    return EVENT.format(uid=uid, summary=summary, start=start, end=end)
