"""Widen ``station_events.parcel_id`` to BIGINT: the protocol's parcel id is 64-bit.

A station's ``ParcelEvent.parcel_id`` may be anything from 1 to 2^63 - 1 (the protocol's
``INT64_MAX``, what the contract published in AsyncAPI promises); the column was a 32-bit
INTEGER, so on PostgreSQL an event with a parcel id above 2^31 - 1 failed its INSERT
(``integer out of range``) and was dead-lettered, its unit receipts (and the credits they
make) with it, while SQLite stored it. The id is the station's own (its tracking id at
induct); the gateway only records and shows it, so it is kept as the station sent it.

PostgreSQL rewrites the table (``ALTER COLUMN ... TYPE BIGINT``, under an exclusive lock
for as long as that takes). SQLite already stores any INTEGER in up to 8 bytes: only the
declared type changes there (the table is copied, as every SQLite ``ALTER`` is).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("station_events") as batch_op:
        batch_op.alter_column(
            "parcel_id", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False
        )


def downgrade() -> None:
    """Revert this migration (fails on PostgreSQL while a parcel id above 2^31 - 1 is stored)."""
    with op.batch_alter_table("station_events") as batch_op:
        batch_op.alter_column(
            "parcel_id", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False
        )
