"""Keyed hashes of the stored API keys, so one key is never in two slots or connections.

Existing rows are filled in at start-up (the master key is needed, and migrations never see it).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("connections", sa.Column("read_key_hash", sa.String(80), nullable=True))
    op.add_column("connections", sa.Column("trade_key_hash", sa.String(80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("trade_key_hash")
        batch.drop_column("read_key_hash")
