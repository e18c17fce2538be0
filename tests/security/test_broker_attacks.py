"""Issue 15, kind 1 (the broker part): the shipped Mosquitto config and ACL, for real.

A station credential cannot take another client's id (so the gateway keeps its session and
a station loses no event), cannot reach another site's topics, and a message over the
broker's packet limit is refused while the largest legitimate photo passes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.link import StationLink
from edge.store import StationStore
from protocol import Topics
from protocol.messages import (
    MAX_MESSAGE_BYTES,
    MAX_PACKET_BYTES,
    MAX_PHOTO_BYTES,
    PhotoUpload,
    encode,
)
from simulator.procs import free_port
from simulator.testing import wait_until
from tests.link.conftest import (
    HARDWARE,
    ConfiguredBroker,
    dev_certs,  # noqa: F401  (the fixture, here too)
)
from tests.link.test_link_security import render_site_conf

pytestmark = pytest.mark.broker

SITE = "lyon"
PASSWORDS = {"gateway": "gw-secret-1", "st1": "st1-secret-1", "st2": "st2-secret-1"}


@pytest.fixture(scope="module")
def broker(
    tmp_path_factory: pytest.TempPathFactory,
    dev_certs: Path,  # noqa: F811
) -> Iterator[ConfiguredBroker]:
    root = tmp_path_factory.mktemp("site")
    port, tls_port = free_port(), free_port()
    conf = render_site_conf(root, dev_certs, port, tls_port, site=SITE, passwords=PASSWORDS)
    b = ConfiguredBroker(root / "run", conf, port)
    b.start()
    yield b
    b.stop()


class Peer:
    """A persistent-session paho client that records messages and disconnections."""

    def __init__(self, port: int, user: str, client_id: str, *, clean: bool = False) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.disconnects = 0
        self.connected = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean
        )
        self.client.username_pw_set(user, PASSWORDS[user])
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, bytes(m.payload)))
        self.client.reconnect_delay_set(60, 60)  # a kicked client stays off: visible
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_until(lambda: self.connected, what=f"{user} connected")

    def _on_connect(self, *_a: Any) -> None:
        self.connected = True

    def _on_disconnect(self, *_a: Any) -> None:
        self.connected = False
        self.disconnects += 1

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_station_cannot_take_the_gateways_id_nor_another_stations(
    broker: ConfiguredBroker, tmp_path: Path
) -> None:
    gateway = Peer(broker.port, "gateway", f"gateway-{SITE}")
    gateway.subscribe(f"rs/v1/{SITE}/+/event")
    link = StationLink(
        site=SITE,
        station="st1",
        host="127.0.0.1",
        port=broker.port,
        store=StationStore(tmp_path / "st1.db"),
        username="st1",
        password=PASSWORDS["st1"],
    )
    link.start()
    impostors: list[Peer] = []
    try:
        assert link.wait_connected(10)
        for i in range(5):
            link.publish_event(json.dumps({"n": i}).encode())
        # st2's credential asks for the gateway's id, then for st1's
        impostors.append(Peer(broker.port, "st2", f"gateway-{SITE}"))
        impostors.append(Peer(broker.port, "st2", f"station-{SITE}-st1"))
        for i in range(5, 10):
            link.publish_event(json.dumps({"n": i}).encode())
        topic = Topics(SITE, "st1").event
        wait_until(
            lambda: len([p for t, p in gateway.received if t == topic]) >= 10, what="10 events"
        )
        got = [json.loads(p)["n"] for t, p in gateway.received if t == topic]
        assert got == list(range(10))  # none lost, none doubled, in order
        assert (gateway.connected, gateway.disconnects) == (True, 0)
        assert link.wait_connected(1)
        wait_until(lambda: link.store.outbox_depth() == 0, what="every PUBACK")
        # the broker gave the impostor its user name as id, whatever id it asked for
        st2 = [line for line in broker.log_text().splitlines() if "u'st2'" in line]
        assert len(st2) >= 2 and all(" as st2 (" in line for line in st2), st2
    finally:
        for p in impostors:
            p.close()
        link.stop()
        gateway.close()


def test_a_station_cannot_reach_another_sites_topics(broker: ConfiguredBroker) -> None:
    gateway = Peer(broker.port, "gateway", "gw-sites", clean=True)
    gateway.subscribe("rs/v1/#")
    st1 = Peer(broker.port, "st1", "st1-sites", clean=True)
    try:
        wait_until(lambda: gateway.connected)
        for topic in ("rs/v1/paris/st1/event", "rs/v1/paris/st1/status", "rs/v1/paris/rma"):
            st1.publish(topic, b'{"evil": true}')
        st1.publish(f"rs/v1/{SITE}/st1/event", b'{"ok": true}')
        allowed = (f"rs/v1/{SITE}/st1/event", b'{"ok": true}')
        wait_until(lambda: allowed in gateway.received, what="the allowed event")
        assert not [t for t, _ in gateway.received if not t.startswith(f"rs/v1/{SITE}/")]
    finally:
        st1.close()
        gateway.close()


def test_the_packet_limit_refuses_50_mb_and_passes_the_largest_photo(
    broker: ConfiguredBroker,
) -> None:
    assert f"max_packet_size {MAX_PACKET_BYTES}\n" in (HARDWARE / "mosquitto.conf").read_text()
    photo = PhotoUpload(
        station="st1",
        sha256="0" * 64,
        taken_at=datetime(2025, 1, 1, tzinfo=UTC),
        jpeg_b64=base64.b64encode(b"\xff" * MAX_PHOTO_BYTES).decode(),
    )
    largest = encode(photo)
    assert len(largest) <= MAX_MESSAGE_BYTES
    gateway = Peer(broker.port, "gateway", "gw-size", clean=True)
    gateway.subscribe(f"rs/v1/{SITE}/+/photo")
    st1 = Peer(broker.port, "st1", "st1-size", clean=True)
    try:
        topic = Topics(SITE, "st1").photo
        st1.publish(topic, largest)
        wait_until(lambda: gateway.received, what="the photo", timeout_s=20)
        assert [len(p) for _, p in gateway.received] == [len(largest)]
        st1.client.publish(topic, b"x" * (50 * 1024 * 1024), qos=1)
        wait_until(lambda: st1.disconnects, what="the sender cut off", timeout_s=20)
        assert len(gateway.received) == 1  # nothing of the 50 MB reached anyone
    finally:
        st1.close()
        gateway.close()


def test_every_shipped_acl_line_names_the_site_placeholder() -> None:
    rules = [
        line.split()
        for line in (HARDWARE / "mosquitto.acl").read_text().splitlines()
        if line.startswith(("topic", "pattern"))
    ]
    assert rules and all(r[-1].startswith("rs/v1/SITE_ID/") for r in rules), rules
    assert not [r for r in rules if r[-1].startswith("rs/v1/+")]
    conf = (HARDWARE / "mosquitto.conf").read_text().splitlines()
    listeners = [i for i, line in enumerate(conf) if line.startswith("listener ")]
    for i in listeners:
        assert conf[i + 1] == "use_username_as_clientid true", conf[i]
