"""Drop ``ix_rma_lines_rma_id``: the unique (rma_id, line_no) index already leads with rma_id.

Every lookup of an RMA's lines (and the cascade of an RMA's delete) uses the unique
index's leading column, so the single-column index only cost one more index entry per
line written.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 02:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("rma_lines") as batch_op:
        batch_op.drop_index("ix_rma_lines_rma_id")


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("rma_lines") as batch_op:
        batch_op.create_index("ix_rma_lines_rma_id", ["rma_id"], unique=False)
