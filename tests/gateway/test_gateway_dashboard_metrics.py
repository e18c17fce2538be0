"""Prometheus /metrics of the gateway and of a station (issue 7)."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from edge.metrics import StationMetrics
from gateway.models import utcnow
from gateway.services.events import ingest_event
from gateway.services.stations import upsert_station
from protocol import DeviceHealth, LinkStatus, ParcelEvent, StationHealth, StationStatus
from tests.gateway.conftest import PROD_SECRET


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.broker
def test_gateway_metrics_from_the_database(
    client: TestClient, make_event: Callable[..., ParcelEvent]
) -> None:
    with client.app.state.db.session() as s:  # type: ignore[attr-defined]
        for lane, reason in [
            ("restock", "matched"),
            ("restock", "matched"),
            ("quarantine", "no_read"),
        ]:
            e = make_event(lane=lane, reason=reason, inducted_at=utcnow() - timedelta(minutes=1))
            ingest_event(s, e, received_at=e.inducted_at + timedelta(seconds=0.3))
        health = StationHealth(
            link=LinkStatus(sync_lag=2, outbox_depth=5),
            devices={"rfid": DeviceHealth(state="failed")},
        )
        upsert_station(s, "site", StationStatus(station="st1", state="degraded", health=health))
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    assert (
        got[("rs_parcels_total", (("lane", "restock"), ("reason", "matched"), ("station", "st1")))]
        == 2
    )
    assert (
        got[
            (
                "rs_parcels_total",
                (("lane", "quarantine"), ("reason", "no_read"), ("station", "st1")),
            )
        ]
        == 1
    )
    assert got[("rs_station_state", (("state", "degraded"), ("station", "st1")))] == 1
    assert got[("rs_station_state", (("state", "online"), ("station", "st1")))] == 0
    assert got[("rs_station_sync_lag", (("station", "st1"),))] == 2
    assert got[("rs_station_outbox_depth", (("station", "st1"),))] == 5
    assert got[("rs_alarms_open", (("kind", "device_down"),))] == 1
    assert got[("rs_rmas_awaiting_decision", ())] == 0
    # each was received 0.3 s after its induction
    assert got[("rs_event_latency_seconds_count", ())] == 3
    assert got[("rs_event_latency_seconds_bucket", (("le", "0.25"),))] == 0
    assert got[("rs_event_latency_seconds_bucket", (("le", "0.5"),))] == 3


def test_gateway_metrics_need_credentials_outside_dev(settings_prod_client: TestClient) -> None:
    assert settings_prod_client.get("/metrics").status_code == 401


@pytest.fixture
def settings_prod_client(tmp_path: object) -> TestClient:
    from gateway.main import create_app
    from gateway.settings import Settings

    s = Settings(
        database_url=f"sqlite:///{tmp_path}/g.db", env="prod", secret_key=PROD_SECRET, mqtt_port=1
    )
    with TestClient(create_app(s)) as c:
        yield c  # type: ignore[misc]


def test_station_metrics_served_over_http() -> None:
    status = {
        "devices": {"rfid": {"state": "failed"}, "scanner": {"state": "ok"}},
        "belt_running": True,
        "degraded": True,
        "alarms": {"jam": {}},
        "link": {"sync_lag": 3, "outbox_depth": 1},
    }
    metrics = StationMetrics("st1", lambda: status)
    metrics.parcel_exited("restock", "matched", 20.0)
    metrics.parcel_exited("restock", "matched", 40.0)
    metrics.parcel_exited("quarantine", "no_read", 300.0)
    for late_ms in (0.05, 1.5, 30.0, 41.0):  # gate firings, ms late
        metrics.gate_fired(late_ms)
    port = metrics.serve(0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            got = samples(r.read().decode())
    finally:
        metrics.close()
    assert got[("rs_station_parcels_total", (("lane", "restock"), ("reason", "matched")))] == 2
    assert got[("rs_station_parcels_total", (("lane", "quarantine"), ("reason", "no_read")))] == 1
    assert got[("rs_station_decision_latency_seconds_count", ())] == 3
    assert got[("rs_station_decision_latency_seconds_bucket", (("le", "0.025"),))] == 1
    assert got[("rs_station_decision_latency_seconds_bucket", (("le", "0.05"),))] == 2
    assert got[("rs_station_decision_latency_seconds_sum", ())] == pytest.approx(0.36)
    lateness = "rs_station_gate_lateness_seconds"
    assert got[(f"{lateness}_count", ())] == 4
    assert [got[(f"{lateness}_bucket", (("le", le),))] for le in ("0.0001", "0.002", "0.04")] == [
        1,
        2,
        3,
    ]
    assert got[("rs_station_sync_lag", ())] == 3
    assert got[("rs_station_outbox_depth", ())] == 1
    assert got[("rs_station_device_up", (("device", "rfid"),))] == 0
    assert got[("rs_station_device_up", (("device", "scanner"),))] == 1
    assert got[("rs_station_belt_running", ())] == 1
    assert got[("rs_station_alarms_active", ())] == 1
