"""Station status (birth and last will) and the status page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from protocol import (
    CoreStatus,
    ParcelEvent,
    StationAlarm,
    StationHealth,
    StationStatus,
    Topics,
    encode,
)
from tests.gateway.conftest import UNKNOWN_RMA

pytestmark = pytest.mark.broker


def station_state(client: TestClient, station: str) -> str | None:
    for s in client.get("/api/v1/stations").json()["stations"]:
        if s["id"] == station:
            return str(s["state"])
    return None


def test_status_online_then_last_will_offline(
    client: TestClient, make_probe: Callable[..., Any], site: str, wait: Any
) -> None:
    topic = Topics(site, "st1").status
    will = encode(StationStatus(station="st1", state="offline"))
    station = make_probe(will=(topic, will), name="station")
    online = StationStatus(station="st1", state="online", software_version="0.1.0", rma_revision=3)
    station.publish(topic, encode(online), retain=True)
    wait(lambda: station_state(client, "st1") == "online", what="station online")
    [row] = client.get("/api/v1/stations").json()["stations"]
    assert (row["rma_revision"], row["software_version"]) == (3, "0.1.0")
    assert row["last_seen"] is not None

    station.drop()
    wait(lambda: station_state(client, "st1") == "offline", what="last will applied")


def test_status_page_lists_stations_and_lane_counts(
    client: TestClient,
    probe: Any,
    site: str,
    make_event: Callable[..., ParcelEvent],
    wait: Any,
) -> None:
    topics = Topics(site, "st9")
    probe.publish(
        topics.status,
        encode(
            StationStatus(station="st9", state="online", software_version="9.9", rma_revision=7)
        ),
        retain=True,
    )
    for lane in ["rework", "rework", "quarantine"]:  # of RMAs never announced: quarantined
        event = make_event(station="st9", **{**UNKNOWN_RMA, "lane": lane})
        probe.publish(topics.event, encode(event))
    wait(lambda: client.get("/api/v1/events").json()["count"] == 3, what="events ingested")
    wait(lambda: station_state(client, "st9") == "online", what="station online")

    lanes = client.get("/api/v1/lanes").json()
    assert lanes == {
        "stations": [{"station": "st9", "lanes": {"quarantine": 1, "rework": 2}, "total": 3}],
        "total": 3,
    }

    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    assert "<title>Returns line status</title>" in html
    assert '<th scope="row">st9</th>' in html
    assert "✔ Online</span>" in html
    assert '<tr data-lane="quarantine">' in html and '<tr data-lane="rework">' in html
    assert '<td class="num" data-count="today">2</td>' in html
    assert '<td class="num" data-count="total_today">3</td>' in html
    assert "9.9" in html
    assert client.get("/static/status.css").status_code == 200


def test_status_page_when_empty(client: TestClient) -> None:
    html = client.get("/").text
    assert "No station has reported yet." in html
    assert "No parcel has been sorted yet." in html


def test_status_page_shows_an_overloaded_station(
    client: TestClient, probe: Any, site: str, wait: Any
) -> None:
    health = StationHealth(
        alarms={"station_overloaded": StationAlarm(kind="station_overloaded", parcel_id=4)},
        core=CoreStatus(),
    )
    status = StationStatus(station="st4", state="online", software_version="1", health=health)
    probe.publish(Topics(site, "st4").status, encode(status), retain=True)
    wait(lambda: "Station overloaded" in client.get("/").text, what="the alarm on the page")
    html = client.get("/").text
    assert "<strong>Station overloaded</strong> · st4" in html
    assert "a gate could not fire on time; its parcel went to quarantine (late_gate)" in html
