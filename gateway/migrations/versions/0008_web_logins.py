"""Web sign-in for people (web passwords, session versions, one-time invitations); whether a user's mail is logged

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_logins",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_web_logins_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_web_logins")),
    )
    op.create_table(
        "web_invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"],
                                name=op.f("fk_web_invitations_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_invitations_token_hash")),
    )
    op.create_index(op.f("ix_web_invitations_user_id"), "web_invitations", ["user_id"])
    op.create_index("ix_inbound_messages_user_id_id", "inbound_messages", ["user_id", "id"])
    with op.batch_alter_table("sync_profiles") as batch:
        batch.add_column(sa.Column("log_email", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_profiles") as batch:
        batch.drop_column("log_email")
    op.drop_index("ix_inbound_messages_user_id_id", table_name="inbound_messages")
    op.drop_index(op.f("ix_web_invitations_user_id"), table_name="web_invitations")
    op.drop_table("web_invitations")
    op.drop_table("web_logins")
