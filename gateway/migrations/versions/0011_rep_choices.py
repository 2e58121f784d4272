"""Which sync-profile settings reps may change themselves (on the global profile)

Revision ID: 0011
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_profiles") as batch:
        batch.add_column(sa.Column("rep_choices", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_profiles") as batch:
        batch.drop_column("rep_choices")
