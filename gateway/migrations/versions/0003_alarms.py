"""Alarms (issue 7).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 18:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("station", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("raised_at", gateway.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", gateway.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", gateway.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.create_index("ix_alarms_open", ["cleared_at", "acknowledged_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarms_key"), ["key"], unique=False)
        batch_op.create_index(batch_op.f("ix_alarms_raised_at"), ["raised_at"], unique=False)


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("alarms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alarms_raised_at"))
        batch_op.drop_index(batch_op.f("ix_alarms_key"))
        batch_op.drop_index("ix_alarms_open")
    op.drop_table("alarms")
