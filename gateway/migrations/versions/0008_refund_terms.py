"""Refund terms (issue 14): order discount, voucher, shipping paid, tax per line; write-offs.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.models

revision: str = "0008"
down_revision: str | None = "0007"
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
    op.create_table(
        "write_offs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rma_line_id", sa.Integer(), nullable=False),
        sa.Column("unit_no", sa.Integer(), server_default="1", nullable=False),
        sa.Column("rma_number", sa.String(length=32), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("destination", sa.String(length=24), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("recovered_value_cents", sa.BigInteger(), nullable=False),
        sa.Column("shipping_cost_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("created_at", gateway.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rma_line_id"], ["rma_lines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rma_line_id", "unit_no", name="uq_write_offs_line_unit"),
    )
    with op.batch_alter_table("write_offs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_write_offs_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_write_offs_rma_number"), ["rma_number"], unique=False)


def downgrade() -> None:
    """Revert this migration."""
    op.drop_table("write_offs")
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
