"""The schema: migrations from empty, models in step with them, immutability triggers."""

from __future__ import annotations

import hashlib
import warnings

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import delete, inspect, text, update
from sqlalchemy.exc import DatabaseError

from gateway.db import Store
from gateway.models import Activity, Attachment, Base, Blob

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("empty_database_url", BACKENDS, indirect=True)
def test_migrations_from_empty_reach_head_and_match_the_models(
    empty_database_url: str,
) -> None:
    store = Store(empty_database_url)
    try:
        assert store.current_revision() is None
        assert store.needs_upgrade()
        store.upgrade()
        assert not store.needs_upgrade()
        tables = set(inspect(store.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with store.engine.connect() as connection, warnings.catch_warnings():
            # Expression indexes cannot be reflected by alembic; 0002 creates that one.
            warnings.filterwarnings("ignore", message=".*expression-based index")
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
        store.upgrade()  # a second upgrade is a no-op
        assert store.current_revision() == store.head_revision()
    finally:
        store.dispose()


def _one_activity(store: Store) -> int:
    data = b"attachment bytes"
    digest = hashlib.sha256(data).hexdigest()
    with store.transaction() as session:
        session.add(Blob(sha256=digest, size=len(data), data=data))
        activity = Activity(message_key="mid:a@b", message_id="a@b", direction="sent",
                            source="bcc", subject="Quote", from_addr="a@b")
        session.add(activity)
        session.flush()
        session.add(Attachment(activity_id=activity.id, blob_sha256=digest, filename="q.pdf",
                               content_type="application/pdf", size=len(data)))
        return activity.id


@pytest.mark.parametrize("table", [Activity, Attachment])
def test_triggers_refuse_update_and_delete_of_activities_and_attachments(
    store: Store, table: type[Activity] | type[Attachment]
) -> None:
    _one_activity(store)
    column = table.subject if table is Activity else table.filename  # type: ignore[union-attr]
    for statement in (update(table).values({column: "changed"}), delete(table)):
        with pytest.raises(DatabaseError, match="immutable"), store.transaction() as session:
            session.execute(statement)
    with store.reading() as session:
        assert session.scalar(text(f"SELECT count(*) FROM {table.__tablename__}")) == 1
        if table is Activity:
            assert session.scalar(text("SELECT subject FROM activities")) == "Quote"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_refuses_truncate_of_activities(store: Store) -> None:
    _one_activity(store)
    with pytest.raises(DatabaseError, match="immutable"), store.transaction() as session:
        session.execute(text("TRUNCATE activities CASCADE"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_runs_in_wal_mode_with_foreign_keys(store: Store) -> None:
    with store.reading() as session:
        assert session.scalar(text("PRAGMA journal_mode")) == "wal"
        assert session.scalar(text("PRAGMA foreign_keys")) == 1


@pytest.mark.parametrize("empty_database_url", BACKENDS, indirect=True)
def test_the_outbound_mail_migration_goes_down_and_up_again(empty_database_url: str) -> None:
    from alembic import command

    store = Store(empty_database_url)
    try:
        store.upgrade()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*expression-based index")
            command.downgrade(store._alembic(), "0008")
            assert store.current_revision() == "0008"
            assert "outbound_mails" not in inspect(store.engine).get_table_names()
            store.upgrade()
        assert store.current_revision() == store.head_revision()
        with pytest.raises(DatabaseError), store.transaction() as session:
            session.execute(text("INSERT INTO sync_profiles (is_global, invitations) "
                                 "VALUES (true, 'sometimes')"))
    finally:
        store.dispose()


@pytest.mark.parametrize("empty_database_url", BACKENDS, indirect=True)
def test_the_task_types_migration_keeps_types_and_goes_down_and_up(
        empty_database_url: str) -> None:
    from alembic import command

    store = Store(empty_database_url)
    try:
        command.upgrade(store._alembic(), "0011")
        with store.transaction() as session:  # a type made before task types existed
            session.execute(text("INSERT INTO diary_types (name, slug, color, syncable) "
                                 "VALUES ('Meeting', 'meeting', '#3A87AD', true)"))
        store.upgrade()
        with store.reading() as session:
            assert session.execute(text("SELECT kind FROM diary_types")).scalar() == "event"
        with pytest.raises(DatabaseError), store.transaction() as session:
            session.execute(text("UPDATE diary_types SET kind = 'journal'"))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*expression-based index")
            command.downgrade(store._alembic(), "0011")
            columns = {c["name"] for c in inspect(store.engine).get_columns("diary_types")}
            assert "kind" not in columns
            store.upgrade()
        assert store.current_revision() == store.head_revision()
        with store.reading() as session:
            assert session.execute(text("SELECT name, kind FROM diary_types")).one() == (
                "Meeting", "event")
    finally:
        store.dispose()
