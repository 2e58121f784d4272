"""Insert-or-nothing on both dialects: idempotent writes rest on UNIQUE constraints.

A query followed by an insert races with a concurrent writer; ``INSERT .. ON CONFLICT DO
NOTHING`` lets the database decide (docs/ARCHITECTURE.md, "Conventions"). Statements
are Core and take their rows as parameters, so a batch is one executemany (SQLAlchemy's
"insertmanyvalues") and the compiled statement is cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Row, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.models import Base


def table_of(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _insert(session: Session, model: type[Base]) -> Any:
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table_of(model)).on_conflict_do_nothing()


def insert_many_or_nothing(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]],
    returning: Sequence[ColumnElement[Any]] = (),
) -> list[Row[Any]]:
    """Insert each row (all with the same keys) unless it clashes; returns ``returning`` of
    the rows inserted (in no particular order), or nothing when it is empty.
    """
    if not rows:
        return []
    statement = _insert(session, model)
    if not returning:
        session.execute(statement, list(rows))
        return []
    return list(session.execute(statement.returning(*returning), list(rows)).all())
