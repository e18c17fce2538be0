"""How SQLite transactions begin (gateway.db): ``BEGIN IMMEDIATE`` for a writer that counts.

A writer (:func:`gateway.db.begin_writing`) holds the database's write lock from then to
its commit: another writer waits for it (busy timeout) and then reads what it committed;
readers are not held up. Other transactions keep the sqlite3 driver's BEGIN at their
first write. Savepoints of a writer's transaction are part of it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from gateway.db import Database, begin_writing


@pytest.fixture
def sq(tmp_path: Path) -> Iterator[Database]:
    """A SQLite file database with one table ``t(n)`` holding one row, n = 0."""
    database = Database(f"sqlite:///{tmp_path / 'begin.db'}")
    with database.session() as s:
        s.execute(text("CREATE TABLE t (n INTEGER NOT NULL)"))
        s.execute(text("INSERT INTO t VALUES (0)"))
        s.commit()
    yield database
    database.dispose()


def _locked(database: Database) -> bool:
    """True when a connection of its own cannot take the write lock (without waiting)."""
    raw = sqlite3.connect(str(database.engine.url.database), timeout=0, isolation_level=None)
    try:
        raw.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return True
    finally:
        raw.close()  # (closing rolls back what it began)
    return False


def test_a_writer_holds_the_write_lock_from_begin_writing_to_its_commit(sq: Database) -> None:
    with sq.session() as s:
        assert begin_writing(s) is True
        assert _locked(sq)  # before any statement of its own
        assert s.scalar(text("SELECT n FROM t")) == 0
        assert _locked(sq)
        s.commit()
        assert not _locked(sq)


def test_a_writer_after_reads_of_its_own_takes_the_lock_then(sq: Database) -> None:
    with sq.session() as s:
        assert s.scalar(text("SELECT n FROM t")) == 0  # the driver's: no transaction yet
        assert not _locked(sq)
        assert begin_writing(s) is True
        assert _locked(sq)
        assert begin_writing(s) is True  # again: already held
        s.rollback()
    assert not _locked(sq)


def test_a_writer_that_wrote_first_is_told_so(sq: Database) -> None:
    with sq.session() as s:
        s.execute(text("UPDATE t SET n = 1"))  # the driver began a deferred transaction
        assert begin_writing(s) is False
        s.rollback()
    with sq.session() as s:
        assert s.scalar(text("SELECT n FROM t")) == 0


def test_other_transactions_keep_the_drivers_begin_at_the_first_write(sq: Database) -> None:
    with sq.session() as s:  # a writer first, on the pool's one connection
        begin_writing(s)
        s.commit()
    with sq.session() as s:
        assert s.scalar(text("SELECT n FROM t")) == 0
        assert not _locked(sq)  # a read: no lock, no transaction of SQLite's
        assert s.connection().connection.dbapi_connection.isolation_level == ""  # type: ignore[union-attr]


def test_a_second_writer_waits_and_counts_what_the_first_committed(sq: Database) -> None:
    # both read n and write n + 1: with the lock from the start neither loses an update
    started, seen = threading.Event(), []

    def first() -> None:
        with sq.session() as s:
            begin_writing(s)
            n = s.scalar(text("SELECT n FROM t"))
            started.set()
            time.sleep(0.3)  # the second waits meanwhile
            s.execute(text("UPDATE t SET n = :n"), {"n": n + 1})
            s.commit()

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(5)
    with sq.session() as reader:  # a reader is not held up by the writer
        t0 = time.monotonic()
        assert reader.scalar(text("SELECT n FROM t")) == 0
        assert time.monotonic() - t0 < 0.2
    with sq.session() as s:
        begin_writing(s)  # waits for the first's commit (busy timeout 5 s)
        n = s.scalar(text("SELECT n FROM t"))
        seen.append(n)
        s.execute(text("UPDATE t SET n = :n"), {"n": n + 1})
        s.commit()
    thread.join(5)
    assert seen == [1]
    with sq.session() as s:
        assert s.scalar(text("SELECT n FROM t")) == 2


def test_a_savepoint_of_a_writer_is_part_of_its_transaction(sq: Database) -> None:
    # the driver's own control ran a SAVEPOINT before the first write outside any
    # transaction: the outer rollback kept what the released savepoint wrote
    with sq.session() as s:
        begin_writing(s)
        with s.begin_nested():
            s.execute(text("UPDATE t SET n = 5"))
        with pytest.raises(OperationalError), s.begin_nested():
            s.execute(text("UPDATE nowhere SET n = 6"))
        assert s.scalar(text("SELECT n FROM t")) == 5
        s.rollback()
    with sq.session() as s:
        assert s.scalar(text("SELECT n FROM t")) == 0


def test_on_postgresql_begin_writing_does_nothing() -> None:
    class Pg:
        class dialect:
            name = "postgresql"

    class Session:
        def get_bind(self) -> type[Pg]:
            return Pg

        def connection(self) -> None:
            raise AssertionError("no connection taken")

    assert begin_writing(Session()) is True  # type: ignore[arg-type]
