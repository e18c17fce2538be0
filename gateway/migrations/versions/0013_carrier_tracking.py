"""Issue 18: an RMA's carrier tracking, when it shipped, what its carrier last reported.

One RMA per tracking number (unique index).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 03:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.models

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    op.add_column(
        "rmas", sa.Column("carrier", sa.String(length=32), server_default="", nullable=False)
    )
    op.add_column("rmas", sa.Column("tracking_number", sa.String(length=48), nullable=True))
    op.create_index(op.f("ix_rmas_tracking_number"), "rmas", ["tracking_number"], unique=True)
    op.add_column("rmas", sa.Column("shipped_at", gateway.models.UtcDateTime(timezone=True)))
    op.add_column(
        "rmas", sa.Column("carrier_status", sa.String(length=16), server_default="", nullable=False)
    )
    op.add_column("rmas", sa.Column("carrier_status_at", gateway.models.UtcDateTime(timezone=True)))
    op.add_column("rmas", sa.Column("expected_on", sa.Date()))


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index(op.f("ix_rmas_tracking_number"), table_name="rmas")
    with op.batch_alter_table("rmas") as batch:
        for column in ("expected_on", "carrier_status_at", "carrier_status", "shipped_at"):
            batch.drop_column(column)
        batch.drop_column("tracking_number")
        batch.drop_column("carrier")
