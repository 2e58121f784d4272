"""Which sync-profile settings reps may change themselves (on the global profile)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


# Not a batch: rebuilding sync_profiles on SQLite would turn 0009's column CHECK into a
# table one, which SQLite's DROP COLUMN of that column then refuses.
def upgrade() -> None:
    op.add_column("sync_profiles", sa.Column("rep_choices", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("sync_profiles", "rep_choices")
