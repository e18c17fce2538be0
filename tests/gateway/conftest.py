"""Gateway test fixtures: settings on a temp SQLite file, the app, and an MQTT probe."""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import make_url

from gateway.db import Database
from gateway.main import create_app
from gateway.services.reasons import seed_reasons
from gateway.settings import Settings
from protocol import ParcelEvent, UnitReceipt
from protocol.messages import canonical_uid
from simulator.testing import wait_until


class MqttProbe:
    """A plain paho client for tests: subscribe, collect, publish, or die uncleanly."""

    def __init__(
        self, host: str, port: int, *, will: tuple[str, bytes] | None = None, name: str = "probe"
    ) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self._acked: set[int] = set()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}"
        )
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        wait_until(self.client.is_connected, what="probe connected")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(msg)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self._lock:
            self._acked.add(mid)

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 and wait for the broker's acknowledgement."""
        _rc, mid = self.client.subscribe(topic, qos=1)
        wait_until(lambda: mid in self._acked, what=f"suback for {topic}")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 and wait until the broker acknowledged it."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=5)
        assert info.is_published()

    def payloads(self, topic: str) -> list[bytes]:
        """Return the payloads received on ``topic`` so far, in order."""
        with self._lock:
            return [bytes(m.payload) for m in self.messages if m.topic == topic]

    def drop(self) -> None:
        """Vanish without DISCONNECT, so the broker publishes the last will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        """Disconnect cleanly (no-op after :meth:`drop`)."""
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


@pytest.fixture
def site() -> str:
    """A fresh site id per test, so retained messages never leak between tests."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """An empty gateway database in a temporary SQLite file."""
    database = Database(f"sqlite:///{tmp_path / 'gateway.db'}")
    database.migrate()
    with database.session() as session:
        seed_reasons(session)
    yield database
    database.dispose()


@pytest.fixture
def settings(tmp_path: Path, mqtt_broker: Any, site: str) -> Settings:
    """Gateway settings pointing at the test broker and a temp SQLite file."""
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'gateway.db'}",
        mqtt_host=mqtt_broker.host,
        mqtt_port=mqtt_broker.port,
        site=site,
        bootstrap_api_key=ADMIN_KEY,
    )


ADMIN_KEY = "test-admin-key-0123456789abcdef"
PROD_SECRET = "Tq8vK2mZ4xLr7NwB9cYe3HfJ6pUa5DsG1kQo"
"""A secret key strong enough for production settings (fixed, for tests only)."""


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The gateway app with its lifespan running and its bridge subscribed.

    Requests carry the bootstrap admin key unless a test overrides the header.
    """
    app = create_app(settings)
    with TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as test_client:
        assert app.state.bridge.wait_ready(10), "gateway bridge did not subscribe"
        yield test_client


@pytest.fixture
def probe(mqtt_broker: Any) -> Iterator[MqttProbe]:
    """A connected MQTT test client."""
    p = MqttProbe(mqtt_broker.host, mqtt_broker.port)
    yield p
    p.close()


@pytest.fixture
def make_probe(mqtt_broker: Any) -> Iterator[Callable[..., MqttProbe]]:
    """Factory for extra MQTT clients (last will, other ``port``); closed at teardown."""
    made: list[MqttProbe] = []

    def factory(*, port: int | None = None, **kwargs: Any) -> MqttProbe:
        p = MqttProbe(mqtt_broker.host, port or mqtt_broker.port, **kwargs)
        made.append(p)
        return p

    yield factory
    for p in made:
        p.close()


UNKNOWN_RMA: dict[str, Any] = {
    "lane": "quarantine",
    "disposition": "quarantine",
    "reason": "unknown_rma",
    "diverted": False,
}
"""Overrides of :func:`make_event` for a parcel whose RMA the gateway never announced: what
a station may report of it over MQTT (the gateway refuses anything else, issue 15)."""


def parcel_id_for(event_id: str) -> int:
    """A parcel id per event id: another event is another parcel, a redelivery the same.

    The gateway keeps one event per parcel (station, parcel id, induction time): helpers
    that give every event the same induction time take the parcel id from this.
    """
    return zlib.crc32(event_id.encode()) % (2**31 - 1) + 1  # (a 32-bit column)


@pytest.fixture
def make_event() -> Callable[..., ParcelEvent]:
    """Factory for valid parcel events; keyword arguments override fields."""
    counter = iter(range(1, 1_000_000))

    def factory(**overrides: Any) -> ParcelEvent:
        parcel_id = next(counter)
        fields: dict[str, Any] = {
            "event_id": uuid.uuid4().hex,
            "station": "st1",
            "parcel_id": parcel_id,
            "inducted_at": datetime(2024, 5, 1, 12, 0, parcel_id % 60, tzinfo=UTC),
            "length_mm": 300.0,
            "barcode": f"RMA{parcel_id:05d}",
            "rma_number": f"RMA{parcel_id:05d}",
            "lane": "restock",
            "disposition": "restock",
            "reason": "known_rma",
            "diverted": True,
        }
        fields.update(overrides)
        return ParcelEvent(**fields)

    return factory


