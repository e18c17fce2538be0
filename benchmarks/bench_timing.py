"""Timing on a loaded station (issue 20): gate lateness and parcels/h at 2.5 m/s, quiet and busy.

The real station (simulator harness: Mosquitto, gateway and station daemon as processes)
runs the shipped ``tight-gaps`` scenario twice in the same run: on the machine as it is
("quiet") and with a bounded nice-0 spin loop per CPU beside it ("loaded",
:class:`simulator.procs.CpuLoad`, during the parcels only). Figures: gate lateness p99 and
max (ms) against the belt's gate margin (a firing later than that is refused:
``late_gate``), and the parcels/h sorted with 0 mis-sorts against the belt's limit
``v / (L + (stroke + margin) * v)``. Then the collector: the scheduler's lateness with a
station-sized heap and cyclic garbage made beside it, with
:func:`edge.scheduler.tune_runtime` (``gc.freeze``, thresholds, switch interval) against the
interpreter's defaults.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any

from benchmarks import Figure
from edge.clock import monotonic_ms
from edge.scheduler import Scheduler, tune_runtime
from simulator.harness import Report, Run
from simulator.procs import CpuLoad
from simulator.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "simulator" / "scenarios" / "tight-gaps.yaml"
N_FIRES = 400
PERIOD_MS = 5.0
HEAP_OBJECTS = 400_000  # long-lived objects, about what a running station holds


def _station(loaded: bool) -> Report:
    scenario = load_scenario(SCENARIO)
    with (
        tempfile.TemporaryDirectory() as tmp,
        CpuLoad(nice=0, max_s=90.0) as load,
        Run(scenario, Path(tmp)) as run,
    ):
        return run.execute(on_progress=load.during_belt if loaded else lambda _: None)


def _sorted_per_hour(report: Report) -> float:
    return report.parcels_per_hour if report.mis_sorts == 0 else 0.0


def _gc_lateness(tuned: bool) -> float:
    """Max lateness (ms) of N_FIRES firings while a thread makes cyclic garbage."""
    heap: list[Any] = [{"i": i, "s": str(i)} for i in range(HEAP_OBJECTS)]
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    if tuned:
        tune_runtime()
    stop = threading.Event()

    recent: deque[Any] = deque(maxlen=50_000)  # recent records: they live a while, then go

    def litter() -> None:
        while not stop.is_set():
            for i in range(2000):
                a: list[Any] = [{"n": i}]
                a.append(a)  # a cycle: only the collector frees it
                recent.append(a)
            stop.wait(0.001)

    sched = Scheduler(priority=50)
    sched.start()
    worker = threading.Thread(target=litter, daemon=True)
    worker.start()
    done = threading.Event()
    t0 = monotonic_ms() + 20.0
    try:
        for i in range(N_FIRES):
            sched.call_at(t0 + i * PERIOD_MS, lambda: None)
        sched.call_at(t0 + N_FIRES * PERIOD_MS + 1.0, done.set)
        done.wait(30.0)
    finally:
        stop.set()
        worker.join(timeout=5.0)
        sched.stop()
        gc.unfreeze()
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)
        del heap
        gc.collect()
    return max(list(sched.lateness_ms)[:N_FIRES])


def run() -> list[Figure]:
    """Station lateness and throughput quiet vs loaded, and the collector's effect."""
    scenario = load_scenario(SCENARIO)
    belt = scenario.station["belt"]
    speed, margin = float(belt["speed_mm_s"]), float(belt["gate_margin_ms"])
    length = scenario.parcels.length_mm[0]
    min_gap_mm = (float(belt["gate_stroke_ms"]) + margin) * speed / 1000.0
    limit = speed * 3600.0 / (length + min_gap_mm)
    quiet, loaded = _station(False), _station(True)
    figures = []
    for label, report in (("quiet", quiet), ("loaded", loaded)):
        late = report.gate_lateness_ms
        for stat in ("p99", "max"):
            figures.append(
                Figure(
                    f"tight-gaps 2.5 m/s gate lateness {stat}, {label}",
                    late.get(stat, float("inf")),
                    "ms",
                    "gate margin",
                    margin,
                    higher_is_better=False,
                )
            )
    for label, report in (("quiet", quiet), ("loaded", loaded)):
        figures.append(
            Figure(
                f"tight-gaps parcels/h, 0 mis-sorts, {label}",
                _sorted_per_hour(report),
                "parcels/h",
                f"belt limit v/(L+{min_gap_mm:.0f} mm)",
                limit,
            )
        )
    figures.append(
        Figure(
            "tight-gaps mis-sorts (of 60), loaded",
            float(loaded.mis_sorts),
            "parcels",
            "quiet",
            float(quiet.mis_sorts),
            higher_is_better=False,
        )
    )
    figures.append(
        Figure(
            "scheduler max lateness, cyclic garbage, tune_runtime",
            _gc_lateness(tuned=True),
            "ms",
            "default gc thresholds, no freeze",
            _gc_lateness(tuned=False),
            higher_is_better=False,
        )
    )
    return figures
