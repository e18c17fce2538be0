"""Issue 18: the shop connectors' durable queue of outbound calls (refunds, stock).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 03:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "connector_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connector", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", gateway.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("shop_ref", sa.String(length=255), nullable=False),
        sa.Column("created_at", gateway.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("done_at", gateway.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("connector", "key", name="uq_connector_jobs_connector_key"),
    )
    op.create_index(
        "ix_connector_jobs_due", "connector_jobs", ["status", "next_attempt_at"], unique=False
    )


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index("ix_connector_jobs_due", table_name="connector_jobs")
    op.drop_table("connector_jobs")