@pytest.fixture
def rma_body() -> Callable[..., dict[str, Any]]:
    """Factory for a valid ``POST /api/v1/rmas`` body."""

    def factory(number: str, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "number": number,
            "order_ref": f"ORD-{number}",
            "reason": "damaged",
            "resolution": "refund",
            "lines": [
                {"sku": "SKU-1", "quantity": 1, "rfid_uid": "dd:17:38:0a"},
                {"sku": "SKU-2", "quantity": 2, "gtin": "4006381333931", "serial": "SN42"},
            ],
        }
        body.update(overrides)
        return body

    return factory


@pytest.fixture
def wait() -> Callable[..., Any]:
    """The deadline poller: ``wait(predicate, timeout_s=10, what="...")``."""
    return wait_until


PG_ADMIN_URL = os.environ.get("RS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin() -> Any:
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


def pg_available() -> bool:
    """True when the test PostgreSQL server answers."""
    try:
        with _pg_admin():
            return True
    except Exception:
        return False


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """Create a uniquely named PostgreSQL database; yield its SQLAlchemy URL; drop it.

    Skips the test when no server answers, except under CI (``CI`` set), where it fails:
    ``.ci/run`` makes sure a server is there.
    """
    if not pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable at {PG_ADMIN_URL} (CI must provide it)")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"rs_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = make_url(PG_ADMIN_URL)
    url = base.set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL on each backend: a temp SQLite file, a fresh PostgreSQL db."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
    else:
        with pg_database() as url:
            yield url


@pytest.fixture
def anydb(database_url: str) -> Iterator[Database]:
    """A migrated, seeded gateway database on each backend."""
    database = Database(database_url)
    database.migrate()
    with database.session() as session:
        seed_reasons(session)
    yield database
    database.dispose()


def claimed_units(body: dict[str, Any], evidence: str = "label") -> list[UnitReceipt]:
    """Every unit of an RMA body as a parcel event claims it.

    ``label``: none verified (what a label-only parcel shows). Any other ``evidence``: each
    unit verified by the strongest identifier its line declares (serial > tag > GTIN, as
    the station reports it, so the gateway's event checks accept it); a line declaring
    none is claimed by ``evidence`` with a made-up identifier.
    """

    def proof(line: dict[str, Any], line_no: int, unit: int) -> tuple[str, str]:
        if line.get("serial"):
            return "serial", str(line["serial"])
        if line.get("rfid_uid"):
            return "tag", canonical_uid(str(line["rfid_uid"]))
        if line.get("gtin"):
            return "gtin", str(line["gtin"]).zfill(14)
        return evidence, f"ID-{line_no}-{unit}"

    out = []
    for line_no, line in enumerate(body["lines"], start=1):
        for unit in range(1, line["quantity"] + 1):
            if evidence == "label":
                out.append(
                    UnitReceipt(
                        line_no=line_no,
                        sku=line["sku"],
                        unit=unit,
                        evidence="label",
                        verified=False,
                    )
                )
                continue
            kind, identifier = proof(line, line_no, unit)
            out.append(
                UnitReceipt(
                    line_no=line_no,
                    sku=line["sku"],
                    unit=unit,
                    evidence=kind,
                    verified=True,
                    identifier=identifier,
                )
            )
    return out


def parcel_for(rma: Any, disposition: str, evidence: str = "gtin") -> ParcelEvent:
    """A parcel event sorting every unit of the stored ``rma`` to ``disposition``.

    Each unit is claimed by ``evidence`` (``label`` never verifies; any other evidence
    verifies, with a made-up identifier); the divert is confirmed unless quarantined.
    """
    units = [
        UnitReceipt(
            line_no=line.line_no,
            sku=line.sku,
            unit=unit,
            evidence=evidence,
            verified=evidence != "label",
            identifier=None if evidence == "label" else f"ID-{line.line_no}-{unit}",
        )
        for line in rma.lines
        for unit in range(1, line.quantity + 1)
    ]
    event_id = uuid.uuid4().hex[:16]
    return ParcelEvent(
        event_id=event_id,
        station="st1",
        parcel_id=parcel_id_for(event_id),
        inducted_at=datetime(2026, 11, 30, 10, 0, tzinfo=UTC),
        length_mm=300.0,
        barcode=rma.number,
        rma_number=rma.number,
        lane=disposition,
        disposition=disposition,
        reason="matched" if disposition != "quarantine" else "unverified",
        diverted=disposition != "quarantine",
        divert_confirmed=True if disposition != "quarantine" else None,
        units=units,
    )
