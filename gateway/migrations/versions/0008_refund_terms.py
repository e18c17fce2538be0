"""Refund terms (issue 14): order discount, voucher, shipping paid, tax per line; credit parts.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _money(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(_money("discount_cents"))
        batch_op.add_column(_money("voucher_cents"))
        batch_op.add_column(_money("shipping_paid_cents"))
        batch_op.add_column(
            sa.Column("tax_inclusive", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(_money("line_discount_cents"))
        batch_op.add_column(
            sa.Column("tax_rate_bp", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("credits", schema=None) as batch_op:
        batch_op.add_column(_money("tax_refund_cents"))
        batch_op.add_column(_money("shipping_refund_cents"))


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("credits", schema=None) as batch_op:
        batch_op.drop_column("shipping_refund_cents")
        batch_op.drop_column("tax_refund_cents")
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_column("tax_rate_bp")
        batch_op.drop_column("line_discount_cents")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("tax_inclusive")
        batch_op.drop_column("shipping_paid_cents")
        batch_op.drop_column("voucher_cents")
        batch_op.drop_column("discount_cents")
