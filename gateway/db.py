"""Database engine and session factory (SQLite by default, PostgreSQL in production).

For SQLite the engine enables WAL journalling, foreign keys and a busy timeout on every
connection, and allows use from several threads (the API workers and the MQTT thread).
A writer that counts before it writes begins with ``BEGIN IMMEDIATE``, the write lock
(:func:`begin_writing`); other transactions keep the sqlite3 driver's own BEGIN at their
first write (:func:`_sqlite_begin`).
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from gateway.models import Base

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5000

#: ``Connection`` execution option: how SQLite begins the connection's transaction
SQLITE_BEGIN = "rs_sqlite_begin"
#: its value for a writer that counts before it writes: ``BEGIN IMMEDIATE``
IMMEDIATE = "IMMEDIATE"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """The engine's ``begin`` listener on SQLite: a writer's ``BEGIN IMMEDIATE``.

    A connection with the :data:`SQLITE_BEGIN` execution option :data:`IMMEDIATE`
    (:func:`begin_writing`) begins its transaction with ``BEGIN IMMEDIATE``
    (:func:`_begin_immediate`). Any other keeps the sqlite3 driver's own transaction
    control (``isolation_level`` ``""``): it begins a deferred transaction only before
    the first INSERT, UPDATE or DELETE, its reads before that are each their own, and
    its write waits for the write lock up to the busy timeout. Readers never wait
    for a writer (WAL), and a transaction that reads, then writes (e.g. a transition
    checked by its revision, or a webhook round that posts between its read and its
    write) is not refused for another writer's commit in between, as a deferred BEGIN
    at its first read would have it ("database is locked" at once, SQLITE_BUSY_SNAPSHOT:
    the busy timeout does not help a transaction whose snapshot is out of date).
    """
    if conn.get_execution_options().get(SQLITE_BEGIN) == IMMEDIATE:
        _begin_immediate(conn)
        return
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection is not None and dbapi_connection.isolation_level is None:
        dbapi_connection.isolation_level = ""  # after a writer: the driver's control again


def _begin_immediate(conn: Connection) -> None:
    """Take SQLite's write lock now: ``BEGIN IMMEDIATE``, emitted by SQLAlchemy.

    SQLAlchemy's recipe for the sqlite3 driver (SQLite dialect documentation,
    "Serializable isolation / Savepoints / Transactional DDL", now "Transactions with
    SQLite and the sqlite3 driver", "Using SQLAlchemy to emit BEGIN in lieu of SQLite's
    transaction control"): the driver's ``isolation_level`` is set to None (it emits no
    BEGIN of its own; its ``commit()`` and ``rollback()`` still end the transaction) and
    the BEGIN is ours, here ``BEGIN IMMEDIATE``: it waits for the write lock up to the
    busy timeout, then holds it until the commit or rollback, so every statement of the
    transaction, its reads and SAVEPOINTs included, is inside it and what it counts
    stays true until it commits. (A deferred transaction that read first could not
    take the lock later once another writer committed: SQLITE_BUSY at once.)
    """
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection is not None and not dbapi_connection.in_transaction:
        # (with a transaction open, None would commit it: BEGIN below refuses instead)
        dbapi_connection.isolation_level = None
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def begin_writing(session: Session) -> bool:
    """Make ``session``'s transaction a writer's that counts before it writes.

    SQLite: the transaction holds the database's write lock from now until its commit
    or rollback (``BEGIN IMMEDIATE``, :func:`_begin_immediate`, waiting up to the busy
    timeout), so writers that count rows and then write on what they counted (an RMA's
    creation, an order update, an event's units) take turns, and each counts what the
    one before committed. Call it before the transaction's first write: its reads
    before were each their own (the driver's autocommit), so nothing it read is held.
    Later transactions of the session are readers again unless it is called again.
    PostgreSQL (and any other database): nothing; writers lock the rows they count
    (e.g. :func:`gateway.services.orders.lock_order`).

    Returns:
        True when the transaction holds the write lock (or needs none of this); False
        when it wrote already (the driver began a deferred transaction at that write:
        the lock is held only from then).
    """
    if session.get_bind().dialect.name != "sqlite":
        return True
    if session.get_transaction() is None:  # nothing begun: the connection begins so
        session.connection(execution_options={SQLITE_BEGIN: IMMEDIATE})
        return True
    conn = session.connection()
    if conn.get_execution_options().get(SQLITE_BEGIN) == IMMEDIATE:
        return True
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection is None or dbapi_connection.in_transaction:
        return False
    _begin_immediate(conn)
    conn.execution_options(**{SQLITE_BEGIN: IMMEDIATE})  # (in place) taken: not twice
    return True


#: a pooled PostgreSQL connection idle for longer than this (s) is pinged (a round trip)
#: when checked out; one used more recently only has its socket looked at
PING_AFTER_IDLE_S = 10.0
_CHECKED_IN = "rs_checked_in"  # ``ConnectionRecord.info`` key: monotonic time of check-in


def _mark_checked_in(_dbapi_connection: Any, record: Any, *_: Any) -> None:
    record.info[_CHECKED_IN] = time.monotonic()


def _check_on_checkout(engine: Engine) -> Any:
    """The pool's ``checkout`` listener that refuses a dead PostgreSQL connection.

    SQLAlchemy then opens another one (up to three times; "Disconnect Handling -
    Pessimistic", custom checkout, in its pooling documentation). A connection idle for
    more than :data:`PING_AFTER_IDLE_S` is pinged, as ``pool_pre_ping`` pings every one
    (a firewall or load balancer may have dropped it without a word). One used more
    recently is looked at without a round trip: psycopg holds it closed or broken, or
    its socket has something to read while nothing was asked, which is the server's
    farewell (a restart or ``pg_terminate_backend`` sends a FATAL error and closes; a
    crash closes): such a connection is replaced before any request uses it. A pooled
    connection the server kept has nothing to read.
    """
    dialect = engine.dialect

    def check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_s = time.monotonic() - record.info.get(_CHECKED_IN, float("-inf"))
        if dbapi_connection.closed or dbapi_connection.broken:
            raise DisconnectionError("connection closed or broken while pooled")
        if idle_s > PING_AFTER_IDLE_S:
            try:
                dialect.do_ping(dbapi_connection)
            except Exception as exc:
                raise DisconnectionError(f"ping failed: {exc}") from exc
            return
        try:
            poller = select.poll()
            poller.register(dbapi_connection.pgconn.socket, select.POLLIN | select.POLLPRI)
            readable = bool(poller.poll(0))
        except Exception as exc:  # no socket any more (psycopg raises): not usable
            raise DisconnectionError(f"connection unusable: {exc}") from exc
        if readable:
            raise DisconnectionError("the server closed the connection while it was pooled")

    return check


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` (any SQLAlchemy URL).

    For a SQLite file the parent directory is created when missing. ``sqlite://`` (in
    memory) uses one shared connection so every thread sees the same database.

    Raises:
        sqlalchemy.exc.ArgumentError: when the URL cannot be parsed.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg":
        # server-side parameters ($1, $2, ...) through psycopg's raw cursor: psycopg does
        # not parse each statement's text for %(name)s placeholders then, which cost
        # more than the database itself for the batched ingest's multi-row INSERTs
        import psycopg

        # instead of pool_pre_ping (a round trip per checkout, ~0.15 ms of every
        # transaction): a ping after PING_AFTER_IDLE_S idle, a look at the socket before
        engine = create_engine(
            url,
            paramstyle="numeric_dollar",
            connect_args={"cursor_factory": psycopg.RawCursor},
        )
        event.listen(engine, "connect", _mark_checked_in)
        event.listen(engine, "checkin", _mark_checked_in)
        event.listen(engine, "checkout", _check_on_checkout(engine))
        return engine
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if database in ("", ":memory:"):
        kwargs["poolclass"] = StaticPool
    elif not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


class Database:
    """An engine plus its session factory; one per gateway process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (what the app does at start)."""
        from gateway.migrate import upgrade

        upgrade(self.engine)
        log.info("database ready url=%s", self.engine.url.render_as_string(hide_password=True))

    def create_all(self) -> None:
        """Create missing tables straight from the models (tests and tools; the app migrates)."""
        Base.metadata.create_all(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session that is rolled back on error and always closed."""
        session = self.sessions()
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> bool:
        """Return True when a trivial query succeeds."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            log.exception("database ping failed")
            return False
        return True

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
