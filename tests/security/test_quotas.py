"""Issue 15, kind 1: quotas and retention for every store of untrusted input.

A 1 MB event (under the broker's packet limit) is refused by the production gateway before
parsing and never stored; dead letters, one-off alarms, orphan photos and command replies
are bounded per station (count and bytes; the oldest dropped, or the new refused, counted)
and expire. On a real database, a real photo folder and a real broker.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.db import Database
from gateway.main import create_app
from gateway.models import Alarm, DeadLetter, IdempotencyRecord
from gateway.services import quotas
from gateway.services.alarms import raise_refused_event
from gateway.services.dead_letters import record_dead_letter
from gateway.services.photos import PhotoStore
from gateway.services.quotas import DROPPED, MAX_REPLIES_PER_REQUEST, Quota, StationQuotas
from gateway.settings import Settings
from protocol import CommandReply, ParcelEvent, PhotoUpload, ProtocolError, Topics, decode, encode
from protocol.messages import MAX_EVENT_BYTES
from simulator.testing import start_bridge, wait_until
from tests.security.conftest import ProdGateway

SITE = "quota"


KEY = "quota-admin-key-0123456789abcdef"


def huge_event(size: int) -> bytes:
    body = {
        "kind": "parcel",
        "event_id": uuid.uuid4().hex,
        "station": "st1",
        "parcel_id": 1,
        "inducted_at": "2026-05-04T12:00:00Z",
        "length_mm": 300,
        "lane": "quarantine",
        "disposition": "quarantine",
        "reason": "no_read",
        "diverted": False,
        "explanation": "x" * size,
    }
    return json.dumps(body).encode()


def test_an_event_over_the_size_cap_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError, match=f"over {MAX_EVENT_BYTES}"):
        decode(huge_event(4_800_000), ParcelEvent)


def test_a_1_mb_event_is_dead_lettered_cut_and_never_stored(
    prod: ProdGateway, site: str, publisher: mqtt.Client
) -> None:
    topic = Topics(site, "st3").event
    publisher.publish(topic, huge_event(1_000_000), qos=1).wait_for_publish(5)
    wait_until(
        lambda: prod.rows(f"select error, size from dead_letters where topic = '{topic}'"),
        what="the huge event dead-lettered",
    )
    [(error, size)] = prod.rows(f"select error, size from dead_letters where topic = '{topic}'")
    assert error.startswith("invalid ParcelEvent: ") and f"over {MAX_EVENT_BYTES}" in error
    assert size == 64 * 1024
    assert prod.rows("select count(*) from station_events where station = 'st3'") == [(0,)]


def letters(db: Database) -> list[tuple[str | None, bytes]]:
    with db.session() as s:
        rows = s.execute(select(DeadLetter.station, DeadLetter.payload).order_by(DeadLetter.id))
        return [(station, payload) for station, payload in rows]


def test_dead_letters_keep_the_newest_within_the_stations_count_and_bytes(
    db: Database,
) -> None:
    before = DROPPED["dead_letters"]
    quota = Quota(max_count=3, max_bytes=200, retention_s=3600)
    with db.session() as s:
        for i in range(5):
            record_dead_letter(s, "rs/v1/q/st1/event", b"%d" % i * 10, "bad", quota=quota)
        record_dead_letter(s, "rs/v1/q/st2/event", b"other", "bad", quota=quota)
        assert [p for st, p in letters(db) if st == "st1"] == [b"2" * 10, b"3" * 10, b"4" * 10]
        for i in range(2):  # 100 bytes each: the bytes bound bites before the count
            record_dead_letter(s, "rs/v1/q/st1/event", b"%d" % i * 100, "bad", quota=quota)
    assert letters(db) == [("st2", b"other"), ("st1", b"0" * 100), ("st1", b"1" * 100)]
    assert DROPPED["dead_letters"] - before == 2 + 3


def test_one_off_alarms_beyond_the_quota_are_refused_and_settled_ones_expire(
    db: Database,
) -> None:
    before = DROPPED["alarms"]
    quota = Quota(max_count=2, max_bytes=0, retention_s=3600)
    with db.session() as s:
        for i in range(4):
            raise_refused_event(s, "st1", f"e{i}", "untrusted event: x", quota)
        raise_refused_event(s, "st2", "e9", "untrusted event: x", quota)
        keys = [a.key for a in s.scalars(select(Alarm).order_by(Alarm.id))]
        assert keys == [
            "st1:untrusted_event:e0",
            "st1:untrusted_event:e1",
            "st2:untrusted_event:e9",
        ]
        assert DROPPED["alarms"] - before == 2
        old = s.scalars(select(Alarm)).first()
        assert old is not None
        old.acknowledged_at = old.raised_at = datetime.now(UTC) - timedelta(hours=2)
        record_dead_letter(s, "rs/v1/q/st1/event", b"old", "bad")
        s.execute(select(DeadLetter)).scalars().one().received_at = old.raised_at
        s.commit()
        gone = quotas.purge_expired(
            s, StationQuotas(dead_letters=quota, alarms=quota, orphan_photos=quota)
        )
        assert gone == {"dead_letters": 1, "alarms": 1, "idempotency_keys": 0}
        raise_refused_event(s, "st1", "e5", "untrusted event: x", quota)  # room again
        assert s.scalar(select(Alarm.id).where(Alarm.key == "st1:untrusted_event:e5"))


def test_idempotency_records_go_after_their_retention_and_a_key_then_is_new(
    tmp_path: Path,
) -> None:
    # they were never purged: one row per creation with a key, and per return-form return
    settings = Settings(
        env="dev",
        database_url=f"sqlite:///{tmp_path / 'gw.db'}",
        mqtt_port=1,
        bootstrap_api_key=KEY,
        site="s1",
    )
    body = {
        "order_ref": "O-1",
        "reason": "changed_mind",
        "resolution": "refund",
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 1999}],
    }
    with TestClient(create_app(settings), headers={"X-API-Key": KEY}) as client:
        db: Database = client.app.state.db  # type: ignore[attr-defined]
        first = client.post("/api/v1/rmas", json=body, headers={"Idempotency-Key": "k-1"})
        again = client.post("/api/v1/rmas", json=body, headers={"Idempotency-Key": "k-1"})
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json()["number"] == first.json()["number"]  # the stored response
        client.post("/api/v1/rmas", json=body, headers={"Idempotency-Key": "k-2"})
        with db.session() as s:
            old = s.scalars(select(IdempotencyRecord).where(IdempotencyRecord.key == "k-1")).one()
            old.created_at = datetime.now(UTC) - timedelta(days=31)
            s.commit()
            quota = StationQuotas()
            assert quotas.purge_expired(s, quota) == {  # no retention given: kept
                "dead_letters": 0,
                "alarms": 0,
                "idempotency_keys": 0,
            }
            gone = quotas.purge_expired(s, quota, settings.idempotency_days * 86_400.0)
            assert gone == {"dead_letters": 0, "alarms": 0, "idempotency_keys": 1}
            assert s.scalars(select(IdempotencyRecord.key)).all() == ["k-2"]
        later = client.post("/api/v1/rmas", json=body, headers={"Idempotency-Key": "k-1"})
        assert later.status_code == 201
        assert later.json()["number"] != first.json()["number"]  # a new request now


def photo(station: str, n: int) -> PhotoUpload:
    jpeg = b"\xff\xd8\xff" + bytes([n]) * 100
    return PhotoUpload(
        station=station,
        sha256=hashlib.sha256(jpeg).hexdigest(),
        taken_at=datetime(2026, 5, 4, tzinfo=UTC),
        jpeg_b64=base64.b64encode(jpeg).decode(),
    )


def test_orphan_photos_are_bounded_per_station_and_expire(tmp_path: Path) -> None:
    before = DROPPED["orphan_photos"]
    store = PhotoStore(tmp_path, orphans=Quota(max_count=2, max_bytes=0, retention_s=60))
    p = [photo("st1", n) for n in range(4)]
    assert store.store(p[0]) and store.store(p[1])
    store.claim(p[0].sha256)  # an event named it: no longer an orphan
    assert store.store(p[2]) and store.store(p[3])  # st1's oldest orphan, p[1], goes
    assert store.store(photo("st2", 9))
    kept = [store.path(x.sha256) is not None for x in p]
    assert kept == [True, False, True, True]
    assert (store.orphan_count("st1"), store.orphan_count("st2")) == (2, 1)
    assert DROPPED["orphan_photos"] - before == 1
    assert store.purge_orphans(now_s=datetime.now(UTC).timestamp() + 61) == 3
    assert [store.path(x.sha256) is not None for x in p] == [True, False, False, False]


def test_command_replies_per_request_id_are_bounded(
    mqtt_broker: Any, db: Database, publisher: mqtt.Client
) -> None:
    before = DROPPED["command_replies"]
    bridge = start_bridge("127.0.0.1", mqtt_broker.port, SITE, db.sessions)
    try:
        reply = CommandReply(
            request_id="req-00001", station="st1", command="ping", state="accepted"
        )
        for _ in range(10):
            publisher.publish(Topics(SITE, "st1").command_reply, encode(reply), qos=1)
        wait_until(lambda: DROPPED["command_replies"] - before == 6, what="six dropped")
        assert len(bridge.command_replies["req-00001"]) == MAX_REPLIES_PER_REQUEST
    finally:
        bridge.stop()
