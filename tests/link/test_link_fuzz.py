"""10,000 random or malformed payloads on every subscribed topic, station and gateway side."""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel
from sqlalchemy import select

from gateway.db import Database
from gateway.models import DeadLetter
from gateway.services.quotas import Quota, StationQuotas
from protocol import (
    Command,
    CommandReply,
    ParcelEvent,
    RmaAnnouncement,
    StationStatus,
    SyncBatch,
    SyncRequest,
    Topics,
    encode,
)
from tests.link.conftest import ann

pytestmark = pytest.mark.broker

N = 10_000  # payloads thrown at the station's link
# At the gateway each one is screened, dead-lettered and acknowledged through the real
# bridge (about 4 ms each here): 2,000 (500 per topic) still give every mutation kind of
# `malformed` on every topic, in a fifth of the time; the station keeps the 10,000.
N_GATEWAY = 2_000


def malformed(rng: random.Random, valid: bytes, required: list[str]) -> bytes:
    """One payload that no contract message accepts (``required``: fields to drop)."""
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 120))
    if kind == 1:
        return valid[: rng.randrange(1, len(valid) - 1)]  # truncated
    doc = json.loads(valid)
    if kind == 2:
        doc["schema_version"] = rng.choice([0, 4, 99, -1, "1x", None])
    elif kind == 3:
        doc["kind"] = rng.choice(["", "rma ", "parcel2", "command_reply_", 7])
    elif kind == 4:
        doc[rng.choice(list(doc))] = rng.choice([[], {}, "x" * 5000, -(10**30)])
        doc["unexpected_field"] = True
    elif kind == 5:
        return b"[" * rng.randrange(1, 3000)
    elif kind == 6:
        return rng.choice([b"null", b"0", b'"rma"', b"[]", b"{}", b"\xff\xfe{}", b"\x00"])
    elif kind == 7:
        return json.dumps(doc).encode("utf-16")
    else:
        doc.pop(rng.choice(required))
    return json.dumps(doc).encode()


class BulkPublisher:
    """Publishes many QoS 1 messages without waiting for each PUBACK."""

    def __init__(self, port: int) -> None:
        self.acked = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex)
        self.client.max_inflight_messages_set(500)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, *_args: Any) -> None:
        with self._lock:
            self.acked += 1

    def publish_all(self, messages: list[tuple[str, bytes]], wait: Any) -> None:
        for topic, payload in messages:
            assert self.client.publish(topic, payload, qos=1).rc == mqtt.MQTT_ERR_SUCCESS
        wait(lambda: self.acked == len(messages), timeout_s=60, what="all published")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def spread(
    rng: random.Random, topics: dict[str, tuple[bytes, type[BaseModel]]], n: int
) -> list[tuple[str, bytes]]:
    """``n`` malformed payloads spread evenly over ``topics`` (valid example, model)."""
    names = list(topics)
    required = {
        t: [k for k in model.model_json_schema()["required"] if k in json.loads(valid)]
        for t, (valid, model) in topics.items()
    }
    out = []
    for i in range(n):
        topic = names[i % len(names)]
        out.append((topic, malformed(rng, topics[topic][0], required[topic])))
    return out


def test_station_rejects_10000_malformed_payloads_each_with_a_reason(
    make_link: Callable[..., Any], mqtt_broker: Any, site: str, wait: Any
) -> None:
    link = make_link()
    link.start()
    wait(lambda: link.in_sync is False and link.counters["sync_requests"] >= 1, what="up")
    topics = Topics(site, "st1")
    valid = {
        topics.rma: (encode(ann("RMA-1", 1)), RmaAnnouncement),
        topics.sync_response: (
            b'{"kind":"sync_batch","request_id":"r","head_revision":0}',
            SyncBatch,
        ),
        topics.command: (
            b'{"kind":"command","request_id":"0123456789","command":"ping",'
            b'"issued_at":"2026-01-01T00:00:00Z"}',
            Command,
        ),
    }
    messages = spread(random.Random(4), valid, N)
    pub = BulkPublisher(mqtt_broker.port)
    try:
        pub.publish_all(messages, wait)
        wait(lambda: link.store.dead_letter_count() == N, timeout_s=90, what="all dead-lettered")
    finally:
        pub.close()
    letters = link.store.dead_letters()
    assert Counter((t, p) for t, p, _ in letters) == Counter(messages)
    assert all(error for _, _, error in letters)
    assert link.store.rma_count() == 0 and link.counters["commands"] == 0
    assert link.status()["connected"] is True
    gateway_like = BulkPublisher(mqtt_broker.port)
    try:
        gateway_like.publish_all([(topics.rma, encode(ann("RMA-OK", 1)))], wait)
    finally:
        gateway_like.close()
    wait(lambda: link.store.lookup_rma("RMA-OK") is not None, what="link still applies")


def test_gateway_rejects_malformed_payloads_on_every_topic_each_with_a_reason(
    make_bridge: Callable[..., Any], gateway_db: Database, mqtt_broker: Any, site: str, wait: Any
) -> None:
    # every junk message kept, not just the station's quota of the newest (test_quotas.py)
    bridge = make_bridge(quotas=StationQuotas(dead_letters=Quota(N_GATEWAY, 0, 86_400.0)))
    topics = Topics(site, "st1")
    event = (
        b'{"kind":"parcel","event_id":"0123456789","station":"st1","parcel_id":1,'
        b'"inducted_at":"2026-01-01T00:00:00Z","length_mm":1,"lane":"a","disposition":"a",'
        b'"reason":"a","diverted":false}'
    )
    valid = {
        topics.event: (event, ParcelEvent),
        topics.status: (b'{"kind":"status","station":"st1","state":"online"}', StationStatus),
        topics.sync_request: (
            b'{"kind":"sync_req","station":"st1","after_revision":0,"request_id":"r"}',
            SyncRequest,
        ),
        topics.command_reply: (
            b'{"kind":"command_reply","request_id":"0123456789",'
            b'"station":"st1","command":"ping","state":"done"}',
            CommandReply,
        ),
    }
    messages = spread(random.Random(5), valid, N_GATEWAY)
    pub = BulkPublisher(mqtt_broker.port)
    try:
        pub.publish_all(messages, wait)
        wait(
            lambda: bridge.status()["dead_letters"] == N_GATEWAY,
            timeout_s=120,
            what="all dead-lettered",
        )
        # each PUBACK follows its dead-letter commit: the ack count may trail by a moment
        wait(lambda: bridge.status()["acks"] == N_GATEWAY, timeout_s=60, what="all acknowledged")
    finally:
        pub.close()
    with gateway_db.session() as s:
        letters = [(d.topic, d.payload, d.error) for d in s.scalars(select(DeadLetter))]
    assert Counter((t, p[:65536]) for t, p, _ in letters) == Counter(
        (t, p[:65536]) for t, p in messages
    )
    assert all(error for _, _, error in letters)
    status = bridge.status()
    assert (status["events_ingested"], status["statuses"], status["errors"]) == (0, 0, 0)
    assert status["connected"] is True and status["acks"] == N_GATEWAY
