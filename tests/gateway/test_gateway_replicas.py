"""Two gateway processes on one PostgreSQL database (issue 17 item 4): they share the ingest
through an MQTT 5 shared subscription, and the background jobs (webhook delivery, the
announcement outbox) run in one of them only (the advisory-lock leader).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.db import Database
from gateway.services.leader import WORKERS_LOCK_KEY, LeaderLease
from protocol import RmaAnnouncement, Topics, decode, encode
from simulator.load import PRODUCT_GTIN, parcel
from simulator.procs import GatewayProcess
from simulator.testing import wait_until
from tests.gateway.conftest import pg_database
from tests.gateway.test_gateway_credit_acceptance import HookReceiver

pytestmark = pytest.mark.broker

N_RMAS = 30


@pytest.fixture
def replicas(
    tmp_path: Path, mqtt_broker: Any, site: str
) -> Iterator[tuple[list[httpx.Client], HookReceiver]]:
    hooks = HookReceiver()
    with pg_database() as url:
        procs = [
            GatewayProcess(
                tmp_path / name,
                mqtt_broker.port,
                site,
                env={
                    "RS_DATABASE_URL": url,
                    "RS_MQTT_SHARE_GROUP": "gateways",
                    "RS_MQTT_CLIENT_ID": f"gateway-{site}-{name}",
                    "RS_WEBHOOK_URL": hooks.url,
                    "RS_WEBHOOK_SECRET": "whsec_replica-test-secret",
                    "RS_WEBHOOK_POLL_S": "0.05",
                    "RS_BOOTSTRAP_API_KEY": "replica-admin-key-0123456789abcdef",
                },
            )
            for name in ("a", "b")
        ]
        clients: list[httpx.Client] = []
        try:
            for proc in procs:  # one after the other: the first one migrates the database
                proc.start()
                clients.append(
                    httpx.Client(
                        base_url=proc.url,
                        headers={"X-API-Key": "replica-admin-key-0123456789abcdef"},
                        timeout=30,
                    )
                )
            yield clients, hooks
        finally:
            for c in clients:
                c.close()
            for proc in procs:
                proc.stop()
            hooks.server.shutdown()


def test_two_replicas_store_each_event_once_and_send_each_webhook_and_announcement_once(
    replicas: tuple[list[httpx.Client], HookReceiver],
    make_probe: Any,
    site: str,
    wait: Any,
) -> None:
    (a, b), hooks = replicas
    station = make_probe(name="station")
    station.subscribe(Topics(site).rma)
    numbers = [f"R{i:04d}" for i in range(N_RMAS)]
    for i, n in enumerate(numbers):  # created through both replicas
        body = {
            "number": n,
            "order_ref": f"O-{n}",
            "reason": "changed_mind",
            "resolution": "refund",
            "lines": [{"sku": "A", "quantity": 1, "unit_price_cents": 1999, "gtin": PRODUCT_GTIN}],
        }
        assert (a if i % 2 else b).post("/api/v1/rmas", json=body).status_code == 201
    events = [parcel(n, f"st{i % 3}", i + 1) for i, n in enumerate(numbers)]
    for e in [*events, *events[:5]]:  # five redelivered
        station.publish(Topics(site, e.station).event, encode(e))

    def ingested() -> list[dict[str, Any]]:
        return [c.get("/healthz").json()["mqtt_status"] for c in (a, b)]

    wait(
        lambda: sum(s["events_ingested"] + s["events_duplicate"] for s in ingested()) == 35,
        timeout_s=30,
        what="35 events handled",
    )
    counts = ingested()
    assert sum(s["events_ingested"] for s in counts) == N_RMAS
    assert sum(s["events_duplicate"] for s in counts) == 5
    assert min(s["events_ingested"] for s in counts) > 0  # both took a share

    stored = a.get("/api/v1/events", params={"limit": 1000}).json()
    assert sorted(e["event_id"] for e in stored["events"]) == sorted(e.event_id for e in events)
    credits = a.get("/api/v1/credits", params={"limit": 1000}).json()["credits"]
    assert sorted(c["rma_number"] for c in credits) == numbers  # each credited once

    deliveries = a.get("/api/v1/webhooks/deliveries", params={"limit": 1000}).json()
    expected = len(deliveries["deliveries"])
    assert expected >= 2 * N_RMAS  # at least a state change and a credit each
    wait(lambda: len(hooks.got) >= expected, timeout_s=30, what="every webhook delivered")
    sent = Counter((t, json.dumps(d, sort_keys=True)) for t, d in hooks.got)
    assert max(sent.values()) == 1 and len(hooks.got) == expected  # each once
    assert sum(t == "credit.issued" for t, _d in hooks.got) == N_RMAS

    def revisions() -> list[int]:
        return [
            decode(p, RmaAnnouncement).revision
            for p in station.payloads(Topics(site).rma)
            if json.loads(p).get("kind") == "rma"
        ]

    head = a.get("/api/v1/rmas/R0000").json()["revision"]
    wait(lambda: len(set(revisions())) >= N_RMAS, timeout_s=30, what="announcements")
    got = Counter(revisions())
    assert max(got.values()) == 1, got  # published by the leader only
    assert head in got


THIS_DATABASE = " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
"""Advisory locks are per database: the test's own only (other tests' gateways may hold one)."""


def test_one_lease_leads_at_a_time_and_the_next_takes_over_when_it_ends(
    anydb: Database, database_url: str
) -> None:
    other = Database(database_url)
    try:
        first = LeaderLease(anydb.engine, recheck_s=0)
        second = LeaderLease(other.engine, recheck_s=0)
        if anydb.engine.dialect.name == "sqlite":  # one gateway process per file: it leads
            assert (first.held(), second.held()) == (True, True)
            return
        assert (first.held(), second.held(), first.held()) == (True, False, True)
        first.release()
        assert (second.held(), first.held()) == (True, False)
        with anydb.engine.connect() as conn:  # the leader's session ends (a crash, a cut)
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND objid = :key" + THIS_DATABASE
                ),
                {"key": WORKERS_LOCK_KEY},
            )

        def released() -> bool:  # pg_terminate_backend signals: the backend ends soon after
            with anydb.engine.connect() as conn:
                held = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :key"
                        + THIS_DATABASE
                    ),
                    {"key": WORKERS_LOCK_KEY},
                ).scalar_one()
            return held == 0

        wait_until(released, timeout_s=10, what="the terminated leader's lock released")
        assert (first.held(), second.held()) == (True, False)  # the lock went with it
    finally:
        other.dispose()
