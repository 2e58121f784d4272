"""Free/busy, availability and conflicts: working hours, the conflicts setting, busy flags

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_CONFLICTS = "conflicts IN ('allow', 'warn', 'refuse')"


def upgrade() -> None:
    op.add_column("users", sa.Column("working_hours", sa.JSON(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # A column constraint, as 0009 does: a batch rebuild would lose sync_profiles' index.
        op.execute("ALTER TABLE sync_profiles ADD COLUMN conflicts VARCHAR(8) "
                   f"CONSTRAINT ck_sync_profiles_conflicts CHECK ({_CONFLICTS})")
    else:
        op.add_column("sync_profiles", sa.Column("conflicts", sa.String(length=8),
                                                 nullable=True))
        op.create_check_constraint(op.f("ck_sync_profiles_conflicts"), "sync_profiles",
                                   _CONFLICTS)
    op.add_column("diary_entries", sa.Column("busy", sa.Boolean(), nullable=False,
                                             server_default=sa.true()))
    # Entries stored before: transparent, cancelled or non-event ones are not busy time (a
    # text test of the stored iCalendar; every later write sets the flag from the event).
    op.execute("UPDATE diary_entries SET busy = false WHERE ical LIKE '%TRANSP:TRANSPARENT%' "
               "OR ical LIKE '%STATUS:CANCELLED%' OR ical NOT LIKE '%BEGIN:VEVENT%'")
    op.create_index("ix_published_items_horizon", "published_items",
                    ["calendar_id", "horizon_utc"])
    op.create_table(
        "freebusy_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("lookup", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_freebusy_tokens_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freebusy_tokens")),
        sa.UniqueConstraint("lookup", name=op.f("uq_freebusy_tokens_lookup")),
        sa.UniqueConstraint("user_id", name=op.f("uq_freebusy_tokens_user_id")),
    )
    op.create_table(
        "entry_conflicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("other_entry_id", sa.Integer(), nullable=True),
        sa.Column("other_title", sa.Text(), nullable=False),
        sa.Column("other_calendar", sa.String(length=255), nullable=False),
        sa.Column("start_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('crm', 'calendar')",
                           name=op.f("ck_entry_conflicts_source")),
        sa.ForeignKeyConstraint(["entry_id"], ["diary_entries.id"], ondelete="CASCADE",
                                name=op.f("fk_entry_conflicts_entry_id_diary_entries")),
        sa.ForeignKeyConstraint(["other_entry_id"], ["diary_entries.id"], ondelete="CASCADE",
                                name=op.f("fk_entry_conflicts_other_entry_id_diary_entries")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_entry_conflicts_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entry_conflicts")),
    )
    op.create_index("ix_entry_conflicts_entry_id", "entry_conflicts", ["entry_id"])
    op.create_index("ix_entry_conflicts_user_id_id", "entry_conflicts", ["user_id", "id"])


def downgrade() -> None:
    op.drop_table("entry_conflicts")
    op.drop_table("freebusy_tokens")
    op.drop_index("ix_published_items_horizon", table_name="published_items")
    op.drop_column("diary_entries", "busy")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_sync_profiles_conflicts"), "sync_profiles", type_="check")
    op.drop_column("sync_profiles", "conflicts")
    op.drop_column("users", "working_hours")
