"""The gateway survives a broker that is down at start-up and one that restarts under it."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.main import create_app
from gateway.settings import Settings
from protocol import ParcelEvent, Topics, encode
from tests.gateway.conftest import UNKNOWN_RMA

ADMIN_KEY = "test-admin-key-0123456789abcdef"

pytestmark = pytest.mark.broker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_broker_down_at_start_then_restarted(
    tmp_path: Path,
    site: str,
    mosquitto: Callable[..., Any],
    make_probe: Callable[..., Any],
    make_event: Callable[..., ParcelEvent],
    rma_body: Callable[..., dict[str, Any]],
    wait: Any,
) -> None:
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'gw.db'}",
        mqtt_port=port,
        site=site,
        bootstrap_api_key=ADMIN_KEY,
    )
    app = create_app(settings)
    with TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as client:
        bridge = app.state.bridge
        # no broker: the API still works, health says so
        assert client.post("/api/v1/rmas", json=rma_body("R1")).status_code == 201
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["mqtt"] is False and health.json()["db"] is True

        broker = mosquitto(port=port)
        assert bridge.wait_ready(20), "bridge did not connect once the broker came up"
        assert client.get("/healthz").status_code == 200

        broker.stop()
        wait(lambda: not bridge.connected, timeout_s=20, what="bridge notices the outage")
        broker.start()
        assert bridge.wait_ready(20), "bridge did not resubscribe after the restart"

        station = make_probe(name="station", port=port)
        event = make_event(station="st1", **UNKNOWN_RMA)
        station.publish(Topics(site, "st1").event, encode(event))
        wait(lambda: client.get("/api/v1/events").json()["count"] == 1, what="event after restart")
        assert bridge.status()["connects"] == 2
