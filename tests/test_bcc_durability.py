"""Nothing accepted is lost: 250 only after commit, 451 when the store cannot commit, crashes
before or during processing resume on restart, and poison messages are parked, not retried
forever. The store outages are real: an SQLite that refuses writes, a PostgreSQL that refuses
connections, a table locked by another session, a trigger that makes inserts fail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from peers.bcc_listener import (
    CONFIG_NAME,
    REP,
    World,
    eml,
    running_listener,
    seed_world,
    send,
    settle,
    write_config,
)
from peers.gateway_process import serve
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url

from bcc_ingest.smtp.queue_worker import ProcessingSettings, process_next
from gateway.clock import utcnow
from gateway.db import Store
from gateway.inbound_queue import claim_next, enqueue, retry
from gateway.logging_policy import LoggingPolicy
from gateway.models import Activity, InboundMessage, User

QUOTE = "smtp/quote_with_attachments.eml"


@pytest.fixture
def world(store: Store) -> World:
    return seed_world(store)


def rows(store: Store) -> list[InboundMessage]:
    with store.reading() as session:
        found = list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))
        session.expunge_all()
    return found


def activity_count(store: Store) -> int:
    with store.reading() as session:
        return session.scalar(select(func.count()).select_from(Activity)) or 0


def admin_engine(database_url: str) -> Any:
    """A PostgreSQL connection to the server's maintenance database, outside the test's."""
    return create_engine(make_url(database_url).set(database="postgres"),
                         isolation_level="AUTOCOMMIT")


@contextmanager
def store_unavailable(store: Store, database_url: str) -> Iterator[None]:
    """SQLite: every write is refused. PostgreSQL: the server refuses connections to it."""
    if store.dialect == "sqlite":
        def full(connection: Any, _record: Any) -> None:
            # Writes fail as on a read-only or full disk (SQLITE_READONLY).
            connection.execute("PRAGMA query_only = ON")

        event.listen(store.engine, "connect", full)
        store.engine.dispose()
        try:
            yield
        finally:
            event.remove(store.engine, "connect", full)
            store.engine.dispose()
        return
    name = make_url(database_url).database
    admin = admin_engine(database_url)
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = :name"), {"name": name})
    try:
        yield
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def test_store_unavailable_answers_451_then_the_resend_is_logged_once(
    tmp_path: Path, database_url: str, store: Store, world: World
) -> None:
    raw = eml(QUOTE)
    with running_listener(write_config(tmp_path, database_url), store) as smtp:
        with store_unavailable(store, database_url):
            refused = send(smtp.port, raw, mail_from=REP, rcpt_tos=[world.rep])
        assert refused.final == 451
        reply = refused.data or refused.rcpt[0]
        assert reply[1] == "4.3.0 Temporary failure, please try again later"
        assert rows(store) == []
        # The sending MTA retries later, and this time it is accepted and logged.
        assert send(smtp.port, raw, mail_from=REP, rcpt_tos=[world.rep]).final == 250
        settle(store)
    assert [row.status for row in rows(store)] == ["done"]
    assert activity_count(store) == 1


def test_a_crash_after_the_250_loses_nothing(
    tmp_path: Path, database_url: str, store: Store, world: World
) -> None:
    # First life: accept only (no processing threads), then die without any shutdown.
    write_config(tmp_path / "a", database_url, workers=0, dkim_dns="")
    with serve(tmp_path / "a" / CONFIG_NAME, tmp_path / "a.log") as gateway:
        assert send(gateway.port, eml(QUOTE), mail_from=REP, rcpt_tos=[world.rep]).final == 250
        gateway.kill()
    assert [(row.status, row.attempts) for row in rows(store)] == [("queued", 0)]
    # Second life: the queued message is processed.
    write_config(tmp_path / "b", database_url, dkim_dns="")
    with serve(tmp_path / "b" / CONFIG_NAME, tmp_path / "b.log"):
        settle(store)
    assert [(row.status, row.attempts) for row in rows(store)] == [("done", 1)]
    assert activity_count(store) == 1


# PostgreSQL only: SQLite has no lock that stops an insert into one table but not another.
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_crash_in_the_middle_of_processing_resumes_after_restart(
    tmp_path: Path, database_url: str, store: Store, world: World
) -> None:
    write_config(tmp_path, database_url, dkim_dns="", processing_lease_seconds=1)
    config_path = tmp_path / CONFIG_NAME
    blocker = create_engine(database_url)
    try:
        with blocker.connect() as lock:
            # Inserting an activity waits on this lock (queueing does not): processing is
            # stuck inside its transaction when the crash comes.
            lock.execute(text("LOCK TABLE activities IN SHARE MODE"))
            with serve(config_path, tmp_path / "a.log") as gateway:
                assert send(gateway.port, eml(QUOTE), mail_from=REP,
                            rcpt_tos=[world.rep]).final == 250
                deadline = time.monotonic() + 20
                while rows(store)[0].attempts == 0 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert rows(store)[0].attempts == 1  # claimed: now blocked mid-processing
                gateway.kill()
            lock.rollback()
    finally:
        blocker.dispose()
    assert activity_count(store) == 0
    with serve(config_path, tmp_path / "b.log"):
        settle(store)
    assert [(row.status, row.attempts) for row in rows(store)] == [("done", 2)]
    assert activity_count(store) == 1


def refuse_activities(store: Store) -> None:
    """A trigger that makes every activity insert fail, as a sick database would."""
    with store.transaction() as session:
        if store.dialect == "sqlite":
            session.execute(text(
                "CREATE TRIGGER sick BEFORE INSERT ON activities "
                "BEGIN SELECT RAISE(ABORT, 'simulated storage fault'); END"))
        else:
            session.execute(text(
                "CREATE FUNCTION sick() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'simulated storage fault'; END $$"))
            session.execute(text("CREATE TRIGGER sick BEFORE INSERT ON activities "
                                 "FOR EACH ROW EXECUTE FUNCTION sick()"))


def heal(store: Store) -> None:
    with store.transaction() as session:
        session.execute(text("DROP TRIGGER sick" if store.dialect == "sqlite"
                             else "DROP TRIGGER sick ON activities"))


def test_a_message_that_keeps_failing_is_parked_and_retried_on_request(
    tmp_path: Path, database_url: str, store: Store, world: World
) -> None:
    refuse_activities(store)
    config = write_config(tmp_path, database_url, max_attempts=3)
    with running_listener(config, store) as smtp:
        assert send(smtp.port, eml(QUOTE), mail_from=REP, rcpt_tos=[world.rep]).final == 250
        settle(store)
        [row] = rows(store)
        assert (row.status, row.attempts, row.activity_id) == ("failed", 3, None)
        assert row.last_error is not None and "simulated storage fault" in row.last_error
        assert row.decision is not None and row.decision.startswith("parked after 3 tries: ")
        assert activity_count(store) == 0
        heal(store)
        with store.transaction() as session:
            retry(session, row.id)
        settle(store)  # the worker's poll finds it due again
    [row] = rows(store)
    assert (row.status, row.attempts) == ("done", 1)
    assert activity_count(store) == 1


def test_a_claim_abandoned_by_a_dead_worker_comes_due_when_its_lease_ends(
    store: Store, world: World
) -> None:
    settings = ProcessingSettings(max_attempts=3, retry_delay=0, lease_seconds=60)
    policy = LoggingPolicy("log@crm.example", frozenset({"crm.example"}), frozenset(), True,
                           frozenset())
    with store.transaction() as session:
        rep = session.scalar(select(User).where(User.username == "rep"))
        assert rep is not None
        enqueue(session, raw=eml(QUOTE), user_ids=[rep.id], peer=None, mail_from=REP,
                rcpt_tos=[world.rep])
    now = utcnow()
    with store.transaction() as session:  # a worker claims it, then dies
        assert claim_next(session, now, lease_seconds=60, max_attempts=3) is not None
    assert process_next(store, policy, settings, clock=lambda: now + timedelta(seconds=59)) is False
    assert process_next(store, policy, settings, clock=lambda: now + timedelta(seconds=61))
    assert [(row.status, row.attempts) for row in rows(store)] == [("done", 2)]


def test_a_message_whose_worker_dies_every_time_is_parked(store: Store, world: World) -> None:
    with store.transaction() as session:
        rep = session.scalar(select(User).where(User.username == "rep"))
        assert rep is not None
        enqueue(session, raw=eml(QUOTE), user_ids=[rep.id], peer=None, mail_from=REP,
                rcpt_tos=[world.rep])
    now = utcnow()
    for attempt in range(3):  # three workers claim it and die
        with store.transaction() as session:
            later = now + timedelta(seconds=61 * attempt)
            assert claim_next(session, later, lease_seconds=60, max_attempts=3) is not None
    with store.transaction() as session:
        assert claim_next(session, now + timedelta(days=1), lease_seconds=60,
                          max_attempts=3) is None
    [row] = rows(store)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.decision == (
        "parked after 3 tries: processing never finished (the worker stopped each time)")
