"""Two running gateways on one database, and helpers for the login tests.

Both ``serve --only http`` processes share the database and the secret key, as the README's
scaling-out design has it; the CLI runs in-process against the same database.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from caldav_peer import Gateway, start_gateway, stop_gateway
from peers import TEST_SECRET_KEY

from gateway import app_passwords
from gateway.cli import main
from gateway.diary_types import create_type
from gateway.models import DiaryType

PROPFIND_BODY = (b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/>'
                 b"</d:prop></d:propfind>")


def gateway_pair(module_database_url: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateway processes serving one database (the body of a module fixture)."""
    key = ("CRM_GATEWAY_SECURITY_SECRET_KEY", TEST_SECRET_KEY)
    first = start_gateway(module_database_url, tmp_path_factory.mktemp("first"), key)
    try:
        second = start_gateway(module_database_url, tmp_path_factory.mktemp("second"), key)
    except BaseException:
        stop_gateway(first)
        raise
    with first.store.transaction() as session:
        if session.query(DiaryType).filter_by(name="Meeting").first() is None:
            create_type(session, "Meeting", color="#3A87AD", syncable=True)
    yield first, second
    stop_gateway(second)
    stop_gateway(first)


def run_cli(database_url: str, folder: Path, monkeypatch: pytest.MonkeyPatch,
            capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    """``crm-gateway --json ARGV`` on the gateways' database; its parsed output."""
    monkeypatch.setenv("CRM_GATEWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("CRM_GATEWAY_PATHS_DATA_DIR", str(folder / "cli-var"))
    capsys.readouterr()
    assert main(["--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def propfind(url: str, auth: tuple[str, str], session: requests.Session | None = None,
             depth: str = "0", timeout: float = 30) -> requests.Response:
    send = session.request if session is not None else requests.request
    return send("PROPFIND", url, auth=auth, data=PROPFIND_BODY, timeout=timeout,
                headers={"Depth": depth, "Content-Type": "application/xml"})


def near_miss(password: str) -> str:
    """A wrong password with ``password``'s lookup: the gateway must verify it (argon2)."""
    lookup = password[:4]  # the first group (app_passwords.lookup_of)
    while True:
        guess = lookup + app_passwords.generate()[4:]
        if guess != password:
            return guess


@dataclass
class Burst:
    """Threads sending wrong logins until stopped; what they were answered."""

    url: str
    login: str
    password: str
    threads: int
    statuses: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    answer = propfind(self.url, (self.login, near_miss(self.password)),
                                      session, timeout=60)
                    self.statuses.append(answer.status_code)
                except requests.RequestException:
                    self.statuses.append(0)

    def __enter__(self) -> Burst:
        self._workers = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(90)


def timed(call: object) -> tuple[float, requests.Response]:
    assert callable(call)
    started = time.monotonic()
    answer = call()
    return time.monotonic() - started, answer


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
