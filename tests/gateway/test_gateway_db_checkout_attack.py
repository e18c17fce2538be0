"""Every pooled PostgreSQL connection terminated, then concurrent writers (checkout check)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from gateway.db import Database
from gateway.schemas import RmaDraft
from gateway.services.revisions import ensure_site
from gateway.services.rmas import create_rma
from gateway.settings import Settings
from tests.gateway.conftest import PG_ADMIN_URL, pg_available, pg_database

pytestmark = pytest.mark.skipif(not pg_available(), reason="needs PostgreSQL")


@pytest.fixture
def pgdb() -> Iterator[Database]:
    with pg_database() as url:
        database = Database(url)
        database.migrate()
        from tests.gateway.conftest import seed_reasons

        with database.session() as s:
            seed_reasons(s)
            ensure_site(s, "s1")
            s.commit()
        yield database
        database.dispose()


def _draft(n: str) -> RmaDraft:
    return RmaDraft.model_validate(
        {
            "number": n,
            "order_ref": "O-1",
            "reason": "changed_mind",
            "resolution": "refund",
            "lines": [{"sku": "A", "quantity": 1, "unit_price_cents": 1}],
        }
    )


def _run(db: Database, tag: str, threads: int = 5) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(t: int) -> None:
        try:
            barrier.wait(5)
            for i in range(3):
                with db.session() as s:
                    create_rma(s, Settings(site="s1"), _draft(f"{tag}{t}-{i}"))
        except BaseException as exc:
            errors.append(exc)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors


def test_all_pooled_connections_terminated_then_concurrent_requests(pgdb: Database) -> None:
    assert not _run(pgdb, "A")
    name = pgdb.engine.url.database
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
        assert killed and killed[0] >= 1
        deadline = time.monotonic() + 10
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, "the backends did not end"
            time.sleep(0.01)
    assert not _run(pgdb, "B")
