"""Shared fixtures: a fresh, migrated store per test on SQLite and on PostgreSQL.

Each backend is migrated once per session into a template (a file for SQLite, a template
database for PostgreSQL). A SQLite test gets its own copy of the file. PostgreSQL tests of one
module share one copy of the template, emptied before each test (``TRUNCATE … RESTART
IDENTITY``, with the immutability triggers switched off for that statement): creating a
database per test cost a third of the suite. Either way a test never sees another's rows.
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
from sqlalchemy.pool import NullPool

from gateway.db import Store, close_shared

# Fixtures of the running gateway for the CalDAV tests, and of the BCC listener.
pytest_plugins = ["caldav_peer", "bcc_fixtures", "api_peers", "linked_world"]

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

    def empty(self, name: str) -> bool:
        """Remove every row of a copy of the template; False if that could not be done."""
        engine = create_engine(self.url(name), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                tables = connection.scalars(text(
                    "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'")).all()
                # A connection some earlier test left inside a transaction must not hang us.
                connection.execute(text("SET LOCAL lock_timeout = '5s'"))
                # Activities' triggers refuse TRUNCATE; replica mode does not fire them.
                connection.execute(text("SET LOCAL session_replication_role = replica"))
                connection.execute(text(
                    f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            return True
        except Exception:
            return False
        finally:
            engine.dispose()


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


@pytest.fixture(scope="module")
def postgres_module_database(postgres: PostgresServer) -> Iterator[list[str]]:
    """The module's copy of the template (a list, so a test can replace a broken copy)."""
    holder = [postgres.new_database(template=postgres.template)]
    yield holder
    close_shared(postgres.url(holder[0]))
    postgres.drop(holder[0])


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
    """The URL of an empty database at the current schema, once per backend."""
    if request.param == "sqlite":
        yield from fresh_database(request, tmp_path)
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    holder: list[str] = request.getfixturevalue("postgres_module_database")
    if not server.empty(holder[0]):  # held by a stuck connection: start a new copy
        close_shared(server.url(holder[0]))
        server.drop(holder[0])
        holder[0] = server.new_database(template=server.template)
    url = server.url(holder[0])
    yield url
    close_shared(url)


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
