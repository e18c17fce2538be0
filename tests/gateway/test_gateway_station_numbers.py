"""Numbers a station reports beyond a 32-bit column, on both backends.

The protocol bounds a station's numbers at 2^63 - 1 (:data:`protocol.messages.INT64_MAX`);
where such a number reached a 32-bit INTEGER column PostgreSQL refused the write
(``integer out of range``) and the message was dead-lettered, while SQLite stored it:

- ``StationStatus.rma_revision`` -> ``stations.rma_revision``: the gateway never issues a
  revision above :data:`gateway.models.REVISION_MAX`, so a claim beyond it is clamped to
  it (the rest of the status, its alarms included, is kept).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from gateway.db import Database
from gateway.models import REVISION_MAX, Alarm, DeadLetter, Station
from gateway.mqtt_bridge import MqttBridge
from gateway.services.dashboard import station_rows
from gateway.services.stations import mirrored_revision, upsert_station
from protocol import StationHealth, StationStatus, Topics, encode
from simulator.testing import start_bridge

INT64_MAX = 2**63 - 1


def _status(rma_revision: int, **health: Any) -> StationStatus:
    return StationStatus(
        station="st1",
        state="online",
        rma_revision=rma_revision,
        health=StationHealth(**health),
    )


@pytest.mark.parametrize("claimed", [REVISION_MAX + 1, 2**40, INT64_MAX])
def test_a_revision_beyond_any_the_gateway_issues_is_stored_clamped(
    anydb: Database, claimed: int
) -> None:
    with anydb.session() as s:
        upsert_station(s, "s1", _status(claimed, estop_engaged=True))
    with anydb.session() as s:
        station = s.get(Station, "st1")
        assert station is not None
        assert (station.state, station.rma_revision) == ("online", REVISION_MAX)
        assert station.health.estop_engaged
        assert [a.kind for a in s.scalars(select(Alarm))] == ["estop"]
        [row] = station_rows(s)
        assert (row["rma_revision"], row["sync_lag"]) == (REVISION_MAX, 0)
        # the next status, within the bound, is mirrored as it is
        upsert_station(s, "s1", _status(7))
    with anydb.session() as s:
        station = s.get(Station, "st1")
        assert station is not None and station.rma_revision == 7


def test_mirrored_revision_keeps_every_revision_the_gateway_can_issue() -> None:
    assert [mirrored_revision(_status(n)) for n in (0, 1, REVISION_MAX)] == [0, 1, REVISION_MAX]
    assert mirrored_revision(_status(REVISION_MAX + 1)) == REVISION_MAX


@pytest.fixture
def bridge_on(mqtt_broker: Any, site: str) -> Iterator[Callable[[Database], MqttBridge]]:
    made: list[MqttBridge] = []

    def start(db: Database) -> MqttBridge:
        bridge = start_bridge(mqtt_broker.host, mqtt_broker.port, site, db.sessions)
        made.append(bridge)
        return bridge

    yield start
    for bridge in made:
        bridge.stop()


@pytest.mark.broker
def test_a_status_claiming_a_revision_beyond_the_column_is_not_dead_lettered(
    anydb: Database,
    bridge_on: Callable[[Database], MqttBridge],
    probe: Any,
    site: str,
    wait: Any,
) -> None:
    bridge = bridge_on(anydb)
    probe.publish(Topics(site, "st1").status, encode(_status(2**40)))
    handled = ("statuses", "dead_letters")
    wait(lambda: sum(bridge.status()[k] for k in handled) >= 1, what="the status handled")
    assert (bridge.status()["statuses"], bridge.status()["dead_letters"]) == (1, 0)
    with anydb.session() as s:
        station = s.get(Station, "st1")
        assert station is not None
        assert (station.site, station.state, station.rma_revision) == (site, "online", REVISION_MAX)
        assert list(s.scalars(select(DeadLetter))) == []
