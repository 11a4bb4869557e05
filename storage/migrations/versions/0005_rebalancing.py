"""Rebalancing: targets, proposals and their legs (the executor's journal).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rebalance_targets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "chat_id",
            sa.BigInteger,
            sa.ForeignKey("chats.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column(
            "connection_id",
            sa.Integer,
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("weights", sa.Text, nullable=False),
        sa.Column("band", sa.String(40), nullable=False),
        sa.Column("band_relative", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("every", sa.String(8), nullable=True),
        sa.Column("slippage", sa.String(40), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("drift_state", sa.String(16), nullable=False),
        sa.Column("set_at", _when, nullable=False),
        sa.Column("last_scheduled_at", _when, nullable=True),
    )
    op.create_table(
        "rebalance_proposals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "chat_id", sa.BigInteger, sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "target_id",
            sa.Integer,
            sa.ForeignKey("rebalance_targets.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("token", sa.String(16), nullable=False, unique=True),
        sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("quote", sa.String(8), nullable=False),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("message_id", sa.BigInteger, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("created_at", _when, nullable=False),
        sa.Column("expires_at", _when, nullable=False),
        sa.Column("decided_at", _when, nullable=True),
        sa.Column("finished_at", _when, nullable=True),
    )
    op.create_index("ix_rebalance_proposals_chat", "rebalance_proposals", ["chat_id"])
    op.create_index("ix_rebalance_proposals_status", "rebalance_proposals", ["status"])
    op.create_table(
        "rebalance_legs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "proposal_id",
            sa.Integer,
            sa.ForeignKey("rebalance_proposals.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column(
            "connection_id",
            sa.Integer,
            sa.ForeignKey("connections.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("venue", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("amount", sa.String(40), nullable=False),
        sa.Column("price", sa.String(40), nullable=False),
        sa.Column("value", sa.String(40), nullable=False),
        sa.Column("fee", sa.String(40), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("limit_price", sa.String(40), nullable=True),
        sa.Column("order_id", sa.String(64), nullable=True),
        sa.Column("filled", sa.String(40), nullable=True),
        sa.Column("average", sa.String(40), nullable=True),
        sa.Column("cost", sa.String(40), nullable=True),
        sa.Column("fees", sa.Text, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("lookups", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sent_at", _when, nullable=True),
        sa.Column("updated_at", _when, nullable=False),
        sa.UniqueConstraint("proposal_id", "position"),
    )


def downgrade() -> None:
    op.drop_table("rebalance_legs")
    op.drop_table("rebalance_proposals")
    op.drop_table("rebalance_targets")
