"""Shared fixtures: a fresh, migrated store per test on SQLite and on PostgreSQL.

Each backend is migrated once per session into a template (a file for SQLite, a template
database for PostgreSQL) and copied for every test, so tests never see each other's rows.
PostgreSQL comes from ``CRM_GATEWAY_TEST_PG`` (default: the local server, database ``test``).
Without it the PostgreSQL variants skip locally and fail in CI (``CI=true``).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from peers import peer_missing
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gateway.db import Store, close_shared

# Fixtures of the running gateway for the CalDAV tests.
pytest_plugins = ["caldav_peer"]

PG_ADMIN_URL = os.environ.get(
    "CRM_GATEWAY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_counter = itertools.count()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    store = Store(f"sqlite:///{path}")
    store.upgrade()
    store.dispose()
    return path


class PostgresServer:
    def __init__(self, admin_url: str):
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.base_url = make_url(admin_url)
        self.prefix = f"crmgw_{os.getpid()}"
        self.template = f"{self.prefix}_template"
        self.created: list[str] = []

    def execute(self, sql: str) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(sql))

    def url(self, database: str) -> str:
        return self.base_url.set(database=database).render_as_string(hide_password=False)

    def new_database(self, template: str | None = None) -> str:
        name = f"{self.prefix}_{next(_counter)}"
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self.created.append(name)
        return name

    def drop(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer(PG_ADMIN_URL)
        server.execute("SELECT 1")
    except Exception as exc:  # any connection failure means "no server here"
        peer_missing(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    server.execute(f'DROP DATABASE IF EXISTS "{server.template}" WITH (FORCE)')
    server.execute(f'CREATE DATABASE "{server.template}"')
    store = Store(server.url(server.template))
    store.upgrade()
    store.dispose()
    yield server
    for name in [*server.created, server.template]:
        server.drop(name)
    server.admin.dispose()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def fresh_database(request: pytest.FixtureRequest, folder: Path) -> Iterator[str]:
    """A copy of the migrated template on the requested backend; dropped afterwards."""
    if request.param == "sqlite":
        path = folder / "crm.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
        yield url
        close_shared(url)
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.new_database(template=server.template)
    url = server.url(name)
    yield url
    close_shared(url)
    server.drop(name)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh database at the current schema, once per backend."""
    yield from fresh_database(request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like database_url, but one database per test module (for a shared running server)."""
    yield from fresh_database(request, tmp_path_factory.mktemp("module-db"))


@pytest.fixture
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Like database_url, but with no schema at all (for migration tests)."""
    backend = request.param if hasattr(request, "param") else "sqlite"
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.new_database()
    yield server.url(name)
    server.drop(name)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    yield store
    store.dispose()


CliRun = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> CliRun:
    """Run ``crm-gateway`` in-process on the test database: (exit code, stdout, stderr)."""
    from gateway.cli import main

    monkeypatch.setenv("CRM_GATEWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("CRM_GATEWAY_PATHS_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CRM_GATEWAY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run
