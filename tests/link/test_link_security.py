"""The shipped broker config (hardware/mosquitto.conf + .acl), passwords and TLS, for real."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edge.link import StationLink
from edge.store import StationStore
from protocol import HeadRevision, StationStatus, Topics, decode, encode
from simulator.procs import free_port
from simulator.testing import wait_until
from tests.link.conftest import HARDWARE, ConfiguredBroker, ann

pytestmark = pytest.mark.broker

PASSWORDS = {
    "gateway": "gw-secret",
    "bridge": "bridge-secret",
    "st1": "st1-secret",
    "st2": "st2-secret",
}
SITE = "site1"


def render_site_conf(
    root: Path,
    certs: Path,
    port: int,
    tls_port: int,
    site: str = SITE,
    passwords: dict[str, str] | None = None,
) -> str:
    """The shipped config and ACL (for ``site``) with this test's paths and ports."""
    etc = root / "etc"
    (etc / "certs").mkdir(parents=True)
    for name in ("ca.crt", "broker.crt", "broker.key"):
        (etc / "certs" / name).write_bytes((certs / name).read_bytes())
    acl = (HARDWARE / "mosquitto.acl").read_text()
    assert "SITE_ID" in acl, "the shipped ACL names its site as SITE_ID"
    (etc / "returns.acl").write_text(acl.replace("SITE_ID", site))
    passwd = etc / "returns.passwd"
    for i, (user, password) in enumerate((passwords or PASSWORDS).items()):
        flags = ["-c"] if i == 0 else []
        subprocess.run(
            ["mosquitto_passwd", *flags, "-b", str(passwd), user, password],
            check=True,
            capture_output=True,
        )
    (root / "data").mkdir()
    text = (HARDWARE / "mosquitto.conf").read_text()
    replaced = {
        "/etc/mosquitto/": f"{etc}/",
        "/var/lib/mosquitto/": f"{root / 'data'}/",
        "listener 1883 127.0.0.1": f"listener {port} 127.0.0.1",
        "listener 8883": f"listener {tls_port} 127.0.0.1",
    }
    for old, new in replaced.items():
        assert old in text, f"shipped mosquitto.conf no longer has {old!r}"
        text = text.replace(old, new)
    if os.geteuid() == 0:  # as root, mosquitto would drop to a user that cannot read tmp
        text += "user root\n"
    return text


@pytest.fixture(scope="module")
def secure_broker(
    tmp_path_factory: pytest.TempPathFactory, dev_certs: Path
) -> Iterator[ConfiguredBroker]:
    root = tmp_path_factory.mktemp("secure")
    port, tls_port = free_port(), free_port()
    broker = ConfiguredBroker(root / "run", render_site_conf(root, dev_certs, port, tls_port), port)
    broker.tls_port = tls_port  # type: ignore[attr-defined]
    broker.start()
    yield broker
    broker.stop()


class Client:
    """A paho client with credentials that records what it receives and PUBACK codes."""

    def __init__(
        self,
        port: int,
        user: str | None,
        password: str | None = None,
        *,
        v5: bool = False,
    ) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.pubacks: dict[int, Any] = {}
        self.connack: Any = None
        self._lock = threading.Lock()
        self._subacks: set[int] = set()
        protocol = MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex, protocol=protocol
        )
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = lambda _c, _u, mid, _r, _p: self._subacks.add(mid)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_until(lambda: self.connack is not None, what="CONNACK")

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, bytes(msg.payload)))

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self._lock:
            self.pubacks[mid] = reason

    def subscribe(self, topic: str) -> None:
        _rc, mid = self.client.subscribe(topic, qos=1)
        wait_until(lambda: mid in self._subacks, what=f"SUBACK {topic}")

    def publish(self, topic: str, payload: bytes) -> Any:
        """Publish at QoS 1 and return the PUBACK reason code (MQTT 5) once acknowledged."""
        info = self.client.publish(topic, payload, qos=1)
        return wait_until(lambda: self.pubacks.get(info.mid), what="PUBACK")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients(secure_broker: ConfiguredBroker) -> Iterator[Any]:
    made: list[Client] = []

    def factory(user: str | None, password: str | None = None, **kw: Any) -> Client:
        c = Client(secure_broker.port, user, password, **kw)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


def test_anonymous_and_wrong_password_are_refused(clients: Any) -> None:
    assert str(clients(None).connack) == "Not authorized"
    assert str(clients("st1", "wrong").connack) == "Not authorized"
    assert str(clients("st1", PASSWORDS["st1"]).connack) == "Success"


