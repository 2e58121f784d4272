"""The gateway under test: ``crm-gateway serve --only http`` over a scratch CRM database.

The database is a temporary SQLite file in the scratch directory by default; with
``--gateway-db postgresql+psycopg://USER@HOST:PORT/DB`` a fresh database is created on that
server for each size (``bench_caldav_<pid>_<n>``, dropped afterwards; the URL's own database
only serves to connect).  It is migrated with ``Store.upgrade()`` (what ``crm-gateway db
upgrade`` runs), then gets one user with diary sync and an app password and one syncable diary
type "Bench", whose slug ``bench`` is the calendar.

``load`` writes the events through the real service path, ``client_writes.put_event`` (what a
client PUT runs after Radicale), in transactions of ``CHUNK`` events: CRM fields,
participants, publication rows and the occurrence index are built exactly as for a PUT, and the
generator's hrefs are kept.  Only HTTP, Radicale and the per-request transaction are skipped
(and, during the load only, a missing index is added: see ``LOAD_INDEX``).

``start`` then runs the server as a subprocess on a free loopback port, logging into the scratch
directory.  With ``BENCH_GATEWAY_PROFILE=<file>`` in the environment the server runs under
``bench.gateway_profile`` instead, which writes a cProfile of every request thread to that file
on exit (for finding where the time goes; never used for the reported numbers).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.calgen import CalEvent
from bench.server_process import log_tail, wait_until_up
from gateway import app_passwords, calendars, client_writes
from gateway.db import Store
from gateway.diary_types import create_type
from gateway.publication import publish_user
from gateway.users import UserChanges, create_user, get_user, update_user

USER = "bench"
EMAIL = "bench@crm.example"
TYPE_NAME = "Bench"
CHUNK = 2000  # events per load transaction
START_TIMEOUT = 60.0  # seconds until /healthz must answer
PROFILE_ENV = "BENCH_GATEWAY_PROFILE"

_databases = itertools.count(1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ScratchPostgres:
    """A fresh database on the server ``server_url`` points at; ``drop`` removes it."""

    def __init__(self, server_url: str) -> None:
        parsed = make_url(server_url)
        if parsed.get_backend_name() != "postgresql":
            raise ValueError(f"--gateway-db {server_url!r}: expected postgresql+psycopg://...")
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.admin = create_engine(parsed, isolation_level="AUTOCOMMIT")
        self.name = f"bench_caldav_{os.getpid()}_{next(_databases)}"
        self._execute(f'CREATE DATABASE "{self.name}"')
        self.url = parsed.set(database=self.name).render_as_string(hide_password=False)

    def _execute(self, sql: str) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(sql))

    def drop(self) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.dispose()


class GatewayTarget:
    """The gateway serving /bench/bench/ (user ``bench``, diary type "Bench")."""

    name = "gateway"

    def __init__(self, workdir: Path, database_url: str | None = None) -> None:
        self.workdir = workdir
        self.credentials: tuple[str, str] | None = None
        self.log_path = workdir / "gateway.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.postgres: ScratchPostgres | None = None
        if database_url:
            self.postgres = ScratchPostgres(database_url)
            self.database_url = self.postgres.url
        else:
            self.database_url = f"sqlite:///{workdir / 'gateway.sqlite3'}"
        self.store: Store | None = None
        self.slug = ""

    # -- the CRM data ---------------------------------------------------------------------

    def _provision(self) -> Store:
        """Migrate the database and create the user, its app password and the type."""
        if self.store is not None:
            return self.store
        store = self.store = Store(self.database_url)
        store.upgrade()
        with store.transaction() as session:
            user = create_user(session, USER, EMAIL, name="Bench User")
            if update_user(session, user, UserChanges(diary_sync=True)):
                publish_user(session, user)
            password = app_passwords.issue(session, user, "bench").password
            self.slug = create_type(session, TYPE_NAME, color="#3A87AD", syncable=True).slug
        self.credentials = (USER, password)
        return store

    def load(self, events: Sequence[CalEvent]) -> None:
        """Replace the calendar's content: every event there is deleted (as a client DELETE
        would), then ``events`` are created through ``client_writes.put_event``."""
        store = self._provision()
        self._delete_all(store)
        self._put_all(store, events)

    def _delete_all(self, store: Store) -> None:
        with store.transaction() as session:
            user = get_user(session, USER)
            view = calendars.user_calendar(session, user, self.slug)
            assert view is not None
            for item in calendars.all_items(session, view):
                client_writes.delete_event(session, user, view, item.href)

    def _put_all(self, store: Store, events: Sequence[CalEvent]) -> None:
        started = time.perf_counter()
        for first in range(0, len(events), CHUNK):
            with store.transaction() as session:
                user = get_user(session, USER)
                view = calendars.user_calendar(session, user, self.slug)
                assert view is not None
                for event in events[first:first + CHUNK]:
                    client_writes.put_event(session, user, view, event.href, event.text)
            done = min(first + CHUNK, len(events))
            if len(events) > CHUNK:
                elapsed = time.perf_counter() - started
                print(f"[{time.strftime('%H:%M:%S')}]   gateway: loaded {done}/{len(events)} "
                      f"events in {elapsed:.0f} s ({elapsed / done * 1000:.1f} ms/event)",
                      file=sys.stderr, flush=True)

    # -- the server -------------------------------------------------------------------------

    def start(self, events: Sequence[CalEvent]) -> str:
        self.load(events)
        assert self.store is not None
        self.store.dispose()  # the server has its own pool; keep no idle connections here
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
        env.update({
            "CRM_GATEWAY_DATABASE_URL": self.database_url,
            "CRM_GATEWAY_HTTP_LISTEN": f"127.0.0.1:{self.port}",
            "CRM_GATEWAY_PATHS_DATA_DIR": str(self.workdir / "var"),
        })
        script = Path(sys.executable).parent / "crm-gateway"
        command = [str(script), "serve", "--only", "http", "--log-level", "warning"]
        if os.environ.get(PROFILE_ENV):
            command = [sys.executable, "-m", "bench.gateway_profile", *command[1:]]
            env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=self.workdir)
        self._wait_until_up(f"http://127.0.0.1:{self.port}/healthz")
        return f"http://127.0.0.1:{self.port}/{USER}/{self.slug}/"

    def _wait_until_up(self, health_url: str) -> None:
        assert self.process is not None
        wait_until_up(self.process,
                      lambda: requests.get(health_url, timeout=2).status_code == 200,
                      "the gateway", self.log_path, START_TIMEOUT)

    def log_tail(self) -> str:
        return log_tail(self.log_path)

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                # SIGINT lets Twisted shut down cleanly (and a profiled server write its stats)
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self.store is not None:
            self.store.dispose()
            self.store = None
        if self.postgres is not None:
            self.postgres.drop()
            self.postgres = None
        shutil.rmtree(self.workdir / "var", ignore_errors=True)
