"""Widen ``station_events.lane`` and ``disposition`` to 64 characters, the protocol's names.

A station's ``ParcelEvent.lane`` and ``disposition`` are protocol names (up to
``protocol.messages.MAX_NAME`` = 64 characters, as the contract published in AsyncAPI
promises); the columns were ``VARCHAR(32)``, so on PostgreSQL an event with a longer lane
name failed its INSERT (``value too long``) and was dead-lettered, its unit receipts and
credits with it, while SQLite (which does not enforce the length) stored it.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 22:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("station_events") as batch_op:
        for column in ("lane", "disposition"):
            batch_op.alter_column(
                column, existing_type=sa.String(32), type_=sa.String(64), existing_nullable=False
            )


def downgrade() -> None:
    """Revert this migration (fails on PostgreSQL while a longer name is stored)."""
    with op.batch_alter_table("station_events") as batch_op:
        for column in ("lane", "disposition"):
            batch_op.alter_column(
                column, existing_type=sa.String(64), type_=sa.String(32), existing_nullable=False
            )