def test_station_cannot_publish_an_rma_nor_impersonate_another_station(clients: Any) -> None:
    gateway = clients("gateway", PASSWORDS["gateway"])
    gateway.subscribe(f"rs/v1/{SITE}/#")
    st1 = clients("st1", PASSWORDS["st1"])
    own, other = Topics(SITE, "st1"), Topics(SITE, "st2")
    forbidden = [
        (other.rma, encode(ann("RMA-EVIL", 999))),
        (other.policy, b'{"version": 99}'),
        (other.head, encode(HeadRevision(site=SITE, revision=10**6))),
        (other.event, b'{"kind":"parcel","station":"st2"}'),
        (other.status, encode(StationStatus(station="st2", state="offline"))),
        (own.sync_response, b'{"kind":"sync_batch"}'),
        (own.command, b'{"kind":"command"}'),
        ("rs/v1/site2/st1/event/extra", b"{}"),
    ]
    for topic, payload in forbidden:
        st1.publish(topic, payload)  # MQTT 3.1.1: acknowledged, then silently dropped
    allowed = [
        (own.event, b'{"n": 1}'),
        (own.status, encode(StationStatus(station="st1", state="online"))),
        (own.command_reply, b'{"n": 2}'),
    ]
    for topic, payload in allowed:
        st1.publish(topic, payload)
    wait_until(lambda: len(gateway.received) >= len(allowed), what="allowed messages")
    assert gateway.received == allowed  # in order, and nothing forbidden got through


def test_mqtt5_station_gets_not_authorized_for_an_rma(clients: Any) -> None:
    gateway = clients("gateway", PASSWORDS["gateway"])
    gateway.subscribe(f"rs/v1/{SITE}/rma")
    st1 = clients("st1", PASSWORDS["st1"], v5=True)
    reason = st1.publish(Topics(SITE).rma, encode(ann("RMA-EVIL", 1)))
    assert (reason.value, str(reason)) == (0x87, "Not authorized")
    # a second connection as "gateway" would take the first one's id (and session): the
    # central bridge's account writes the tree as well
    ok = clients("bridge", PASSWORDS["bridge"], v5=True)
    assert ok.publish(Topics(SITE).rma, encode(ann("RMA-OK", 1))).value == 0
    wait_until(lambda: gateway.received, what="gateway's RMA")
    assert [json.loads(p)["number"] for _, p in gateway.received] == ["RMA-OK"]


def test_station_link_over_tls_with_its_credentials(
    secure_broker: ConfiguredBroker, dev_certs: Path, clients: Any, tmp_path: Path
) -> None:
    gateway = clients("gateway", PASSWORDS["gateway"])
    topics = Topics(SITE, "st1")
    gateway.subscribe(topics.event)
    gateway.subscribe(topics.sync_request)
    link = StationLink(
        site=SITE,
        station="st1",
        host="127.0.0.1",
        port=secure_broker.tls_port,  # type: ignore[attr-defined]
        store=StationStore(tmp_path / "st1.db"),
        username="st1",
        password=PASSWORDS["st1"],
        tls_ca=str(dev_certs / "ca.crt"),
    )
    link.start()
    try:
        assert link.wait_connected(10)
        link.publish_event(b'{"over": "tls"}')
        wait_until(lambda: [p for t, p in gateway.received if t == topics.event], what="event")
        wait_until(lambda: link.store.outbox_depth() == 0, what="PUBACK over TLS")
        assert [p for t, p in gateway.received if t == topics.event] == [b'{"over": "tls"}']
        assert [t for t, _ in gateway.received].count(topics.sync_request) >= 1
        assert link.status()["dead_letters"] == 0
    finally:
        link.stop()


def test_broker_refuses_a_station_that_trusts_another_ca(
    secure_broker: ConfiguredBroker, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    subprocess.run(
        ["bash", str(HARDWARE.parent / "scripts" / "make-dev-certs.sh"), str(other)],
        check=True,
        capture_output=True,
    )
    link = StationLink(
        site=SITE,
        station="st1",
        host="127.0.0.1",
        port=secure_broker.tls_port,  # type: ignore[attr-defined]
        store=StationStore(tmp_path / "st1.db"),
        username="st1",
        password=PASSWORDS["st1"],
        tls_ca=str(other / "ca.crt"),
    )
    link.start()
    try:
        assert not link.wait_connected(2)  # certificate verification fails, every time
        assert decode(encode(StationStatus(station="st1", state="online")), StationStatus)
    finally:
        link.stop(publish_offline=False)
