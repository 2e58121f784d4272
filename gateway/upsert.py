"""Insert-or-nothing on both dialects: idempotent writes rest on UNIQUE constraints.

A query followed by an insert races with a concurrent writer; ``INSERT .. ON CONFLICT DO
NOTHING`` lets the database decide (STYLE.md, "invariants live in the database").
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

from gateway.models import Base


def _insert(session: Session, model: type[Base], values: dict[str, Any] | list[dict[str, Any]]
            ) -> Any:
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return module.insert(model).values(values).on_conflict_do_nothing()


def insert_or_nothing(session: Session, model: type[Base], values: dict[str, Any]) -> bool:
    """Insert one row unless it clashes with a unique constraint; True if it was inserted."""
    # A returned row, not the row count: psycopg reports -1 for an INSERT .. RETURNING.
    statement = _insert(session, model, values).returning(literal_column("1"))
    return session.execute(statement).first() is not None


def insert_returning(
    session: Session, model: type[Base], values: dict[str, Any],
    column: InstrumentedAttribute[int],
) -> int | None:
    """Insert one row and return ``column`` of it, or None when a unique constraint clashed."""
    statement = _insert(session, model, values).returning(column)
    value: int | None = session.execute(statement).scalar_one_or_none()
    return value


def insert_many_or_nothing(
    session: Session, model: type[Base], rows: list[dict[str, Any]]
) -> None:
    """Insert each row (all with the same keys) unless it clashes; one statement."""
    if rows:
        session.execute(_insert(session, model, rows))
