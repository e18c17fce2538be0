"""Gateway ingest through a real broker: acknowledged only once committed; replicas."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from gateway.db import Database
from gateway.models import StationEvent
from gateway.mqtt_bridge import MqttBridge
from protocol import ParcelEvent, Topics, encode

pytestmark = pytest.mark.broker


class FlakySessions:
    """A session factory whose first ``failures`` calls fail like a locked database."""

    def __init__(self, db: Database, failures: int) -> None:
        self.db = db
        self.failures = failures
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise OperationalError("INSERT INTO station_events", {}, Exception("disk I/O error"))
        return self.db.sessions()


@pytest.fixture
def make_bridge(mqtt_broker: Any, site: str) -> Iterator[Callable[..., MqttBridge]]:
    made: list[MqttBridge] = []

    def factory(sessions: Any, **kwargs: Any) -> MqttBridge:
        bridge = MqttBridge(
            host=mqtt_broker.host, port=mqtt_broker.port, site=site, sessions=sessions, **kwargs
        )
        bridge.start()
        made.append(bridge)
        assert bridge.wait_ready(10), "bridge did not subscribe"
        return bridge

    yield factory
    for bridge in made:
        bridge.stop()


def stored(db: Database) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(StationEvent.event_id).order_by(StationEvent.id)))


def test_database_failure_is_retried_and_acknowledged_only_after_commit(
    db: Database,
    make_bridge: Callable[..., MqttBridge],
    probe: Any,
    site: str,
    make_event: Callable[..., ParcelEvent],
    wait: Any,
) -> None:
    bridge = make_bridge(FlakySessions(db, failures=3))
    events = [make_event(station="st1") for _ in range(2)]
    for e in events:
        probe.publish(Topics(site, "st1").event, encode(e))
    wait(lambda: len(stored(db)) == 2, what="both events stored")
    assert stored(db) == [e.event_id for e in events]
    # The PUBACK follows the commit, so the ack count may trail the rows by a moment.
    wait(lambda: bridge.status()["acks"] >= 2, what="both events acknowledged")
    status = bridge.status()
    assert (status["retries"], status["events_ingested"], status["acks"]) == (3, 2, 2)


def test_event_unacknowledged_when_the_gateway_stops_is_redelivered_to_its_session(
    db: Database,
    make_bridge: Callable[..., MqttBridge],
    probe: Any,
    site: str,
    make_event: Callable[..., ParcelEvent],
    wait: Any,
) -> None:
    broken = make_bridge(FlakySessions(db, failures=10**9))
    event = make_event(station="st1")
    probe.publish(Topics(site, "st1").event, encode(event))
    wait(lambda: broken.status()["retries"] >= 2, what="ingest failing")
    broken.stop()
    assert stored(db) == [] and broken.status()["acks"] == 0

    again = make_bridge(db.sessions)  # same client id gateway-{site}: same session
    wait(lambda: stored(db) == [event.event_id], what="redelivered event stored")
    wait(lambda: again.status()["events_ingested"] == 1, what="counted once")
    assert again.status()["events_ingested"] == 1


def test_two_replicas_share_the_ingest_with_nothing_lost_or_doubled(
    db: Database,
    make_bridge: Callable[..., MqttBridge],
    probe: Any,
    site: str,
    make_event: Callable[..., ParcelEvent],
    wait: Any,
) -> None:
    replicas = [
        make_bridge(db.sessions, shared_group="gateways", client_id=f"gateway-{site}-{n}")
        for n in ("a", "b")
    ]
    events = [make_event(station=f"st{i % 3}") for i in range(300)]
    for e in events:
        probe.publish(Topics(site, e.station).event, encode(e))
    wait(lambda: len(stored(db)) == 300, timeout_s=30, what="300 events stored")
    assert sorted(stored(db)) == sorted(e.event_id for e in events)
    # the counters follow the commits: they may trail the rows by a moment
    wait(
        lambda: sum(r.status()["events_ingested"] for r in replicas) == 300,
        what="300 counted",
    )
    per_replica = [r.status()["events_ingested"] for r in replicas]
    assert sum(per_replica) == 300 and min(per_replica) > 0
    assert [r.status()["events_duplicate"] for r in replicas] == [0, 0]
    with db.session() as s:
        assert s.scalar(select(func.count(func.distinct(StationEvent.event_id)))) == 300
