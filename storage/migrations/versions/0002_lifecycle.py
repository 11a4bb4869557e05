"""Connection lifecycle: health state, key versions, rotation reminders, pause time, outbox.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("chats", sa.Column("paused_at", _when, nullable=True))
    for column in (
        sa.Column("status_fix", sa.Text, nullable=True),
        sa.Column("status_message", sa.Text, nullable=True),
        sa.Column("failure_streak", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_check_at", _when, nullable=True),
        sa.Column("keys_version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("read_reminded_at", _when, nullable=True),
        sa.Column("trade_reminded_at", _when, nullable=True),
    ):
        op.add_column("connections", column)
    op.create_index("ix_connections_next_check_at", "connections", ["next_check_at"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "chat_id", sa.BigInteger, sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "connection_id",
            sa.Integer,
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("done_at", _when, nullable=True),
    )
    op.create_index("ix_notifications_state_id", "notifications", ["state", "id"])


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_index("ix_connections_next_check_at", "connections")
    with op.batch_alter_table("connections") as batch:
        for name in (
            "trade_reminded_at",
            "read_reminded_at",
            "keys_version",
            "next_check_at",
            "failure_streak",
            "status_message",
            "status_fix",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("paused_at")
