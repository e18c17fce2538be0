"""Issue 17 item 1: sites as data.

Every RMA, order, station event, stock movement and outbox announcement gets a ``site``
(NOT NULL, indexed where the API filters); API keys and users get ``sites`` ("" = every
site, so existing keys and users stay unlimited). Stations already had a site; it is
indexed now.

Rows from before this migration belong to the one site the gateway served. That site is,
in order: the only row of ``site_revision`` (the counter the single-site gateway kept for
the site it served: the site its stations' topics named, whatever the configuration says
now, e.g. a renamed ``RS_SITE`` set for after the upgrade), else ``config.attributes["site"]``
(a caller of :func:`gateway.migrate.upgrade` that knows it), ``RS_SITE``, else ``site1``
(the settings' default).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 05:40:00
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_SITE = "site1"
#: table -> whether its site column is indexed (filtered by the API and the pages)
SITE_TABLES = {
    "rmas": True,
    "orders": True,
    "station_events": True,
    "stock_movements": True,
    "announcement_outbox": False,
}


def existing_site() -> str:
    """The site the rows from before this migration belong to (see the module doc)."""
    known = op.get_bind().execute(sa.text("SELECT site FROM site_revision")).scalars().all()
    if len(known) == 1:
        return str(known[0])
    configured = context.config.attributes.get("site") or os.environ.get("RS_SITE")
    return str(configured) if configured else DEFAULT_SITE


def upgrade() -> None:
    """Apply this migration."""
    site = existing_site()
    for table, indexed in SITE_TABLES.items():
        op.add_column(table, sa.Column("site", sa.String(length=64), nullable=True))
        # the table name is one of SITE_TABLES' constants, the site a bound parameter
        update = sa.text(f"UPDATE {table} SET site = :site")  # nosec B608
        op.execute(update.bindparams(site=site))
        with op.batch_alter_table(table) as batch:
            batch.alter_column("site", existing_type=sa.String(length=64), nullable=False)
        if indexed:
            op.create_index(op.f(f"ix_{table}_site"), table, ["site"], unique=False)
    op.create_index(op.f("ix_stations_site"), "stations", ["site"], unique=False)
    for table in ("api_keys", "users"):
        op.add_column(
            table,
            sa.Column("sites", sa.String(length=1000), server_default="", nullable=False),
        )


def downgrade() -> None:
    """Revert this migration (every row keeps its data but loses its site)."""
    for table in ("users", "api_keys"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("sites")
    op.drop_index(op.f("ix_stations_site"), table_name="stations")
    for table, indexed in reversed(SITE_TABLES.items()):
        if indexed:
            op.drop_index(op.f(f"ix_{table}_site"), table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("site")
