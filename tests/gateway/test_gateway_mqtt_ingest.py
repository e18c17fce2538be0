"""Gateway ingest through a real broker: acknowledged only once committed; replicas."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, OperationalError

from gateway import mqtt_bridge
from gateway.db import Database
from gateway.models import Credit, DeadLetter, Rma, RmaLineRecord, StationEvent
from gateway.mqtt_bridge import MqttBridge
from gateway.schemas import RmaDraft
from gateway.services import credits
from gateway.services import events as events_service
from gateway.services.rma_writer import StaleRma
from gateway.services.rmas import create_rma
from protocol import ParcelEvent, StationStatus, Topics, encode
from simulator.load import PRODUCT_GTIN, parcel
from simulator.testing import start_bridge
from tests.gateway.conftest import UNKNOWN_RMA
from tests.gateway.test_gateway_returns import CFG

pytestmark = pytest.mark.broker


class FlakySessions:
    """A session factory whose first ``failures`` calls from the ingest thread fail.

    They fail like a locked database; the announce thread's calls pass through (it
    retries on its own schedule, and is not what these tests count).
    """

    def __init__(self, db: Database, failures: int) -> None:
        self.db = db
        self.failures = failures
        self.calls = 0

    def __call__(self) -> Any:
        if threading.current_thread().name != "mqtt-ingest":
            return self.db.sessions()
        self.calls += 1
        if self.calls <= self.failures:
            raise OperationalError("INSERT INTO station_events", {}, Exception("disk I/O error"))
        return self.db.sessions()


@pytest.fixture
def make_bridge(mqtt_broker: Any, site: str) -> Iterator[Callable[..., MqttBridge]]:
    made: list[MqttBridge] = []

    def factory(sessions: Any, **kwargs: Any) -> MqttBridge:
        bridge = start_bridge(mqtt_broker.host, mqtt_broker.port, site, sessions, **kwargs)
        made.append(bridge)
        return bridge

    yield factory
    for bridge in made:
        bridge.stop()


def fail_ingest(monkeypatch: pytest.MonkeyPatch, fail: Callable[[ParcelEvent], None]) -> None:
    """Make the crediting of an event raise where ``fail(event)`` raises, on both paths.

    The set-based batch (:func:`events_service.credit_batched`) and the one-by-one
    fallback (:func:`events_service.after_ingest`); otherwise each does its real work.
    """
    real_batched, real_hook = events_service.credit_batched, events_service.after_ingest

    def batched(session: Any, settings: Any, rma: Any, event: ParcelEvent, *a: Any) -> None:
        fail(event)
        real_batched(session, settings, rma, event, *a)

    def hook(session: Any, event: ParcelEvent) -> None:
        fail(event)
        real_hook(session, event)

    monkeypatch.setattr(events_service, "credit_batched", batched)
    monkeypatch.setattr(events_service, "after_ingest", hook)


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
    events = [make_event(station="st1", **UNKNOWN_RMA) for _ in range(2)]
    for e in events:
        probe.publish(Topics(site, "st1").event, encode(e))
    wait(lambda: len(stored(db)) == 2, what="both events stored")
    assert stored(db) == [e.event_id for e in events]
    # The PUBACK follows the commit, so the ack count may trail the rows by a moment.
    wait(lambda: bridge.status()["acks"] >= 2, what="both events acknowledged")
    status = bridge.status()
    assert (status["retries"], status["events_ingested"], status["acks"]) == (3, 2, 2), status


def dead_letters(db: Database) -> list[tuple[str, bytes, str]]:
    with db.session() as s:
        rows = s.scalars(select(DeadLetter).order_by(DeadLetter.id))
        return [(r.topic, bytes(r.payload), r.error) for r in rows]


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (OverflowError("Python int too large to convert to SQLite INTEGER"), "OverflowError"),
        (ValueError("bad value"), "ValueError"),
    ],
)
def test_poison_message_is_dead_lettered_and_does_not_block_the_ingest(
    db: Database,
    make_bridge: Callable[..., MqttBridge],
    probe: Any,
    site: str,
    make_event: Callable[..., ParcelEvent],
    wait: Any,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    text: str,
) -> None:
    poison, good = (
        make_event(station="st1", **UNKNOWN_RMA),
        make_event(station="st1", **UNKNOWN_RMA),
    )

    def fail(event: ParcelEvent) -> None:
        if event.event_id == poison.event_id:
            raise error

    fail_ingest(monkeypatch, fail)
    bridge = make_bridge(db.sessions)
    topic = Topics(site, "st1").event
    probe.publish(topic, encode(poison))
    probe.publish(topic, encode(good))
    wait(lambda: stored(db) == [good.event_id], what="the event behind the poison stored")
    # acknowledged once stored or dead-lettered: the dead letter follows the batch's commit
    wait(lambda: bridge.status()["acks"] >= 2, what="both acknowledged")
    assert dead_letters(db) == [(topic, encode(poison), f"{text}: {error}")]
    status = bridge.status()
    assert (status["retries"], status["poison"], status["dead_letters"]) == (0, 1, 1), status
    assert (status["events_ingested"], status["acks"]) == (1, 2), status


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("parcel_id", 2**63, "Input should be less than or equal to 9223372036854775807"),
        # SQLite stored it; PostgreSQL failed the batch's set-based ingest on it (every
        # event of the batch then ingested one by one) and dead-lettered it as poison
        ("barcode", "AB\u000012", "NUL character (U+0000) not allowed"),
    ],
)
def test_event_refused_by_the_contract_is_dead_lettered_alone(
    db: Database,
    make_bridge: Callable[..., MqttBridge],
    probe: Any,
    site: str,
    make_event: Callable[..., ParcelEvent],
    wait: Any,
    field: str,
    value: object,
    why: str,
) -> None:
    bridge = make_bridge(db.sessions)
    body = json.loads(encode(make_event(station="st1", **UNKNOWN_RMA)))
    body[field] = value
    poison = json.dumps(body).encode()
    good = make_event(station="st1", **UNKNOWN_RMA)
    topic = Topics(site, "st1").event
    probe.publish(topic, poison)
    probe.publish(topic, encode(good))
    wait(lambda: stored(db) == [good.event_id], what="the next event stored")
    wait(lambda: bridge.status()["acks"] >= 2, what="both acknowledged")
    assert dead_letters(db) == [(topic, poison, f"invalid ParcelEvent: {field}: {why}")]
    assert (bridge.status()["retries"], bridge.status()["poison"]) == (0, 0)


def test_transient_errors_are_transient_and_value_errors_are_not() -> None:
    locked = OperationalError("INSERT", {}, Exception("database is locked"))
    assert mqtt_bridge.is_transient(locked)
    assert mqtt_bridge.is_transient(ConnectionRefusedError())
    assert not mqtt_bridge.is_transient(OverflowError("int too large"))
    assert not mqtt_bridge.is_transient(ValueError("bad"))
    assert not mqtt_bridge.is_transient(DataError("INSERT", {}, Exception("bigint out of range")))


def test_event_unacknowledged_when_the_gateway_stops_is_redelivered_to_its_session(
    db: Database,
    make_bridge: Callable[..., MqttBridge],
    probe: Any,
    site: str,
    make_event: Callable[..., ParcelEvent],
    wait: Any,
) -> None:
    broken = make_bridge(FlakySessions(db, failures=10**9))
    event = make_event(station="st1", **UNKNOWN_RMA)
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
    events = [make_event(station=f"st{i % 3}", **UNKNOWN_RMA) for i in range(300)]
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


def test_status_page_shows_sync_lag_and_birth_keeps_config_hash(
    client: Any, probe: Any, site: str, rma_body: Callable[..., dict[str, Any]], wait: Any
) -> None:
    for n in ("R1", "R2", "R3"):
        assert client.post("/api/v1/rmas", json=rma_body(n)).status_code == 201
    birth = StationStatus(
        station="st1", state="online", rma_revision=1, software_version="9.9", config_hash="cafe"
    )
    probe.publish(Topics(site, "st1").status, encode(birth))
    wait(lambda: client.get("/api/v1/stations").json()["stations"], what="station recorded")
    [station] = client.get("/api/v1/stations").json()["stations"]
    assert station["config_hash"] == "cafe"
    assert station["health"]["devices"] == {} and station["health"]["core"] is None
    page = client.get("/").text
    assert '<th scope="col" class="num">Sync lag</th>' in page
    # head revision 3, station applied 1: two behind
    row = re.search(r'<tr data-station="st1">(.*?)</tr>', page, re.S)
    assert row is not None
    assert re.findall(r'<td class="num">(\d+)</td>', row.group(1)) == ["2"]


def test_one_batch_commits_every_event_with_its_credit_poison_and_stale_apart(
    anydb: Database,
    make_bridge: Callable[..., MqttBridge],
    probe: Any,
    site: str,
    wait: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(credits._Config, "settings", CFG)  # restored at teardown
    numbers = [f"B{i:04d}" for i in range(40)]
    with anydb.session() as s:
        for n in numbers:
            draft = RmaDraft.model_validate(
                {
                    "number": n,
                    "order_ref": f"O-{n}",
                    "reason": "changed_mind",
                    "resolution": "refund",
                    "lines": [
                        {"sku": "A", "quantity": 1, "unit_price_cents": 1999, "gtin": PRODUCT_GTIN}
                    ],
                }
            )
            # RMAs of the bridge's site: a station may only claim its own site's (issue 17)
            on_site = CFG.model_copy(update={"site": site, "sites": [site]})
            create_rma(s, on_site, draft, actor="api-key:shop")
    events = [parcel(n, "st1", i + 1) for i, n in enumerate(numbers)]
    poison, stale = events[5], events[9]
    stale_calls = 0
    fallback = False

    def fail(event: ParcelEvent) -> None:
        nonlocal stale_calls, fallback
        if event.event_id == poison.event_id:
            fallback = True  # the set-based attempt fails at it: the batch goes one by one
            raise ValueError("bad value")
        if fallback and event.event_id == stale.event_id and stale_calls < 7:
            stale_calls += 1  # a lead deciding that RMA 7 times in a row: 5 in the batch
            raise StaleRma(event.rma_number or "")

    fail_ingest(monkeypatch, fail)
    bridge = make_bridge(anydb.sessions, batch_wait_ms=3000)  # all of them in one batch
    topic = Topics(site, "st1").event
    for e in [*events, events[0]]:  # the last one a redelivery
        probe.publish(topic, encode(e))
    wait(lambda: bridge.status()["acks"] == 41, timeout_s=20, what="41 acknowledged")
    assert sorted(stored(anydb)) == sorted(e.event_id for e in events if e is not poison)
    with anydb.session() as s:
        credited = sorted(
            s.scalars(
                select(Rma.number)
                .join(RmaLineRecord, RmaLineRecord.rma_id == Rma.id)
                .join(Credit, Credit.rma_line_id == RmaLineRecord.id)
            )
        )
    assert credited == [n for n in numbers if n != poison.rma_number]  # each once
    assert [t for t, _p, _e in dead_letters(anydb)] == [topic]
    status = bridge.status()
    counts = {k: status[k] for k in ("batches", "events_ingested", "events_duplicate")}
    assert counts == {"batches": 1, "events_ingested": 39, "events_duplicate": 1}
    assert (status["poison"], status["events_stale"], status["retries"], stale_calls) == (
        1,
        1,
        0,
        7,
    )
    assert status["commit_latency_p99_ms"] is not None


def test_the_ingest_is_behind_while_an_event_waits_over_half_a_second_for_its_commit(
    db: Database,
    make_bridge: Callable[..., MqttBridge],
    probe: Any,
    site: str,
    make_event: Callable[..., ParcelEvent],
    wait: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entered, release = threading.Event(), threading.Event()
    real = mqtt_bridge.ingest_events

    def held(*args: Any, **kwargs: Any) -> Any:  # the batch's commit, held by the test
        entered.set()
        assert release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(mqtt_bridge, "ingest_events", held)
    bridge = make_bridge(db.sessions)
    assert (bridge.ingest_lag_s(), bridge.behind()) == (0.0, False)  # nothing to ingest
    event = make_event(station="st1", **UNKNOWN_RMA)
    probe.publish(Topics(site, "st1").event, encode(event))
    assert entered.wait(10)
    wait(bridge.behind, what="the held batch's event waiting over BEHIND_S")
    assert bridge.ingest_lag_s() > mqtt_bridge.BEHIND_S
    assert bridge.status()["ingest_lag_ms"] > 500.0
    release.set()
    wait(lambda: stored(db) == [event.event_id], what="the event committed")
    wait(lambda: bridge.ingest_lag_s() == 0.0, what="caught up: no batch waiting")
    assert not bridge.behind()


def test_a_bridge_stopped_during_a_retried_batch_is_not_reported_behind(
    db: Database,
    make_bridge: Callable[..., MqttBridge],
    probe: Any,
    site: str,
    make_event: Callable[..., ParcelEvent],
    wait: Any,
) -> None:
    bridge = make_bridge(FlakySessions(db, failures=10**6))  # the database down: retried
    probe.publish(Topics(site, "st1").event, encode(make_event(station="st1", **UNKNOWN_RMA)))
    wait(bridge.behind, what="the retried batch's event waiting over BEHIND_S")
    bridge.stop()  # the batch is given up unacknowledged (the broker redelivers it)
    assert (bridge.status()["ingest_lag_ms"], bridge.behind()) == (0.0, False)


def test_a_parcel_reported_again_under_a_new_event_id_is_dead_lettered_with_an_alarm(
    db: Database,
    make_bridge: Callable[..., MqttBridge],
    probe: Any,
    site: str,
    make_event: Callable[..., ParcelEvent],
    wait: Any,
) -> None:
    """The replay of a stored parcel is refused (``parcel_reported_again``), not stored."""
    from gateway.models import Alarm

    bridge = make_bridge(db.sessions)
    first = make_event(station="st1", **UNKNOWN_RMA)
    again = first.model_copy(update={"event_id": "r" * 32})
    topic = Topics(site, "st1").event
    probe.publish(topic, encode(first))
    probe.publish(topic, encode(again))
    wait(lambda: bridge.status()["acks"] >= 2, what="both acknowledged")
    wait(lambda: len(dead_letters(db)) == 1, what="the replay dead-lettered")
    refusal = (
        f"untrusted event: parcel_reported_again: parcel {first.parcel_id} of station st1 "
        f"inducted at {first.inducted_at.isoformat()} is already recorded as event "
        f"{first.event_id}"
    )
    assert stored(db) == [first.event_id]
    assert dead_letters(db) == [(topic, encode(again), refusal)]
    with db.session() as s:
        alarms = s.execute(select(Alarm.key, Alarm.kind, Alarm.message)).all()
    assert alarms == [(f"st1:untrusted_event:{'r' * 32}", "untrusted_event", refusal)]
    assert (bridge.status()["events_ingested"], bridge.status()["events_refused"]) == (1, 1)
