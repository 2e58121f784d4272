"""App passwords get a lookup column so a login runs at most one argon2 verification.

Existing rows keep working: their lookup stays NULL until their first successful login
fills it in (gateway/app_passwords.py), so nobody has to reissue a password.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("app_passwords", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lookup", sa.String(length=16), nullable=True))
        batch_op.create_index(
            "uq_app_passwords_live_lookup", ["user_id", "lookup"], unique=True,
            sqlite_where=sa.text("revoked_at IS NULL"),
            postgresql_where=sa.text("revoked_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("app_passwords", schema=None) as batch_op:
        batch_op.drop_index("uq_app_passwords_live_lookup")
        batch_op.drop_column("lookup")
