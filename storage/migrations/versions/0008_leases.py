"""Leases, so that several processes share one database without doing the same work twice.

Sweep workers claim due connections and stale executions with a lease (``lease_owner``,
``lease_until``); global sweeps run under a named lease (``sweep_leases``); one process per bot
token polls Telegram (``pollers``). See ``storage.leases``.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_when = sa.DateTime(timezone=True)


def upgrade() -> None:
    for table in ("connections", "rebalance_proposals"):
        op.add_column(table, sa.Column("lease_owner", sa.String(64), nullable=True))
        op.add_column(table, sa.Column("lease_until", _when, nullable=True))
    op.create_index("ix_connections_venue_next_check", "connections", ["venue", "next_check_at"])
    op.create_table(
        "sweep_leases",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("until", _when, nullable=False),
    )
    op.create_table(
        "pollers",
        sa.Column("token_hash", sa.String(80), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", _when, nullable=False),
        sa.Column("until", _when, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pollers")
    op.drop_table("sweep_leases")
    op.drop_index("ix_connections_venue_next_check", table_name="connections")
    for table in ("rebalance_proposals", "connections"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("lease_until")
            batch.drop_column("lease_owner")
