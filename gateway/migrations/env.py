"""Alembic environment: online migrations on the connection the gateway hands over.

``gateway.migrate.upgrade`` passes an open connection in ``config.attributes``; run from
the command line, the URL comes from ``RS_DATABASE_URL`` (default: the gateway's).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from gateway.db import make_engine
from gateway.models import Base
from gateway.settings import Settings

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(Settings().database_url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
