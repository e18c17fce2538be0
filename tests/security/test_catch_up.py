"""Issue 15, kind 1: one station flooding catch-up requests does not hold up the others.

Catch-up is answered by its own thread, at a rate per station, one waiting request per
station. With that thread held (as if a long history were being read), station A floods
sync requests while station B's events arrive: every one of B's events is ingested, in
order, while A's requests wait as one; released, A is answered once. Real broker, real
bridge, real SQLite; the assertions are on order and queue state, never on time.
"""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from gateway.db import Database
from gateway.models import StationEvent
from gateway.services.catch_up import CatchUpServer
from protocol import SyncBatch, SyncRequest, Topics, decode, encode
from simulator.testing import start_bridge, wait_until
from tests.security.test_event_trust import QUARANTINE, event

SITE = "flood"


def test_a_sync_flood_from_one_station_never_blocks_anothers_ingest(
    mqtt_broker: Any, db: Database, publisher: mqtt.Client
) -> None:
    bridge = start_bridge("127.0.0.1", mqtt_broker.port, SITE, db.sessions, sync_rate="2/minute")
    held, served_on = threading.Event(), []
    real_serve = bridge.catch_up.serve

    def held_serve(station: str, request: SyncRequest) -> None:
        served_on.append((threading.current_thread().name, station, request.request_id))
        held.wait(30)
        real_serve(station, request)

    bridge.catch_up.serve = held_serve  # type: ignore[method-assign]
    answers: list[bytes] = []
    a_client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="flood-a")
    a_client.on_message = lambda _c, _u, m: answers.append(bytes(m.payload))
    a_client.connect("127.0.0.1", mqtt_broker.port)
    a_client.subscribe(Topics(SITE, "stA").sync_response, qos=1)
    a_client.loop_start()
    try:
        first = SyncRequest(station="stA", after_revision=0, request_id="a-00000")
        a_client.publish(Topics(SITE, "stA").sync_request, encode(first), qos=1)
        wait_until(lambda: served_on, what="A's first request taken by the catch-up thread")
        b_events = [
            event(
                station="stB",
                parcel_id=n,
                rma_number=None,
                reason="no_read",
                units=(),
                **QUARANTINE,
            )
            for n in range(1, 21)
        ]
        for n, e in enumerate(b_events):  # A's flood and B's events interleaved
            for k in range(10):
                req = SyncRequest(station="stA", after_revision=0, request_id=f"a-{n:02d}{k:03d}")
                a_client.publish(Topics(SITE, "stA").sync_request, encode(req), qos=1)
            publisher.publish(Topics(SITE, "stB").event, encode(e), qos=1)

        def b_ingested() -> list[int]:
            with db.session() as s:
                rows = s.scalars(
                    select(StationEvent.parcel_id)
                    .where(StationEvent.station == "stB")
                    .order_by(StationEvent.id)
                )
                return list(rows)

        wait_until(lambda: len(b_ingested()) == 20, what="B's events, with A's catch-up held")
        assert b_ingested() == list(range(1, 21))  # all, in order
        wait_until(lambda: bridge.status()["sync_requests"] == 201, what="A's requests taken")
        # the ingest thread never served one; A has exactly one request waiting: its newest
        assert served_on == [("catch-up", "stA", "a-00000")]
        assert bridge.catch_up.waiting() == {"stA": "a-19009"}
        counters = bridge.catch_up.counters
        assert (counters["submitted"], counters["coalesced"] + counters["throttled"]) == (201, 199)
        held.set()
        wait_until(lambda: len(answers) == 2, what="A answered twice")
        assert [decode(p, SyncBatch).request_id for p in answers] == ["a-00000", "a-19009"]
        assert bridge.catch_up.counters["served"] == 2
        assert bridge.catch_up.waiting() == {}
    finally:
        held.set()
        a_client.loop_stop()
        a_client.disconnect()
        bridge.stop()


def test_requests_over_the_stations_rate_are_throttled_per_station(db: Database) -> None:
    sent: list[tuple[str, bytes]] = []
    server = CatchUpServer(
        SITE, db.sessions, lambda st, data: sent.append((st, data)), batch_size=50, rate="2/minute"
    )
    server.start()
    outcomes = []
    try:
        for i in range(3):
            for station in ("st1", "st2"):
                req = SyncRequest(
                    station=station, after_revision=0, request_id=f"{station}-{i:05d}"
                )
                outcomes.append(server.submit(station, req))
                served = min(2 * i + (station == "st2") + 1, 4)
                wait_until(lambda n=served: server.counters["served"] == n, what=f"{served} served")
    finally:
        server.stop()
    assert outcomes == ["queued"] * 4 + ["throttled"] * 2
    assert [(st, decode(d, SyncBatch).request_id) for st, d in sent] == [
        ("st1", "st1-00000"),
        ("st2", "st2-00000"),
        ("st1", "st1-00001"),
        ("st2", "st2-00001"),
    ]
    assert server.counters["throttled"] == 2
