"""Database engine and session factory (SQLite by default, PostgreSQL in production).

For SQLite the engine enables WAL journalling, foreign keys and a busy timeout on every
connection, and allows use from several threads (the API workers and the MQTT thread).
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from gateway.models import Base

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


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
