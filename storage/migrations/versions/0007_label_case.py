"""Labels unique per chat ignoring case, enforced by the database too.

The repositories compare labels with ``casefold`` on rows they hold locked; this index makes two
writers that race past those checks fail the second insert instead of storing "CB" and "cb".

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "uq_connections_chat_label_ci",
        "connections",
        ["chat_id", sa.text("lower(label)")],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_connections_chat_label_ci", table_name="connections")
