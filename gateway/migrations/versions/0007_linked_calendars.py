"""Linked calendars: reps' own CalDAV accounts, their calendars and per-object sync state

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "linked_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("login", sa.String(length=320), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("principal_url", sa.String(length=2000), nullable=True),
        sa.Column("home_url", sa.String(length=2000), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("push_cursors", sa.JSON(), nullable=False),
        sa.Column("last_success_at", TZ, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", TZ, nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_sync_at", TZ, nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.CheckConstraint("status IN ('active', 'paused')", name=op.f("ck_linked_accounts_status")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_linked_accounts_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_linked_accounts")),
        sa.UniqueConstraint("user_id", "url", "login", name=op.f("uq_linked_accounts_user_id_url_login")),
    )
    op.create_index(op.f("ix_linked_accounts_user_id"), "linked_accounts", ["user_id"])
    op.create_table(
        "linked_calendars",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("diary_type_id", sa.Integer(), nullable=True),
        sa.Column("sync_token", sa.Text(), nullable=True),
        sa.Column("ctag", sa.Text(), nullable=True),
        sa.CheckConstraint("role IN ('target', 'source')", name=op.f("ck_linked_calendars_role")),
        sa.ForeignKeyConstraint(["account_id"], ["linked_accounts.id"], name=op.f("fk_linked_calendars_account_id_linked_accounts"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["diary_type_id"], ["diary_types.id"], name=op.f("fk_linked_calendars_diary_type_id_diary_types"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_linked_calendars")),
        sa.UniqueConstraint("account_id", "url", name=op.f("uq_linked_calendars_account_id_url")),
    )
    op.create_index(op.f("ix_linked_calendars_account_id"), "linked_calendars", ["account_id"])
    op.create_table(
        "linked_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("calendar_id", sa.Integer(), nullable=False),
        sa.Column("href", sa.String(length=2000), nullable=False),
        sa.Column("etag", sa.String(length=255), nullable=True),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("pushed", sa.Boolean(), nullable=False),
        sa.Column("entry_revision", sa.Integer(), nullable=True),
        sa.Column("shown_etag", sa.String(length=80), nullable=True),
        sa.Column("busy_start_utc", TZ, nullable=True),
        sa.Column("busy_end_utc", TZ, nullable=True),
        sa.Column("conflict_ical", sa.Text(), nullable=True),
        sa.Column("conflict_note", sa.Text(), nullable=True),
        sa.Column("conflict_at", TZ, nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["calendar_id"], ["linked_calendars.id"], name=op.f("fk_linked_objects_calendar_id_linked_calendars"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["entry_id"], ["diary_entries.id"], name=op.f("fk_linked_objects_entry_id_diary_entries"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_linked_objects")),
        sa.UniqueConstraint("calendar_id", "href", name=op.f("uq_linked_objects_calendar_id_href")),
    )
    op.create_index(op.f("ix_linked_objects_entry_id"), "linked_objects", ["entry_id"])


def downgrade() -> None:
    op.drop_table("linked_objects")
    op.drop_table("linked_calendars")
    op.drop_table("linked_accounts")
