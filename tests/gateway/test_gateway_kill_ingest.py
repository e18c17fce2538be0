"""A gateway SIGKILLed mid-ingest credits every unit exactly once after its restart.

Real Mosquitto (the session fixture), PostgreSQL, and the gateway as a real process
(uvicorn). A station publishes QoS 1 parcel events for RMAs the gateway knows, each
parcel proving (verified by GTIN, sorted to restock) every unit of its RMA; the gateway
is SIGKILLed once some of its batches committed, with more events in flight and the
rest published while it is down; a second process on the same database and broker,
with the same client id (``gateway-{site}``, a persistent session: ``clean_session``
False), takes over. The expected credits come from the RMA lines this test created.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.db import Database
from gateway.models import Credit, RmaLineRecord, StationEvent, WebhookDelivery
from gateway.schemas import RmaDraft
from gateway.services.rmas import create_rma
from gateway.settings import Settings
from protocol import Evidence, ParcelEvent, Topics, UnitReceipt, encode
from simulator.load import PRODUCT_GTIN, parcel
from simulator.procs import GatewayProcess
from simulator.testing import wait_until
from tests.gateway.conftest import pg_database

pytestmark = [pytest.mark.broker, pytest.mark.e2e]

RMAS = 300
LIVE = 200  # events published to the first gateway; the rest while it is down
KILL_AT = 80  # events committed before the SIGKILL
REPEATS = 20  # early events the station publishes a second time (its own redelivery)
OTHER_GTIN = "5901234123457"


def lines_of(i: int) -> list[dict[str, Any]]:
    """RMA ``i``'s lines: one unit of A and two of B, prices varying with ``i`` (cents)."""
    return [
        {"sku": "A", "quantity": 1, "unit_price_cents": 1000 + i, "gtin": PRODUCT_GTIN},
        {"sku": "B", "quantity": 2, "unit_price_cents": 500 + 3 * i, "gtin": OTHER_GTIN},
    ]


def parcel_of(number: str, i: int) -> ParcelEvent:
    """A parcel of RMA ``number`` proving each of its units by its line's GTIN, restocked."""
    units = [
        UnitReceipt(
            line_no=line_no,
            sku=line["sku"],
            unit=unit,
            evidence=Evidence.GTIN,
            verified=True,
            identifier=str(line["gtin"]).zfill(14),
        )
        for line_no, line in enumerate(lines_of(i), start=1)
        for unit in range(1, line["quantity"] + 1)
    ]
    return parcel(
        number, "st1", i + 1, tuple(units), inducted_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    )


def stored_events(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count(StationEvent.id))) or 0)


def bridge_status(proc: GatewayProcess) -> dict[str, Any]:
    """The MQTT bridge counters of a running gateway process (its ``/healthz``)."""
    body = httpx.get(f"{proc.url}/healthz", headers={"X-API-Key": proc.api_key}, timeout=10)
    status: dict[str, Any] = body.json()["mqtt_status"]
    return status


def test_gateway_killed_mid_ingest_credits_every_unit_once_after_restart(
    tmp_path: Path, mqtt_broker: Any, site: str, make_probe: Callable[..., Any]
) -> None:
    numbers = [f"K{i:04d}" for i in range(RMAS)]
    # the reason is the merchant's fault: 100 % of what was paid, no restocking fee
    expected_cents = sum(
        line["quantity"] * line["unit_price_cents"] for i in range(RMAS) for line in lines_of(i)
    )
    expected_units = sorted(
        (n, line_no, unit)
        for i, n in enumerate(numbers)
        for line_no, line in enumerate(lines_of(i), start=1)
        for unit in range(1, line["quantity"] + 1)
    )
    events = [parcel_of(n, i) for i, n in enumerate(numbers)]
    with pg_database() as url:
        env = {
            "RS_DATABASE_URL": url,
            # an endpoint, so every credit queues its webhook in the outbox (the delivery
            # worker's own tests deliver them; nothing listens here)
            "RS_WEBHOOK_URL": "http://127.0.0.1:9/hook",
            "RS_WEBHOOK_SECRET": secrets.token_urlsafe(32),
        }
        # small batches, so several commit before the kill and some are in flight at it
        first = GatewayProcess(
            tmp_path / "gw1", mqtt_broker.port, site, env={**env, "RS_MQTT_BATCH_MAX": "10"}
        )
        first.start()  # migrates the database and seeds the reasons
        db = Database(url)
        try:
            settings = Settings(env="dev", database_url=url, site=site, sites=[site])
            with db.session() as s:
                for i, n in enumerate(numbers):
                    draft = RmaDraft.model_validate(
                        {
                            "number": n,
                            "order_ref": f"O-{n}",
                            "reason": "defective",
                            "resolution": "refund",
                            "lines": lines_of(i),
                        }
                    )
                    create_rma(s, settings, draft, actor="api-key:test")
            station = make_probe(name="st1")
            topic = Topics(site, "st1").event
            try:
                for event in events[:LIVE]:
                    station.publish(topic, encode(event))  # QoS 1, PUBACKed by the broker
                wait_until(lambda: stored_events(db) >= KILL_AT, timeout_s=30, what="batches in")
                first.kill()  # SIGKILL: mid-stream, the rest of the batches queued or in flight
            finally:
                first.kill()
            at_kill = stored_events(db)
            assert KILL_AT <= at_kill < LIVE, at_kill
            for event in events[LIVE:]:  # published while no gateway is connected
                station.publish(topic, encode(event))
            for event in events[:REPEATS]:  # a station redelivering, into the queued session
                station.publish(topic, encode(event))

            back = GatewayProcess(tmp_path / "gw2", mqtt_broker.port, site, env=env)
            back.start()  # the same client id gateway-{site}: the session the broker kept
            try:
                wait_until(
                    lambda: stored_events(db) == RMAS, timeout_s=30, what="every event stored"
                )
                # its counters follow the commits: they may trail the rows by a moment
                wait_until(
                    lambda: bridge_status(back)["events_ingested"] == RMAS - at_kill,
                    what="the rest counted by the second gateway",
                )
                status = bridge_status(back)
            finally:
                back.stop()
            with db.session() as s:
                event_ids = sorted(s.scalars(select(StationEvent.event_id)))
                credited = sorted(
                    tuple(row)
                    for row in s.execute(
                        select(Credit.rma_number, RmaLineRecord.line_no, Credit.unit_no).join(
                            RmaLineRecord, RmaLineRecord.id == Credit.rma_line_id
                        )
                    )
                )
                total = s.scalar(select(func.sum(Credit.amount_cents)))
                hook_rows = sorted(
                    (
                        d.payload["data"]["rma_number"],
                        d.payload["data"]["line_no"],
                        d.payload["data"]["unit"],
                    )
                    for d in s.scalars(
                        select(WebhookDelivery).where(WebhookDelivery.event_type == "credit.issued")
                    )
                )
        finally:
            db.dispose()
    assert event_ids == sorted(e.event_id for e in events)  # each once
    # the station's repeats, and whatever the first had committed but not yet acknowledged
    assert status["events_duplicate"] >= REPEATS, status
    assert credited == expected_units  # each unit once: 900 credits
    assert total == expected_cents  # 913_950 cents
    assert hook_rows == expected_units  # one credit.issued outbox row per credit
