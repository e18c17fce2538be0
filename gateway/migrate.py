"""Schema migrations with Alembic: :func:`upgrade` brings a database to the newest schema."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

from gateway.db import IMMEDIATE, SQLITE_BEGIN

log = logging.getLogger(__name__)

ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"


def alembic_config() -> Config:
    """The Alembic configuration of the gateway (``gateway/alembic.ini``)."""
    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(ALEMBIC_INI.parent / "migrations"))
    return cfg


@contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction for schema changes: all of them commit, or none.

    SQLite: begun with ``BEGIN IMMEDIATE`` (:data:`gateway.db.SQLITE_BEGIN`), since the
    sqlite3 driver's own control begins no transaction before DDL, so each ``CREATE`` or
    ``ALTER`` of a migration that failed (or was cut off by a power cut) halfway would
    stay, committed on its own. PostgreSQL runs DDL in the transaction anyway.

    Raises:
        Exception: whatever the block raised, after the rollback.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.execution_options(**{SQLITE_BEGIN: IMMEDIATE})
        with connection.begin():
            yield connection


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run every pending migration up to ``revision`` on ``engine``'s database.

    In one transaction (:func:`migrating`): a migration that fails leaves the schema as
    it was before the first.
    """
    cfg = alembic_config()
    with migrating(engine) as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    log.info("database migrated to %s", revision)
