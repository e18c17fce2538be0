"""One event per parcel: unique ``(station, parcel_id, inducted_at)`` on ``station_events``.

A station reports each parcel once (one ``event_id``, kept across its redeliveries); a
second event of the same parcel under a new ``event_id`` (a replay) claimed its units
again and was credited twice. The index refuses it whichever replica stores it.

Events stored before this migration that repeat a parcel (replays already credited) keep
the index from being built: the migration then stops, naming them, for a lead to review
their credits; nothing is changed.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    repeated = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT station, parcel_id, inducted_at, COUNT(*) FROM station_events "
                "GROUP BY station, parcel_id, inducted_at HAVING COUNT(*) > 1 "
                "ORDER BY station, parcel_id, inducted_at LIMIT 20"
            )
        )
        .all()
    )
    if repeated:
        named = "; ".join(
            f"{st} parcel {pid} inducted {at} ({n} events)" for st, pid, at, n in repeated
        )
        raise RuntimeError(
            "station_events holds parcels reported under several event ids (replays, "
            f"possibly credited twice): {named}. Review their credits, then remove the "
            "extra events before upgrading"
        )
    with op.batch_alter_table("station_events") as batch_op:
        batch_op.create_index(
            "uq_station_events_parcel", ["station", "parcel_id", "inducted_at"], unique=True
        )


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("station_events") as batch_op:
        batch_op.drop_index("uq_station_events_parcel")
