"""The station link: events through the SQLite outbox to a real Mosquitto broker (QoS 1).

Our figure: events/s from ``publish_event`` (committed to the outbox) until the broker
acknowledged each and it left the outbox. Baseline, same run and broker: a bare paho
client publishing the same payloads at QoS 1 and waiting for every PUBACK, no outbox.
The ratio is the price of "nothing lost" (a durable outbox write and delete per event).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks import Figure
from edge.link import StationLink
from edge.store import StationStore
from simulator.procs import MosquittoBroker
from simulator.testing import wait_until

N = 2000
PAYLOAD = b'{"event_id": "0123456789abcdef0123456789abcdef", "lane": "restock"}' * 4


def _link_rate(port: int, workdir: Path) -> float:
    store = StationStore(workdir / "station.db")
    link = StationLink(
        site="bench",
        station="s1",
        host="127.0.0.1",
        port=port,
        store=store,
        status_interval_s=60.0,
        telemetry_interval_s=60.0,
    )
    link.start()
    try:
        if not link.wait_connected(10):
            raise RuntimeError("link did not connect")
        t0 = time.perf_counter()
        for _ in range(N):
            link.publish_event(PAYLOAD)
        wait_until(
            lambda: store.outbox_depth() == 0, timeout_s=120, what="an empty outbox", poll_s=0.002
        )
        return N / (time.perf_counter() - t0)
    finally:
        link.stop()
        store.close()


def _paho_rate(port: int) -> float:
    acked = threading.Semaphore(0)
    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-baseline")
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.on_connect = lambda *a: connected.set()
    client.on_publish = lambda *a: acked.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise RuntimeError("paho did not connect")
        t0 = time.perf_counter()
        for _ in range(N):
            client.publish("rs/v1/bench/s1/baseline", PAYLOAD, qos=1)
        for _ in range(N):
            if not acked.acquire(timeout=60):
                raise TimeoutError("PUBACKs missing")
        return N / (time.perf_counter() - t0)
    finally:
        client.loop_stop()
        client.disconnect()


def run() -> list[Figure]:
    """Outbox-backed link against bare paho, one broker."""
    with tempfile.TemporaryDirectory(prefix="bench-link-") as tmp:
        broker = MosquittoBroker(Path(tmp) / "broker")
        broker.start()
        try:
            ours = _link_rate(broker.port, Path(tmp))
            base = _paho_rate(broker.port)
        finally:
            broker.stop()
    return [
        Figure(
            f"link: events/s outbox -> broker acked ({N})",
            ours,
            "1/s",
            "bare paho QoS 1, no outbox",
            base,
        )
    ]
