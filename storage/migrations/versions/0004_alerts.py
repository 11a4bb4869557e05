"""Balance-threshold alert rules.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_rules",
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
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("asset", sa.String(32), nullable=True),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("threshold", sa.String(40), nullable=False),
        sa.Column("rearm", sa.String(40), nullable=True),
        sa.Column("cooldown_seconds", sa.Integer, nullable=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("fired_at", _when, nullable=True),
        sa.Column("last_value", sa.String(40), nullable=True),
        sa.Column("snoozed_until", _when, nullable=True),
        sa.Column("paused", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("created_at", _when, nullable=False),
    )
    op.create_index("ix_alert_rules_chat", "alert_rules", ["chat_id"])


def downgrade() -> None:
    op.drop_table("alert_rules")
