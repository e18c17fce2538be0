"""Sorter core: decision rate and latency over a 1,000,000-line RMA cache.

Decisions per second and p50 / p99 decision latency of the pure core deciding parcels
against a real :class:`~edge.store.StationStore` (SQLite, WAL) holding 1,000,000 RMA
lines (a quarter with a tag UID). Latency is the wall time of the core call that
returns the decision (identification with its cache look-ups, policy, gate timing).
Baseline, same run, same RMA numbers: a bare primary-key ``SELECT`` on the same file.
Both run after one warm-up pass over those numbers, so neither pays for a cold cache.
Every read goes through the code classifier (``protocol.codes``) and every decision
lists its units with their evidence and the classified reads; the second run adds a
retail EAN-13 beside the label on 30 % of the parcels and a GS1-128 element string on
20 % (the classification and evidence cost of a real scan tunnel), and the third a
checkweigher platform with one weighing per parcel checked against the line's catalogue
weight (the physical check). Their cost is reported as a ratio against the label-only
decisions of the same run. Decision latency p99 should stay under 1 ms at 1 M cached
lines on an unloaded machine (reported, not asserted).
The throughput sweep against the mechanical limit is ``bench_sweep``.
"""

from __future__ import annotations

import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from benchmarks import Figure
from edge.sorter import SorterCore
from edge.sorter.model import Decision
from edge.store import StationStore
from simulator.testing import demo_belt

LINES = 1_000_000
PARCELS = 5_000
SEED = 11

DEMO = demo_belt()
WEIGHED = demo_belt(scale_pos_mm=700.0, scale_platform_mm=400.0, scale_tol_mm=50.0)
"""The demo belt with a checkweigher platform at 500..900 mm (a 300 mm parcel lies wholly
on it from 750 to 950 ms after its induct)."""


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def _number(i: int) -> str:
    return f"RMA-{i:08d}"


def _uid(i: int) -> str:
    return f"04{i:012X}"


def _grams(i: int) -> int:
    return 200 + i % 1000


def build_cache(path: Path, lines: int = LINES) -> StationStore:
    """A station cache with ``lines`` one-line RMAs, bulk-loaded with executemany."""
    StationStore(path).close()  # schema, triggers
    db = sqlite3.connect(path)

    def rows() -> object:
        for i in range(lines):
            payload = {
                "schema_version": 1,
                "kind": "rma",
                "number": _number(i),
                "revision": i + 1,
                "order_ref": f"ORD-{i:08d}",
                "state": "authorized",
                "reason": "changed_mind",
                "resolution": "refund",
                "lines": [
                    {
                        "line_no": 1,
                        "sku": f"SKU-{i % 5000:05d}",
                        "quantity": 1,
                        "gtin": None,
                        "serial": None,
                        "rfid_uid": _uid(i) if i % 4 == 0 else None,
                        "category": None,
                        "weight_g": _grams(i),
                    }
                ],
            }
            yield (_number(i), i + 1, "authorized", json.dumps(payload))

    with db:
        db.executemany(
            "INSERT INTO rmas(number, revision, state, payload) VALUES (?, ?, ?, ?)",
            rows(),  # type: ignore[arg-type]
        )
    db.close()
    return StationStore(path)


EAN13 = "]E04006381333931"
GS1_128 = "]C1" + "0109501101020917" + "17251231" + "10ABC123\x1d" + "21SN0001"


