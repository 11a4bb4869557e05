"""Chats, connections (encrypted read and trade keys), and the per-connection activity log.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "chats",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, server_default="0"),
    )
    key_columns = [
        column
        for role in ("read", "trade")
        for column in (
            sa.Column(f"{role}_permissions", sa.String(200), nullable=True),
            sa.Column(f"{role}_key_mask", sa.String(16), nullable=True),
            sa.Column(f"{role}_key_added_at", _when, nullable=True),
            sa.Column(f"{role}_api_key", sa.Text, nullable=True),
            sa.Column(f"{role}_secret", sa.Text, nullable=True),
            sa.Column(f"{role}_passphrase", sa.Text, nullable=True),
        )
    ]
    op.create_table(
        "connections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "chat_id", sa.BigInteger, sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("venue", sa.String(32), nullable=False),
        sa.Column("sandbox", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_detail", sa.Text, nullable=True),
        sa.Column("status_at", _when, nullable=False),
        *key_columns,
        sa.Column("last_sync_at", _when, nullable=True),
        sa.Column("last_ok_at", _when, nullable=True),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("updated_at", _when, nullable=False),
        sa.UniqueConstraint("chat_id", "label", name="uq_connections_chat_label"),
    )
    op.create_table(
        "activity",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "connection_id",
            sa.Integer,
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", _when, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=True),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("latency_ms", sa.Integer, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("error_class", sa.String(64), nullable=True),
    )
    op.create_index("ix_activity_connection_at", "activity", ["connection_id", "at"])


def downgrade() -> None:
    op.drop_table("activity")
    op.drop_table("connections")
    op.drop_table("chats")
