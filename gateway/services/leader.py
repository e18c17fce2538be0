"""Which gateway replica runs the once-per-cluster background jobs.

Several gateway processes may serve one PostgreSQL database (they share the ingest through
MQTT 5 shared subscriptions). The background jobs (webhook delivery, RMA expiry, customer
e-mails, photo retention, publishing the announcement outbox) must run in one of them
only. :class:`LeaderLease` holds a PostgreSQL session-level advisory lock
(``pg_try_advisory_lock``, https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADVISORY-LOCKS)
on a connection of its own: the replica holding it is the leader until that connection
ends (process exit, crash, network loss: the server drops the lock with the session), and
then the next replica that asks takes it over. On SQLite there is one gateway process per
database file, and it always leads.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

#: the advisory lock key of the background jobs: a fixed 32-bit number from their name
WORKERS_LOCK_KEY = zlib.crc32(b"returns-sorter:gateway-workers")
RECHECK_S = 1.0


class LeaderLease:
    """The advisory lock that makes one replica the leader; ask :meth:`held` each round.

    Args:
        engine: the gateway's engine; on PostgreSQL one connection of its pool is kept
            for the lock while it is held.
        key: the advisory lock key (64-bit signed integer).
        recheck_s: how long an answer of :meth:`held` stands before the database is asked
            again, s (the announce thread asks ten times a second); 0: every time.

    Thread-safe: every worker thread may call :meth:`held`.

    Raises:
        ValueError: when ``recheck_s`` < 0.
    """

    def __init__(
        self, engine: Engine, key: int = WORKERS_LOCK_KEY, *, recheck_s: float = RECHECK_S
    ) -> None:
        if not recheck_s >= 0:
            raise ValueError("recheck_s must be >= 0")
        self._engine = engine
        self._key = key
        self._recheck_s = recheck_s
        self._asked_at = float("-inf")  # monotonic s of the last answer from the database
        self._answer = False
        self._single = engine.dialect.name != "postgresql"
        self._lock = threading.Lock()
        self._conn: Connection | None = None

    def held(self) -> bool:
        """True when this process is the leader now (taking the lock when it is free).

        At most every ``recheck_s`` the database is asked: a held lock is checked with a
        round trip on its connection (when that connection is gone the lock is lost with
        it, and it is asked for again at once), a free one is tried. A database that does
        not answer means not leading (False), never an exception.
        """
        if self._single:
            return True
        with self._lock:
            now = time.monotonic()
            if now - self._asked_at < self._recheck_s:
                return self._answer
            self._answer = self._ask()
            self._asked_at = time.monotonic()
            return self._answer

    def _ask(self) -> bool:
        """Ask the database (the caller holds ``self._lock``)."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                self._conn.commit()
                return True
            except SQLAlchemyError:
                log.warning("leader lease lost with its connection key=%d", self._key)
                self._drop()
        try:
            conn = self._engine.connect()
        except SQLAlchemyError as exc:
            log.warning("leader lease: database unavailable: %r", exc)
            return False
        try:
            got = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}).scalar()
            )
            conn.commit()  # keep the connection idle (not in a transaction) while held
        except SQLAlchemyError as exc:
            log.warning("leader lease: lock not asked: %r", exc)
            conn.close()
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        log.info("leader lease taken: this replica runs the background jobs")
        return True

    def release(self) -> None:
        """Give the lock back (at shutdown), so another replica leads at once."""
        with self._lock:
            if self._conn is None:
                return
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
                self._conn.commit()
            except SQLAlchemyError:
                log.warning("leader lease: unlock failed; it ends with the connection")
            self._drop()
            self._answer, self._asked_at = False, float("-inf")
            log.info("leader lease released")

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # never back to the pool: the lock must end with it
                conn.close()
            except SQLAlchemyError:
                pass
