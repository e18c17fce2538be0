"""Customer contact on orders and RMAs (address, language, e-mail); the customer e-mail outbox.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:02:52
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rma_number", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("recipient_name", sa.String(length=128), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", gateway.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", gateway.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", gateway.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", gateway.models.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
        sa.UniqueConstraint("rma_number", "kind", "event_key"),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_notifications_rma_number"), ["rma_number"], unique=False
        )

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("customer_address", sa.Text(), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("customer_language", sa.String(length=16), server_default="", nullable=False)
        )
    with op.batch_alter_table("rmas", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("customer_email", sa.String(length=254), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("customer_address", sa.Text(), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("customer_language", sa.String(length=16), server_default="", nullable=False)
        )
    # RMAs created before this revision get their order's e-mail (their notifications)
    op.execute(
        "UPDATE rmas SET customer_email = (SELECT orders.customer_email FROM orders "
        "WHERE orders.order_ref = rmas.order_ref) "
        "WHERE EXISTS (SELECT 1 FROM orders WHERE orders.order_ref = rmas.order_ref)"
    )


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("rmas", schema=None) as batch_op:
        batch_op.drop_column("customer_language")
        batch_op.drop_column("customer_address")
        batch_op.drop_column("customer_email")

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("customer_language")
        batch_op.drop_column("customer_address")

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_rma_number"))
        batch_op.drop_index("ix_notifications_due")

    op.drop_table("notifications")
