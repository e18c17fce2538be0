"""Station link figures, each beside a same-run baseline.

1. 100,000 RMA announcements published by the gateway bridge to an in-sync station: time
   until the last one is applied in the station's SQLite cache; baseline: a raw paho
   publisher and subscriber passing the same payloads through the same broker.
2. Station cache lookup p99 with 1,000,000 RMA lines (250,000 RMAs x 4 lines); baseline:
   the bare SQLite primary-key SELECT of the same row (no decoding into a record).
3. Resident memory of a fresh process with that cache open and warmed by the lookups;
   baseline: the same process (imports done) before it opened the cache.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from benchmarks import Figure
from edge.link import StationLink
from edge.store import StationStore
from gateway.db import Database
from gateway.mqtt_bridge import MqttBridge
from gateway.services.revisions import ensure_site
from protocol import RmaAnnouncement, RmaLine, encode
from simulator.procs import MosquittoBroker
from simulator.testing import wait_until

N_ANNOUNCEMENTS = 100_000
N_RMAS = 250_000
LINES_PER_RMA = 4
N_LOOKUPS = 20_000
WINDOW = 5_000  # at most this many published and not yet received, on both paths
SITE = "bench"


def _announcement(i: int) -> RmaAnnouncement:
    return RmaAnnouncement(
        number=f"RMA-{i:07d}",
        revision=i,
        order_ref=f"ORD-{i:07d}",
        reason="size",
        resolution="refund",
        lines=tuple(
            RmaLine(line_no=n, sku=f"SKU-{(i * 7 + n) % 5000:05d}", quantity=1, gtin=None)
            for n in range(1, LINES_PER_RMA + 1)
        ),
    )


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _raw_paho_s(port: int, payloads: list[bytes]) -> float:
    received = 0
    done = threading.Event()

    def on_message(_c: object, _u: object, _m: object) -> None:
        nonlocal received
        received += 1
        if received == len(payloads):
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-sub-{uuid.uuid4().hex[:6]}")
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    subacked = threading.Event()
    sub.on_subscribe = lambda *_a: subacked.set()
    wait_until(lambda: sub.is_connected(), timeout_s=10, what="the broker", poll_s=0.005)
    sub.subscribe("raw/rma", qos=1)
    subacked.wait(10)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-pub-{uuid.uuid4().hex[:6]}")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    wait_until(lambda: pub.is_connected(), timeout_s=10, what="the broker", poll_s=0.005)
    t0 = time.perf_counter()
    for i, p in enumerate(payloads):
        if i % 1000 == 0:
            floor = i - WINDOW
            wait_until(
                lambda: received >= floor,  # noqa: B023 (called at once)
                timeout_s=120,
                what="the broker",
                poll_s=0.005,
            )
        pub.publish("raw/rma", p, qos=1)
    done.wait(300)
    elapsed = time.perf_counter() - t0
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return elapsed


def _link_s(port: int, workdir: Path, anns: list[RmaAnnouncement]) -> float:
    db = Database(f"sqlite:///{workdir / 'gateway.db'}")
    db.create_all()
    with db.session() as s:
        ensure_site(s, SITE)
    bridge = MqttBridge(host="127.0.0.1", port=port, site=SITE, sessions=db.sessions)
    bridge.start()
    bridge.wait_ready(10)
    store = StationStore(workdir / "station.db")
    link = StationLink(site=SITE, station="st1", host="127.0.0.1", port=port, store=store)
    link.start()
    wait_until(lambda: link.in_sync, timeout_s=30, what="the broker", poll_s=0.005)
    t0 = time.perf_counter()
    for i, a in enumerate(anns):
        if i % 1000 == 0:
            floor = i - WINDOW
            wait_until(
                lambda: store.rma_revision() >= floor,  # noqa: B023 (called at once)
                timeout_s=120,
                what="the broker",
                poll_s=0.005,
            )
        bridge.publish_rma(a)
    wait_until(
        lambda: store.rma_revision() >= anns[-1].revision,
        timeout_s=300,
        what="the broker",
        poll_s=0.005,
    )
    elapsed = time.perf_counter() - t0
    assert store.rma_count() == len(anns)
    link.stop()
    bridge.stop()
    store.close()
    db.dispose()
    return elapsed


def _build_cache(path: Path) -> None:
    store = StationStore(path)
    batch: list[RmaAnnouncement] = []
    for i in range(1, N_RMAS + 1):
        batch.append(_announcement(i))
        if len(batch) == 5000:
            store.apply_changes(batch)
            batch = []
    store.apply_changes(batch)
    store.close()


def _lookups(path: Path) -> dict[str, float]:
    """Open the cache in this (fresh) process, look RMAs up, report p99s and RSS."""
    rss0 = _rss_mb()
    store = StationStore(path)
    rng = random.Random(1)
    numbers = [f"RMA-{rng.randrange(1, N_RMAS + 1):07d}" for _ in range(N_LOOKUPS)]
    ours, raw = [], []
    db = store._db  # the bare query on the same connection, for the baseline only
    for number in numbers:
        t = time.perf_counter_ns()
        record = store.lookup_rma(number)
        ours.append(time.perf_counter_ns() - t)
        assert record is not None and len(record.lines) == LINES_PER_RMA
        t = time.perf_counter_ns()
        db.execute(
            "SELECT revision, state, payload FROM rmas WHERE number = ?", (number,)
        ).fetchone()
        raw.append(time.perf_counter_ns() - t)
    rss1 = _rss_mb()
    store.close()

    def p99_us(v: list[int]) -> float:
        return sorted(v)[int(0.99 * len(v))] / 1000

    return {"p99": p99_us(ours), "raw_p99": p99_us(raw), "rss": rss1, "rss0": rss0}


def run() -> list[Figure]:
    """Measure the link and cache figures (about a minute on a 2-core machine)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        anns = [_announcement(i) for i in range(1, N_ANNOUNCEMENTS + 1)]
        payloads = [encode(a) for a in anns]
        broker = MosquittoBroker(work / "mosquitto")
        broker.start()
        try:
            raw_s = _raw_paho_s(broker.port, payloads)
            link_s = _link_s(broker.port, work, anns)
        finally:
            broker.stop()
        del anns, payloads
        _build_cache(work / "cache.db")
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_link", str(work / "cache.db")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        m = json.loads(out.strip().splitlines()[-1])
        p99, raw_p99, rss, rss0 = m["p99"], m["raw_p99"], m["rss"], m["rss0"]
    return [
        Figure(
            "100k RMA announcements to in-sync cache",
            link_s,
            "s",
            "raw paho pub/sub, same payloads",
            raw_s,
            higher_is_better=False,
        ),
        Figure(
            "cache lookup p99 (1M RMA lines)",
            p99,
            "us",
            "bare SQLite PK select",
            raw_p99,
            higher_is_better=False,
        ),
        Figure(
            "station RSS with 1M RMA lines",
            rss,
            "MB",
            "fresh process before opening it",
            rss0,
            higher_is_better=False,
        ),
    ]


if __name__ == "__main__":  # the lookup half runs in a fresh process: python -m ... CACHE
    print(json.dumps(_lookups(Path(sys.argv[1]))))
