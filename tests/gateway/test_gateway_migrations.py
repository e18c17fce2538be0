"""Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from gateway.db import Database, make_engine
from gateway.migrate import alembic_config, migrating, upgrade
from gateway.models import Base


def test_migrations_match_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.migrate()
        db.migrate()  # idempotent: already at head
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
            tables = set(inspect(conn).get_table_names())
        assert diff == []
        assert tables == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        db.dispose()


def test_a_migration_failing_halfway_leaves_the_schema_as_it_was(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        with pytest.raises(RuntimeError), migrating(engine) as connection:
            connection.exec_driver_sql("CREATE TABLE half (x INTEGER)")
            connection.exec_driver_sql("CREATE INDEX ix_half_x ON half (x)")
            raise RuntimeError("the migration's next step failed")
        with engine.connect() as connection:
            names = [r[0] for r in connection.exec_driver_sql("SELECT name FROM sqlite_master")]
        assert names == []
        upgrade(engine)  # and a whole upgrade commits
        with engine.connect() as connection:
            version = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            assert (
                version.scalar() == ScriptDirectory.from_config(alembic_config()).get_current_head()
            )
    finally:
        engine.dispose()
