"""64-bit ids for the tables that grow with every balance read: activity, snapshots, the outbox.

A 32-bit id (PostgreSQL's ``serial``) runs out after ~2.1 billion rows: at a few thousand reads a
minute, each logging its calls, within months. SQLite's INTEGER ids are 64-bit already, so this
changes nothing there.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = ("activity", "snapshots", "notifications")


def _retype(column_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.alter_column(
            table,
            "id",
            type_=sa.BigInteger() if column_type == "bigint" else sa.Integer(),
            existing_nullable=False,
        )
        # serial's sequence is typed too (AS integer): it would stop at 2^31 on its own.
        op.execute(f"ALTER SEQUENCE {table}_id_seq AS {column_type}")


def upgrade() -> None:
    _retype("bigint")


def downgrade() -> None:
    _retype("integer")
