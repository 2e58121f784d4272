"""Outbound mail: the outbox and its attempts; reps' notification switch and first calendar sync; the invitations profile setting

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_INVITATIONS = "invitations IN ('never', 'always', 'after_first_sync')"


def upgrade() -> None:
    op.create_table(
        "outbound_mails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_code", sa.Integer(), nullable=True),
        sa.Column("last_reply", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retried_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')",
                           name=op.f("ck_outbound_mails_status")),
        sa.CheckConstraint("kind IN ('notification', 'request', 'cancel')",
                           name=op.f("ck_outbound_mails_kind")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_outbound_mails_user_id_users"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["entry_id"], ["diary_entries.id"],
                                name=op.f("fk_outbound_mails_entry_id_diary_entries"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_mails")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbound_mails_message_id")),
    )
    with op.batch_alter_table("outbound_mails", schema=None) as batch_op:
        batch_op.create_index("ix_outbound_mails_due", ["status", "next_attempt_at"])
        batch_op.create_index(batch_op.f("ix_outbound_mails_entry_id"), ["entry_id"])
        batch_op.create_index(batch_op.f("ix_outbound_mails_user_id"), ["user_id"])
    op.create_table(
        "outbound_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mail_id", sa.Integer(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["mail_id"], ["outbound_mails.id"],
                                name=op.f("fk_outbound_attempts_mail_id_outbound_mails"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_attempts")),
    )
    with op.batch_alter_table("outbound_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbound_attempts_mail_id"), ["mail_id"])
    # Not a batch: rebuilding users on SQLite would lose its expression index.
    op.add_column("users", sa.Column("notify_client_adds", sa.Boolean(), nullable=False,
                                     server_default=sa.true()))
    op.add_column("users", sa.Column("calendar_synced_at", sa.DateTime(timezone=True),
                                     nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # A column constraint: a batch rebuild would reflect users and lose its index.
        op.execute("ALTER TABLE sync_profiles ADD COLUMN invitations VARCHAR(20) "
                   f"CONSTRAINT ck_sync_profiles_invitations CHECK ({_INVITATIONS})")
    else:
        op.add_column("sync_profiles", sa.Column("invitations", sa.String(length=20),
                                                 nullable=True))
        op.create_check_constraint(op.f("ck_sync_profiles_invitations"), "sync_profiles",
                                   _INVITATIONS)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_sync_profiles_invitations"), "sync_profiles",
                           type_="check")
    op.drop_column("sync_profiles", "invitations")
    op.drop_column("users", "calendar_synced_at")
    op.drop_column("users", "notify_client_adds")
    op.drop_table("outbound_attempts")
    op.drop_table("outbound_mails")
