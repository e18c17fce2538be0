"""Order import: customer e-mail, and product name, GTIN, serials and RFID UIDs per order line.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 18:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("customer_email", sa.String(length=254), server_default="", nullable=False)
        )
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("name", sa.String(length=200), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("gtin", sa.String(length=14), nullable=True))
        batch_op.add_column(sa.Column("serials", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("rfid_uids", sa.JSON(), nullable=True))
    op.execute("UPDATE order_lines SET serials = '[]', rfid_uids = '[]'")
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.alter_column("serials", existing_type=sa.JSON(), nullable=False)
        batch_op.alter_column("rfid_uids", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_column("rfid_uids")
        batch_op.drop_column("serials")
        batch_op.drop_column("gtin")
        batch_op.drop_column("name")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("customer_email")