def decision_latency(
    store: StationStore, parcels: int = PARCELS, products: bool = False, weighed: bool = False
) -> tuple[float, list[float]]:
    """Run ``parcels`` through a core over ``store``; returns (decisions/s, latencies ms).

    ``products``: also read product codes beside the label; ``weighed``: a checkweigher
    weighs every parcel (module doc).
    """
    rng = random.Random(SEED)
    core = SorterCore(WEIGHED if weighed else DEMO, store)
    latencies: list[float] = []
    decisions = 0
    # 300 mm parcel + 700 mm gap at 1 m/s: decided before the next (with the platform, at
    # 1250 ms after its induct: 1200 mm gaps)
    period = 1500.0 if weighed else 1000.0
    started = time.perf_counter()
    for k in range(parcels):
        t0 = 1000.0 + k * period
        i = rng.randrange(LINES)
        core.on_photo_eye(t0, True)
        core.on_photo_eye(t0 + 300.0, False)
        code = _number(i) if rng.random() < 0.9 else f"RMA-X{i:07d}"
        core.on_barcode(t0 + 550.0, code)
        if products:
            draw = rng.random()
            if draw < 0.3:
                core.on_barcode(t0 + 555.0, EAN13)
            elif draw < 0.5:
                core.on_barcode(t0 + 555.0, GS1_128)
        if i % 4 == 0 and rng.random() < 0.5:
            core.on_rfid(t0 + 560.0, _uid(i))
        if weighed:
            core.on_weighing(t0 + 800.0, t0 + 880.0, _grams(i) + 150.0)
        wake = core.next_wakeup_ms()
        while wake is not None and wake <= t0 + period:
            c0 = time.perf_counter()
            out = core.advance(wake)
            c1 = time.perf_counter()
            if any(isinstance(a, Decision) for a in out):
                decisions += 1
                latencies.append((c1 - c0) * 1000.0)
            wake = core.next_wakeup_ms()
    elapsed = time.perf_counter() - started
    return decisions / elapsed, latencies


def select_latency(path: Path, lookups: int = PARCELS) -> tuple[float, list[float]]:
    """Bare primary-key SELECTs of the same kind of numbers: (lookups/s, latencies ms)."""
    rng = random.Random(SEED)
    db = sqlite3.connect(path)
    latencies = []
    started = time.perf_counter()
    for _ in range(lookups):
        i = rng.randrange(LINES)
        code = _number(i) if rng.random() < 0.9 else f"RMA-X{i:07d}"
        c0 = time.perf_counter()
        db.execute("SELECT revision, state, payload FROM rmas WHERE number = ?", (code,)).fetchone()
        latencies.append((time.perf_counter() - c0) * 1000.0)
    elapsed = time.perf_counter() - started
    db.close()
    return lookups / elapsed, latencies


class _Known:
    """Directory of the throughput runs: labels starting ``K`` are authorized RMAs."""

    def lookup_rma(self, number: str) -> object:
        from edge.sorter.model import RmaLineRecord, RmaRecord

        if not number.startswith("K"):
            return None
        return RmaRecord(number, "authorized", 1, (RmaLineRecord("SKU-1", 1),))


def run() -> list[Figure]:
    """Decision rate / latency over 1M cached lines (the throughput sweep: bench_sweep)."""
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "station.db"
        t0 = time.perf_counter()
        store = build_cache(path)
        build_s = time.perf_counter() - t0
        assert store.rma_count() == LINES
        select_latency(path)  # warm the page cache for both measurements (same numbers)
        rate, lat = decision_latency(store)
        _, mixed = decision_latency(store, products=True)
        _, weighed = decision_latency(store, products=True, weighed=True)
        store.close()
        base_rate, base_lat = select_latency(path)
    print(f"  (cache of {LINES:,} RMA lines built in {build_s:.1f} s)")
    figures += [
        Figure(
            "core decisions/s (1M RMA lines, SQLite)", rate, "1/s", "bare PK SELECT/s", base_rate
        ),
        Figure(
            "core decision latency p50 (1M lines)",
            _pct(lat, 0.5),
            "ms",
            "bare PK SELECT p50",
            _pct(base_lat, 0.5),
            higher_is_better=False,
        ),
        Figure(
            "core decision latency p99 (1M lines)",
            _pct(lat, 0.99),
            "ms",
            "bare PK SELECT p99",
            _pct(base_lat, 0.99),
            higher_is_better=False,
        ),
        Figure(
            "core decision latency p99, with product codes (1M lines)",
            _pct(mixed, 0.99),
            "ms",
            "bare PK SELECT p99",
            _pct(base_lat, 0.99),
            higher_is_better=False,
        ),
        Figure(
            "decision p50, product codes + evidence (1M lines)",
            _pct(mixed, 0.5),
            "ms",
            "label-only decision p50",
            _pct(lat, 0.5),
            higher_is_better=False,
        ),
        Figure(
            "decision p50, codes + evidence + checkweigher",
            _pct(weighed, 0.5),
            "ms",
            "label-only decision p50",
            _pct(lat, 0.5),
            higher_is_better=False,
        ),
        Figure(
            "decision p99, codes + evidence + checkweigher",
            _pct(weighed, 0.99),
            "ms",
            "label-only decision p99",
            _pct(lat, 0.99),
            higher_is_better=False,
        ),
    ]
    return figures
