"""A webhook receiver on loopback and ``crm-gateway serve --only webhooks`` processes.

`Receiver` is a real HTTP server in a thread that records every request (headers and body)
and answers 500 to the first ``fail_first`` of them, then 204; `Receiver.closed_port` gives a
port where nothing listens yet, for a receiver that is down. `start_deliverer` runs the
"webhooks" role as a child process on the test's database with the test suite's key and
short retry settings, and returns once the role has started.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from caldav_peer import free_port
from peers.role_process import RoleProcess, start_role

from gateway.db import Store

# Short enough for tests to see retries; the lease still outlasts the timeout.
FAST_RETRIES = {
    "CRM_GATEWAY_WEBHOOKS_POLL_SECONDS": "1",
    "CRM_GATEWAY_WEBHOOKS_FIRST_RETRY_SECONDS": "1",
    "CRM_GATEWAY_WEBHOOKS_TIMEOUT_SECONDS": "3",
}


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    port: int
    fail_first: int = 0
    received: list[Received] = field(default_factory=list)
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            self.calls += 1
            failing = self.calls <= self.fail_first
            if not failing:
                self.received.append(Received(headers, body))
        return 500 if failing else 204

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Received]:
        """At least ``count`` accepted requests, or an AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.received)} webhook(s) of {count} after {timeout}s")

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.answer({k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def receiver(fail_first: int = 0, port: int = 0) -> Iterator[Receiver]:
    running = Receiver(port or free_port(), fail_first)
    running.start()
    try:
        yield running
    finally:
        running.stop()


Deliverer = RoleProcess


def start_deliverer(database_url: str, workdir: Path, **env: str) -> Deliverer:
    """``crm-gateway serve --only webhooks`` on ``database_url``; started when it returns."""
    return start_role("webhooks", database_url, workdir, "webhook deliverer",
                      {**FAST_RETRIES, **env})


@contextmanager
def deliverers(database_url: str, workdir: Path, count: int = 1,
               **env: str) -> Iterator[list[Deliverer]]:
    running: list[Deliverer] = []
    try:
        for number in range(count):
            running.append(start_deliverer(database_url, workdir / f"d{number}", **env))
        yield running
    finally:
        for deliverer in running:
            deliverer.stop()


def delivery_states(store: Store) -> list[tuple[str, str, int]]:
    """(event id, status, attempts) of every delivery, oldest first."""
    from sqlalchemy import select

    from gateway.models import WebhookDelivery

    with store.reading() as session:
        return [(row.event_id, row.status, row.attempts) for row in session.execute(
            select(WebhookDelivery.event_id, WebhookDelivery.status, WebhookDelivery.attempts)
            .order_by(WebhookDelivery.id))]
