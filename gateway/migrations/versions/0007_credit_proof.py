"""One writer path and credits from proof (issue 14).

The announcement outbox; received units (``rma_units``); credits and stock movements per
unit (``unit_no``; existing rows are unit 1).

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


#: SQLite's unnamed unique constraints get these names when a batch recreates the table
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def _old_unique(table: str, columns: str) -> str:
    if op.get_bind().dialect.name == "postgresql":
        return f"{table}_{columns}_key"
    return f"uq_{table}_{columns}"


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "rma_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rma_line_id", sa.Integer(), nullable=False),
        sa.Column("unit_no", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("evidence", sa.String(length=16), nullable=True),
        sa.Column("identifier", sa.String(length=64), nullable=True),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("divert_confirmed", sa.Boolean(), nullable=True),
        sa.Column("grade", sa.String(length=24), nullable=True),
        sa.Column("location", sa.String(length=64), nullable=True),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.Column("station_reason", sa.String(length=64), nullable=False),
        sa.Column("photo_sha256", sa.String(length=64), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=False),
        sa.Column("received_at", gateway.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", gateway.models.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["rma_line_id"], ["rma_lines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rma_line_id", "unit_no", name="uq_rma_units_line_unit"),
    )
    op.create_index("ix_rma_units_rma_line_id", "rma_units", ["rma_line_id"], unique=False)
    with op.batch_alter_table("credits", naming_convention=_NAMING) as batch_op:
        batch_op.add_column(sa.Column("unit_no", sa.Integer(), server_default="1", nullable=False))
        batch_op.drop_constraint(_old_unique("credits", "rma_line_id"), type_="unique")
        batch_op.create_unique_constraint("uq_credits_line_unit", ["rma_line_id", "unit_no"])
    with op.batch_alter_table("stock_movements", naming_convention=_NAMING) as batch_op:
        batch_op.add_column(sa.Column("unit_no", sa.Integer(), server_default="1", nullable=False))
        batch_op.drop_constraint(_old_unique("stock_movements", "rma_line_id_kind"), type_="unique")
        batch_op.create_unique_constraint(
            "uq_stock_movements_unit_kind", ["rma_line_id", "unit_no", "kind"]
        )
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
    """Revert this migration (credits and movements of units after the first are kept)."""
    with op.batch_alter_table("stock_movements") as batch_op:
        batch_op.drop_constraint("uq_stock_movements_unit_kind", type_="unique")
        batch_op.drop_column("unit_no")
    with op.batch_alter_table("credits") as batch_op:
        batch_op.drop_constraint("uq_credits_line_unit", type_="unique")
        batch_op.drop_column("unit_no")
    op.drop_index("ix_rma_units_rma_line_id", table_name="rma_units")
    op.drop_table("rma_units")
    op.drop_index("ix_announcement_outbox_pending", table_name="announcement_outbox")
    op.drop_table("announcement_outbox")
