"""Numbers a station reports beyond a 32-bit column, on both backends.

The protocol bounds a station's numbers at 2^63 - 1 (:data:`protocol.messages.INT64_MAX`);
where such a number reached a 32-bit INTEGER column PostgreSQL refused the write
(``integer out of range``) and the message was dead-lettered, while SQLite stored it:

- ``StationStatus.rma_revision`` -> ``stations.rma_revision``: the gateway never issues a
  revision above :data:`gateway.models.REVISION_MAX`, so a claim beyond it is clamped to
  it (the rest of the status, its alarms included, is kept);
- ``ParcelEvent.parcel_id`` -> ``station_events.parcel_id``: the station's own id, widened
  to BIGINT (migration 0016) and stored as sent; the event's receipts and credits with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import BigInteger, inspect, select, text

from gateway.db import Database
from gateway.migrate import upgrade
from gateway.models import REVISION_MAX, Alarm, Credit, DeadLetter, Station, StationEvent
from gateway.mqtt_bridge import MqttBridge
from gateway.schemas import RmaDraft
from gateway.services import credits
from gateway.services.dashboard import station_rows
from gateway.services.events import Outcome, ingest_event, ingest_events
from gateway.services.rmas import create_rma
from gateway.services.stations import mirrored_revision, upsert_station
from gateway.settings import Settings
from protocol import ParcelEvent, StationHealth, StationStatus, Topics, encode
from simulator.testing import start_bridge
from tests.gateway.conftest import UNKNOWN_RMA, parcel_for

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


@pytest.fixture
def crediting() -> Iterator[Settings]:
    """The ingest credits parcels with these settings (as the app configures it)."""
    settings = Settings(site="s1")
    credits.configure(settings)
    yield settings
    credits.configure(None)


def _restocked(s: Any, number: str, parcel_id: int) -> ParcelEvent:
    body = {
        "number": number,
        "order_ref": f"O-{number}",
        "reason": "changed_mind",
        "resolution": "refund",
        "authorize": True,
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 1999}],
    }
    rma = create_rma(s, Settings(site="s1"), RmaDraft.model_validate(body))
    event = parcel_for(rma, "restock").model_copy(update={"parcel_id": parcel_id})
    return ParcelEvent.model_validate(event.model_dump())


def _stored(s: Any) -> list[tuple[str, int]]:
    rows = s.execute(select(StationEvent.event_id, StationEvent.parcel_id).order_by("id"))
    return [(e, p) for e, p in rows]


@pytest.mark.parametrize("parcel_id", [REVISION_MAX + 1, INT64_MAX])
@pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "one-by-one"])
def test_an_event_with_a_parcel_id_beyond_32_bits_is_stored_as_sent(
    anydb: Database, crediting: Settings, parcel_id: int, set_based: bool
) -> None:
    with anydb.session() as s:
        event = _restocked(s, "R-1", parcel_id)
        if set_based:
            assert ingest_events(s, [event], site="s1")[0].outcome is Outcome.STORED
        else:
            assert ingest_event(s, event, site="s1") is True
    with anydb.session() as s:
        assert _stored(s) == [(event.event_id, parcel_id)]
        [credit] = s.scalars(select(Credit))  # the parcel's receipt credited with it
        assert (credit.rma_number, credit.sku, credit.kind) == ("R-1", "SKU-1", "refund")


def test_the_unconfirmed_divert_alarm_names_a_64_bit_parcel_id(
    anydb: Database, make_event: Callable[..., ParcelEvent]
) -> None:
    event = make_event(marks=("divert_unconfirmed",), lane="restock", parcel_id=INT64_MAX)
    with anydb.session() as s:
        assert ingest_events(s, [event])[0].outcome is Outcome.STORED
        [alarm] = s.scalars(select(Alarm))
        assert alarm.message == f"parcel {INT64_MAX}: divert into restock not confirmed"


@pytest.mark.broker
def test_an_event_with_a_parcel_id_beyond_32_bits_is_not_dead_lettered(
    anydb: Database,
    bridge_on: Callable[[Database], MqttBridge],
    probe: Any,
    site: str,
    make_event: Callable[..., ParcelEvent],
    wait: Any,
) -> None:
    bridge = bridge_on(anydb)
    big, small = (make_event(**UNKNOWN_RMA, parcel_id=n) for n in (2**31, 1))
    for event in (big, small):
        probe.publish(Topics(site, "st1").event, encode(event))
    wait(lambda: bridge.status()["acks"] >= 2, what="both events acknowledged")
    with anydb.session() as s:
        assert _stored(s) == [(big.event_id, 2**31), (small.event_id, 1)]
        assert list(s.scalars(select(DeadLetter))) == []
    status = bridge.status()
    assert (status["events_ingested"], status["poison"], status["dead_letters"]) == (2, 0, 0)


def test_the_migration_keeps_the_parcel_ids_stored_before_it(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade(db.engine, "0015")
        row = {
            "event_id": "e-before-0016",
            "site": "s1",
            "station": "st1",
            "parcel_id": REVISION_MAX,
            "lane": "quarantine",
            "disposition": "quarantine",
            "reason": "unknown_rma",
            "diverted": False,
            "length_mm": 300.0,
            "inducted_at": datetime(2026, 12, 1, tzinfo=UTC),
            "received_at": datetime(2026, 12, 1, tzinfo=UTC),
            "raw": "{}",
        }
        columns, values = ", ".join(row), ", ".join(f":{k}" for k in row)
        insert = text(f"INSERT INTO station_events ({columns}) VALUES ({values})")
        with db.engine.begin() as conn:
            conn.execute(insert, row)
        upgrade(db.engine)
        with db.engine.begin() as conn:
            [column] = [
                c for c in inspect(conn).get_columns("station_events") if c["name"] == "parcel_id"
            ]
            assert isinstance(column["type"], BigInteger), column
            conn.execute(insert, {**row, "event_id": "e-after-0016", "parcel_id": INT64_MAX})
        with db.session() as s:
            assert _stored(s) == [("e-before-0016", REVISION_MAX), ("e-after-0016", INT64_MAX)]
    finally:
        db.dispose()


@pytest.mark.parametrize("length", [33, 64])
def test_a_lane_name_the_protocol_allows_is_stored_as_sent(anydb: Database, length: int) -> None:
    # lane is a protocol name (up to 64 characters); the column was VARCHAR(32): on
    # PostgreSQL such an event was dead-lettered (value too long), SQLite stored it
    lane = "q" * length
    event = ParcelEvent(
        event_id="f" * 16,
        station="st1",
        parcel_id=1,
        inducted_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        length_mm=300.0,
        lane=lane,
        disposition="quarantine",
        reason="no_read",
        diverted=False,
    )
    with anydb.session() as s:
        assert [r.outcome for r in ingest_events(s, [event], site="s1")] == [Outcome.STORED]
    with anydb.session() as s:
        assert s.scalars(select(StationEvent.lane)).all() == [lane]
