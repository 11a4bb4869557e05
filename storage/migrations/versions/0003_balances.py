"""Balances: snapshots, the chat's quote currency and dust threshold, per-connection periods.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "chats", sa.Column("quote_currency", sa.String(8), nullable=False, server_default="USD")
    )
    op.add_column("chats", sa.Column("dust_threshold", sa.String(40), nullable=True))
    op.add_column("connections", sa.Column("sync_seconds", sa.Integer, nullable=True))
    op.add_column("connections", sa.Column("next_permission_check_at", _when, nullable=True))
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "connection_id",
            sa.Integer,
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("chat_id", sa.BigInteger, nullable=False),
        sa.Column("taken_at", _when, nullable=False),
        sa.Column("quote", sa.String(8), nullable=False),
        sa.Column("total_value", sa.String(40), nullable=True),
        sa.Column("unpriced", sa.Integer, nullable=False, server_default="0"),
        sa.Column("tier", sa.Integer, nullable=False, server_default="0"),
        sa.Column("assets", sa.Text, nullable=False),
        sa.Column("extra", sa.Text, nullable=True),
    )
    op.create_index("ix_snapshots_connection_taken", "snapshots", ["connection_id", "taken_at"])
    op.create_index("ix_snapshots_tier_taken", "snapshots", ["tier", "taken_at"])


def downgrade() -> None:
    op.drop_table("snapshots")
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("next_permission_check_at")
        batch.drop_column("sync_seconds")
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("dust_threshold")
        batch.drop_column("quote_currency")
