"""The JSON API: tokens, idempotency records, and the indexes of its keyset pages

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PAGE_INDEXES = (
    ("ix_diary_entries_owner_page", "diary_entries", ["owner_user_id", "id"]),
    ("ix_diary_entries_owner_uid_any", "diary_entries", ["owner_user_id", "uid"]),
    ("ix_activity_links_user_page", "activity_links", ["user_id", "activity_id"]),
    ("ix_activity_links_contact_page", "activity_links", ["contact_id", "activity_id"]),
    ("ix_activity_links_account_page", "activity_links", ["account_id", "activity_id"]),
    ("ix_inbound_messages_status_page", "inbound_messages", ["status", "id"]),
    ("ix_contacts_account_page", "contacts", ["account_id", "id"]),
)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("lookup", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("scope IN ('admin', 'read')", name=op.f("ck_api_tokens_scope")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("lookup", name=op.f("uq_api_tokens_lookup")),
    )
    op.create_table(
        "api_idempotency",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["api_tokens.id"],
                                name=op.f("fk_api_idempotency_token_id_api_tokens"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_idempotency")),
        sa.UniqueConstraint("token_id", "key", name=op.f("uq_api_idempotency_token_id_key")),
    )
    for name, table, columns in PAGE_INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in PAGE_INDEXES:
        op.drop_index(name, table_name=table)
    op.drop_table("api_idempotency")
    op.drop_table("api_tokens")
