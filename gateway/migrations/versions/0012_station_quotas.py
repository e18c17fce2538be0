"""Dead letters carry their station and size, for per-station quotas (issue 15).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration (existing dead letters: no station, their payload's size)."""
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("station", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("size", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_index("ix_dead_letters_station", ["station", "id"], unique=False)
    op.execute("UPDATE dead_letters SET size = length(payload)")


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index("ix_dead_letters_station")
        batch_op.drop_column("size")
        batch_op.drop_column("station")
