"""The MQTT bridge through a real Mosquitto broker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.models import DeadLetter
from gateway.schemas import RmaDraft
from gateway.services.rmas import create_rma
from protocol import (
    ParcelEvent,
    RmaAnnouncement,
    SyncBatch,
    SyncRequest,
    Topics,
    decode,
    encode,
)
from tests.gateway.conftest import UNKNOWN_RMA, claimed_units

pytestmark = pytest.mark.broker


def bridge_status(client: TestClient) -> dict[str, Any]:
    status: dict[str, Any] = client.app.state.bridge.status()  # type: ignore[attr-defined]
    return status


def test_created_rma_is_announced(
    client: TestClient, probe: Any, site: str, rma_body: Callable[..., dict[str, Any]], wait: Any
) -> None:
    topic = Topics(site).rma
    probe.subscribe(topic)
    assert client.post("/api/v1/rmas", json=rma_body("RMA-7")).status_code == 201
    [payload] = wait(lambda: probe.payloads(topic), what="announcement")
    ann = decode(payload, RmaAnnouncement)
    assert (ann.number, ann.revision, ann.order_ref) == ("RMA-7", 1, "ORD-RMA-7")
    assert ann.lines[0].rfid_uid == "DD17380A"
    [msg] = [m for m in probe.messages if m.topic == topic]
    assert msg.qos == 1 and not msg.retain


def test_event_published_three_times_is_recorded_once(
    client: TestClient, probe: Any, site: str, make_event: Callable[..., ParcelEvent], wait: Any
) -> None:
    event = make_event(station="st1", **UNKNOWN_RMA)
    topic = Topics(site, "st1").event
    for _ in range(3):
        probe.publish(topic, encode(event))
    wait(
        lambda: (
            bridge_status(client)["events_ingested"] + bridge_status(client)["events_duplicate"]
            == 3
        ),
        what="three deliveries handled",
    )
    body = client.get("/api/v1/events", params={"station": "st1"}).json()
    assert body["count"] == 1
    assert body["events"][0]["event_id"] == event.event_id
    assert bridge_status(client)["events_duplicate"] == 2


def test_malformed_payload_is_dead_lettered_and_loop_survives(
    client: TestClient, probe: Any, site: str, make_event: Callable[..., ParcelEvent], wait: Any
) -> None:
    topic = Topics(site, "st1").event
    good = make_event(station="st1", **UNKNOWN_RMA)
    truncated = encode(make_event(station="st1", **UNKNOWN_RMA))[:25]
    probe.publish(topic, truncated)
    probe.publish(Topics(site, "st2").event, encode(good))  # station does not match topic
    probe.publish(topic, encode(good))
    wait(lambda: client.get("/api/v1/events").json()["count"] == 1, what="valid event ingested")
    db = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:
        letters = list(s.scalars(select(DeadLetter).order_by(DeadLetter.id)))
    assert [(d.topic, d.payload) for d in letters] == [
        (topic, truncated),
        (Topics(site, "st2").event, encode(good)),
    ]
    assert "invalid ParcelEvent" in letters[0].error
    assert "st1" in letters[1].error
    status = bridge_status(client)
    assert status["dead_letters"] == 2 and status["connected"]


def test_sync_request_gets_batches_after_revision(
    client: TestClient, probe: Any, site: str, wait: Any
) -> None:
    db = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:
        for i in range(1, 206):
            draft = RmaDraft(
                number=f"R{i}",
                order_ref="O",
                reason="damaged",
                resolution="refund",
                lines=[{"sku": "A", "quantity": 1}],
            )
            create_rma(s, client.app.state.settings, draft)  # type: ignore[attr-defined]
    topics = Topics(site, "st1")
    probe.subscribe(topics.sync_response)

    def ask(after: int) -> list[SyncBatch]:
        request_id = uuid.uuid4().hex
        req = SyncRequest(station="st1", after_revision=after, request_id=request_id)
        probe.publish(topics.sync_request, encode(req))

        def batches() -> list[SyncBatch]:
            got = [decode(p, SyncBatch) for p in probe.payloads(topics.sync_response)]
            return [b for b in got if b.request_id == request_id]

        wait(lambda: any(b.last for b in batches()), what=f"last batch after {after}")
        return batches()

    batches = ask(3)
    assert [len(b.announcements) for b in batches] == [200, 2]
    assert [b.last for b in batches] == [False, True]
    assert {b.head_revision for b in batches} == {205}
    revisions = [a.revision for b in batches for a in b.announcements]
    assert revisions == list(range(4, 206))

    [empty] = ask(205)
    assert empty.announcements == () and empty.last and empty.head_revision == 205


def test_sorted_parcel_is_credited_and_cancel_is_announced(
    client: TestClient,
    probe: Any,
    site: str,
    rma_body: Callable[..., dict[str, Any]],
    make_event: Callable[..., ParcelEvent],
    wait: Any,
) -> None:
    rma_topic = Topics(site).rma
    probe.subscribe(rma_topic)
    client.post("/api/v1/rmas", json=rma_body("RMA-1"))
    client.post("/api/v1/rmas", json=rma_body("RMA-2"))
    client.post("/api/v1/rmas", json=rma_body("RMA-3"))
    proved = make_event(rma_number="RMA-1", units=claimed_units(rma_body("RMA-1"), "tag"))
    probe.publish(Topics(site, "st1").event, encode(proved))
    quarantined = make_event(
        rma_number="RMA-3",
        lane="quarantine",
        disposition="quarantine",
        units=claimed_units(rma_body("RMA-3")),
    )
    probe.publish(Topics(site, "st1").event, encode(quarantined))
    wait(lambda: client.get("/api/v1/credits").json()["credits"], what="credits")
    wait(
        lambda: client.get("/api/v1/rmas/RMA-3").json()["awaiting_decision"],
        what="RMA-3 waiting for a lead",
    )
    client.post("/api/v1/rmas/RMA-2/transitions", json={"trigger": "cancel"})
    wait(lambda: len(probe.payloads(rma_topic)) >= 6, what="six announcements")
    anns = [decode(p, RmaAnnouncement) for p in probe.payloads(rma_topic)]
    later = sorted((a.revision, a.number, a.state.value) for a in anns if a.revision > 3)
    assert [(n, st) for _r, n, st in later] == [
        ("RMA-1", "received"),
        ("RMA-3", "received"),
        ("RMA-2", "cancelled"),
    ]
    credited = client.get("/api/v1/rmas/RMA-1").json()
    assert (credited["state"], credited["grade"]) == ("refunded", "restock")
    waiting = client.get("/api/v1/rmas/RMA-3").json()
    assert (waiting["state"], waiting["awaiting_decision"]) == ("received", True)
    page = client.get("/").text
    assert "Waiting for a lead" in page and ">RMA-3</th>" in page


def test_announcement_committed_while_the_bridge_is_down_is_published_and_marked_sent(
    db: Any, mqtt_broker: Any, probe: Any, site: str, wait: Any
) -> None:
    """The announcement outbox: rows written with the change, sent on the PUBACK."""
    from gateway.models import AnnouncementRow
    from gateway.settings import Settings
    from simulator.testing import start_bridge

    draft = RmaDraft.model_validate(
        {
            "number": "RMA-9",
            "order_ref": "ORD-9",
            "reason": "size",
            "resolution": "refund",
            "lines": [{"sku": "A", "quantity": 1, "unit_price_cents": 100}],
        }
    )
    with db.session() as s:  # no bridge runs: the gateway "crashed" after this commit
        create_rma(s, Settings(site=site), draft, actor="api-key:shop")
        rows = s.scalars(select(AnnouncementRow)).all()
        assert [(r.rma_number, r.revision, r.sent_at) for r in rows] == [("RMA-9", 1, None)]
    topic = Topics(site).rma
    probe.subscribe(topic)
    bridge = start_bridge(mqtt_broker.host, mqtt_broker.port, site, db.sessions)
    try:
        [payload] = wait(lambda: probe.payloads(topic), what="announcement")
        assert decode(payload, RmaAnnouncement).number == "RMA-9"

        def sent() -> bool:
            with db.session() as s:
                return s.scalar(select(AnnouncementRow.sent_at)) is not None

        wait(sent, what="row marked sent on the PUBACK")
        assert bridge.status()["announcements_sent"] == 1
    finally:
        bridge.stop()
    assert len(probe.payloads(topic)) == 1  # sent once
