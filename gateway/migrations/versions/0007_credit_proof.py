"""One writer path and credits from proof (issue 14): the announcement outbox.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "announcement_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rma_number", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", gateway.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", gateway.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_announcement_outbox_pending", "announcement_outbox", ["sent_at", "id"], unique=False
    )


def downgrade() -> None:
    """Revert this migration."""
    op.drop_index("ix_announcement_outbox_pending", table_name="announcement_outbox")
    op.drop_table("announcement_outbox")
