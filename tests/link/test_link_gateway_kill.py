"""A gateway process SIGKILLed right after creating RMAs loses no announcement.

Real Mosquitto, the real gateway (uvicorn, SQLite) and a station link that stays
connected throughout. The first gateway looks at its announcement outbox only once a
minute (``RS_MQTT_ANNOUNCE_POLL_S=60``), so it is killed with every announcement
committed and none published; the restarted one publishes them from the outbox.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.link import StationLink
from edge.store import StationStore
from simulator.procs import GatewayProcess
from simulator.testing import wait_until

pytestmark = pytest.mark.broker

RMAS = 5


@pytest.fixture
def station(tmp_path: Path, mqtt_broker: Any, site: str) -> Iterator[StationLink]:
    link = StationLink(
        site=site,
        station="st1",
        host=mqtt_broker.host,
        port=mqtt_broker.port,
        store=StationStore(tmp_path / "st1.db"),
        sync_retry_s=2.0,  # started before the gateway subscribed: its first ask is unheard
    )
    link.start()
    try:
        yield link
    finally:
        link.stop(publish_offline=False)
        link.store.close()


def pending_announcements(workdir: Path) -> tuple[int, int]:
    """(pending, sent) rows of the gateway's announcement outbox, read from its SQLite file."""
    with sqlite3.connect(workdir / "gateway.db") as db:
        pending = db.execute(
            "SELECT COUNT(*) FROM announcement_outbox WHERE sent_at IS NULL"
        ).fetchone()[0]
        sent = db.execute(
            "SELECT COUNT(*) FROM announcement_outbox WHERE sent_at IS NOT NULL"
        ).fetchone()[0]
    return int(pending), int(sent)


def test_gateway_killed_after_creating_rmas_delivers_them_to_the_connected_station(
    tmp_path: Path, mqtt_broker: Any, site: str, station: StationLink
) -> None:
    workdir = tmp_path / "gateway"
    slow = GatewayProcess(workdir, mqtt_broker.port, site, env={"RS_MQTT_ANNOUNCE_POLL_S": "60"})
    slow.start()
    try:
        wait_until(lambda: station.in_sync, what="station in sync at revision 0")
        with httpx.Client(base_url=slow.url, headers={"X-API-Key": slow.api_key}) as api:
            for i in range(1, RMAS + 1):
                body = {
                    "number": f"K{i}",
                    "order_ref": f"O-K{i}",
                    "reason": "damaged",
                    "resolution": "refund",
                    "lines": [{"sku": "SKU-1", "quantity": 1}],
                }
                r = api.post("/api/v1/rmas", json=body)
                assert r.status_code == 201, r.text
    finally:
        slow.kill()  # SIGKILL: a power cut right after the commits
    assert pending_announcements(workdir) == (RMAS, 0)
    assert station.store.rma_count() == 0

    back = GatewayProcess(workdir, mqtt_broker.port, site)
    back.api_key, back.secret_key = slow.api_key, slow.secret_key
    back.start()
    try:
        wait_until(lambda: station.store.rma_count() == RMAS, what="every RMA at the station")
        wait_until(lambda: pending_announcements(workdir) == (0, RMAS), what="all PUBACKed")
    finally:
        back.stop()
    revisions = [station.store.lookup_rma(f"K{i}") for i in range(1, RMAS + 1)]
    assert [r.revision if r else None for r in revisions] == list(range(1, RMAS + 1))
    assert station.store.rma_revision() == RMAS
    assert station.counters["connects"] == 1  # it never reconnected
