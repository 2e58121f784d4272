"""Calendar feeds (a rep's secret feed token) and attendees' replies to invitations

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("lookup", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_feed_tokens_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_tokens")),
        sa.UniqueConstraint("lookup", name=op.f("uq_feed_tokens_lookup")),
        sa.UniqueConstraint("user_id", name=op.f("uq_feed_tokens_user_id")),
    )
    op.create_table(
        "invitation_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_key", sa.String(length=512), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("attendee", sa.String(length=320), nullable=False),
        sa.Column("partstat", sa.String(length=32), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("outcome IN ('applied', 'ignored')",
                           name=op.f("ck_invitation_replies_outcome")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_invitation_replies_user_id_users"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["entry_id"], ["diary_entries.id"],
                                name=op.f("fk_invitation_replies_entry_id_diary_entries"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitation_replies")),
        sa.UniqueConstraint("message_key", "uid", "attendee",
                            name=op.f("uq_invitation_replies_message_key_uid_attendee")),
    )
    op.create_index(op.f("ix_invitation_replies_message_key"), "invitation_replies",
                    ["message_key"])
    op.create_index(op.f("ix_invitation_replies_user_id"), "invitation_replies", ["user_id"])
    op.create_index(op.f("ix_invitation_replies_entry_id"), "invitation_replies", ["entry_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_invitation_replies_entry_id"), table_name="invitation_replies")
    op.drop_index(op.f("ix_invitation_replies_user_id"), table_name="invitation_replies")
    op.drop_index(op.f("ix_invitation_replies_message_key"), table_name="invitation_replies")
    op.drop_table("invitation_replies")
    op.drop_table("feed_tokens")
