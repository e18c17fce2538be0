"""Pooled PostgreSQL connections checked at checkout (gateway.db): no round trip when fresh.

A connection the server closed while it sat in the pool (a restart, ``pg_terminate_backend``)
is replaced before a request uses it, by a look at its socket; a ping (a round trip) is
spent only on a connection idle for more than ``PING_AFTER_IDLE_S``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from gateway import db as gateway_db
from gateway.db import Database
from tests.gateway.conftest import PG_ADMIN_URL, pg_database


@pytest.fixture
def pg() -> Iterator[tuple[Database, list[int]]]:
    """A PostgreSQL database and the list the pings of its engine are counted in."""
    with pg_database() as url:
        database = Database(url)
        pings: list[int] = []
        do_ping = database.engine.dialect.do_ping

        def counted(dbapi_connection: Any) -> bool:
            pings.append(1)
            return do_ping(dbapi_connection)

        database.engine.dialect.do_ping = counted  # type: ignore[method-assign]
        yield database, pings
        database.dispose()


def _backend_pid(database: Database) -> int:
    with database.session() as s:
        return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_recently_used_connection_is_not_pinged(pg: tuple[Database, list[int]]) -> None:
    database, pings = pg
    first = _backend_pid(database)
    assert [_backend_pid(database) for _ in range(5)] == [first] * 5  # the pooled one
    assert pings == []


def test_a_connection_the_server_closed_is_replaced_before_use(
    pg: tuple[Database, list[int]],
) -> None:
    database, pings = pg
    first = _backend_pid(database)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone() == (True,)
        deadline = time.monotonic() + 10
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (first,)
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, "the backend did not end"
            time.sleep(0.01)
    pid = _backend_pid(database)  # the session's query does not fail
    assert pid != first  # a new connection
    assert pings == []  # seen on the socket, no round trip


def test_a_connection_idle_past_the_limit_is_pinged(
    pg: tuple[Database, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    database, pings = pg
    first = _backend_pid(database)
    monkeypatch.setattr(gateway_db, "PING_AFTER_IDLE_S", 0.0)
    assert _backend_pid(database) == first
    assert pings == [1]
