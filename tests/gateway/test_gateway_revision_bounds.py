"""Revisions beyond what the ``rmas.revision`` column holds (a 32-bit INTEGER).

The API and the protocol accept a revision up to 2^63 - 1 (``?after_revision=``, a
station's ``SyncRequest.after_revision``); PostgreSQL refused such a number in the
comparison (``integer out of range``, a 500 to ``GET /api/v1/rmas``, and no answer to the
station's catch-up), where SQLite compared it. Found by the schema fuzz on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from gateway.db import Database
from gateway.main import create_app
from gateway.schemas import RmaDraft
from gateway.services.catch_up import answer
from gateway.services.rmas import create_rma, list_announcements, list_rmas
from gateway.settings import Settings
from protocol import SyncBatch, SyncRequest, decode

BEYOND = 2**31  # one over the column's largest value


def _draft(number: str) -> RmaDraft:
    body: dict[str, Any] = {
        "number": number,
        "order_ref": f"O-{number}",
        "reason": "changed_mind",
        "resolution": "refund",
        "authorize": True,
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 1999}],
    }
    return RmaDraft.model_validate(body)


def test_revisions_beyond_the_column_read_as_nothing_newer_or_everything(anydb: Database) -> None:
    with anydb.session() as s:
        for n in ("R-1", "R-2"):
            create_rma(s, Settings(site="s1"), _draft(n))
        assert list_rmas(s, after_revision=BEYOND) == []
        assert list_rmas(s, after_revision=2**63 - 1) == []
        assert [r.number for r in list_rmas(s, up_to_revision=2**63 - 1)] == ["R-1", "R-2"]
        assert [a.number for a in list_announcements(s, up_to_revision=BEYOND)] == ["R-1", "R-2"]
        request = SyncRequest(station="st1", request_id="r-1", after_revision=2**40)
        [batch] = [decode(data, SyncBatch) for data in answer(s, "s1", request, 100)]
        assert (batch.announcements, batch.last, batch.head_revision) == ((), True, 2)


def test_the_api_lists_nothing_after_a_revision_beyond_the_column(database_url: str) -> None:
    key = "revision-admin-key-0123456789abcdef"
    settings = Settings(
        env="dev", database_url=database_url, mqtt_port=1, bootstrap_api_key=key, site="s1"
    )
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as client:
        r = client.get("/api/v1/rmas", params={"after_revision": BEYOND})
        assert (r.status_code, r.json()["rmas"]) == (200, [])
