"""Core speed and the throughput sweep on the virtual belt (issue 9), beside the mechanical limit.

Speed: parcels per second of wall time the core sorts on the virtual belt (all inputs,
wake-ups and gate commands), against what the belt needs at its mechanical limit (the
headroom of the core). Throughput: the highest arrival rate with zero mis-sorts (every
parcel in its lane: collisions and fail-safe quarantines both count), found by sweeping
the gap down in 5 mm steps, against the mechanical limit ``speed / (length + minimum
gap)``, where the minimum gap is the belt travel during one diverter cycle (stroke + two
margins): no gate can switch between two parcels closer than that.
"""

from __future__ import annotations

import time

from benchmarks import Figure
from edge.sorter.model import BeltConfig
from simulator.sweep import directory_for, min_gap_mm, per_hour, stream, sweep
from simulator.testing import demo_belt
from simulator.vbelt import run_virtual

N_SPEED = 2000
LENGTH_MM = 300.0


def _core_rate(cfg: BeltConfig) -> float:
    parcels, _ = stream(N_SPEED, LENGTH_MM, 400.0)
    directory = directory_for(parcels)
    t0 = time.perf_counter()
    run_virtual(cfg, directory, parcels)
    return N_SPEED / (time.perf_counter() - t0)


def run() -> list[Figure]:
    """Core speed and the throughput sweep on the demo geometry."""
    cfg = demo_belt()
    result = sweep(cfg, LENGTH_MM)
    limit = per_hour(cfg, LENGTH_MM, min_gap_mm(cfg))
    return [
        Figure(
            f"core: parcels sorted/s (virtual belt, {N_SPEED})",
            _core_rate(cfg),
            "1/s",
            "needed at the mechanical limit",
            limit / 3600.0,
        ),
        Figure(
            f"sweep: max parcels/h, 0 mis-sorts (gap {result.best_gap_mm:.0f} mm)",
            result.best_per_hour,
            "parcels/h",
            f"mechanical limit v/(L+{min_gap_mm(cfg):.0f} mm)",
            limit,
        ),
    ]
