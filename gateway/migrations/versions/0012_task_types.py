"""Task diary types (VTODO lists): a type's kind, and the task fields of entries

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_KIND = "kind IN ('event', 'task')"
_TASK_COLUMNS = ("task_start_utc", "due_utc", "completed_utc", "priority", "percent_complete",
                 "status")


def upgrade() -> None:
    # Not a batch on SQLite: rebuilding diary_types would drop the table calendars and
    # entries refer to. SQLite takes the CHECK as part of the new column instead.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE diary_types ADD COLUMN kind VARCHAR(8) DEFAULT 'event' "
                   f"NOT NULL CONSTRAINT ck_diary_types_kind CHECK ({_KIND})")
    else:
        op.add_column("diary_types", sa.Column("kind", sa.String(length=8), nullable=False,
                                               server_default="event"))
        op.create_check_constraint(op.f("ck_diary_types_kind"), "diary_types", _KIND)
    op.add_column("diary_entries", sa.Column("task_start_utc", sa.DateTime(timezone=True),
                                                 nullable=True))
    op.add_column("diary_entries", sa.Column("due_utc", sa.DateTime(timezone=True),
                                                 nullable=True))
    op.add_column("diary_entries", sa.Column("completed_utc", sa.DateTime(timezone=True),
                                                 nullable=True))
    op.add_column("diary_entries", sa.Column("priority", sa.Integer(), nullable=True))
    op.add_column("diary_entries", sa.Column("percent_complete", sa.Integer(), nullable=True))
    op.add_column("diary_entries", sa.Column("status", sa.String(length=32), nullable=True))


def downgrade() -> None:
    for column in _TASK_COLUMNS:
        op.drop_column("diary_entries", column)
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_diary_types_kind"), "diary_types", type_="check")
    op.drop_column("diary_types", "kind")
