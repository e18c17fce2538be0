"""Throughput sweep: the highest arrival rate a belt geometry sorts with zero mis-sorts.

On the virtual belt (:mod:`simulator.vbelt`: the real sorter core in virtual time, the
physical gate model deciding where each parcel really goes), parcels of one length with
alternating lanes (known labels to restock, unknown to quarantine, so gates must switch)
run at a shrinking gap until a parcel misses its lane (a collision, or a fail-safe
quarantine such as ``gap_violation``). The result is reported against the mechanical
limit ``speed / (length + minimum gap)``, the minimum gap being the belt travel during one
diverter switch (stroke + margin): a gate starts moving a margin after one parcel's
trailing edge and must have finished its stroke before the next leading edge arrives.
The parcels show only their label, so the sweep runs with the explicit cheap-goods
verification rule (:func:`simulator.testing.label_trusting_policy`): it measures the belt,
not the evidence.

``returns-sim sweep SCENARIO.yaml`` sweeps the scenario's geometry; ``make bench`` sweeps
the demo's (``benchmarks/bench_core.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from edge.sorter.model import BeltConfig
from simulator.testing import Directory, label_trusting_policy
from simulator.vbelt import VParcel, run_virtual

N_PARCELS = 120


def stream(
    n: int, length_mm: float, gap_mm: float, seed: int = 1, graded: bool = False
) -> tuple[list[VParcel], list[str]]:
    """Known (restock) and unknown (quarantine) parcels, alternating at least every other.

    ``graded``: the camera grades every parcel A (a belt with ``camera_pos_mm``).
    """
    rng = random.Random(seed)  # seeded, reproducible simulation; never a secret  # nosec B311
    parcels, expected = [], []
    for i in range(n):
        known = i % 2 == 0 or rng.random() < 0.3
        label = f"RMA-{i:06d}" if known else f"RMA-X{i:06d}"
        parcels.append(VParcel(length_mm, gap_mm, label=label, grade="A" if graded else None))
        expected.append("restock" if known else "quarantine")
    return parcels, expected


def directory_for(parcels: list[VParcel]) -> Directory:
    """An RMA directory knowing every ``RMA-<n>`` label of ``parcels``."""
    return Directory.of_numbers([p.label for p in parcels if p.label and "X" not in p.label])


def min_gap_mm(cfg: BeltConfig) -> float:
    """Belt travel during one diverter switch: stroke plus margin, mm."""
    return (cfg.gate_stroke_ms + cfg.gate_margin_ms) * cfg.speed_mm_s / 1000.0


def per_hour(cfg: BeltConfig, length_mm: float, gap_mm: float) -> float:
    """Parcels per hour at this length and gap."""
    return cfg.speed_mm_s * 3600.0 / (length_mm + gap_mm)


def mis_sorts_at(cfg: BeltConfig, length_mm: float, gap_mm: float, n: int = N_PARCELS) -> int:
    """Parcels not in their lane at this gap (collisions and quarantines both count)."""
    parcels, expected = stream(n, length_mm, gap_mm, graded=cfg.camera_pos_mm is not None)
    run = run_virtual(cfg, directory_for(parcels), parcels, label_trusting_policy())
    return sum(lane != want for lane, want in zip(run.lanes(), expected, strict=True))


@dataclass(frozen=True)
class SweepResult:
    """The sweep's answer for one geometry and parcel length."""

    length_mm: float
    best_gap_mm: float
    best_per_hour: float
    min_gap_mm: float
    mechanical_limit_per_hour: float
    steps: tuple[tuple[float, int], ...]  # (gap mm, mis-sorts), in sweep order

    @property
    def ratio(self) -> float:
        """Achieved over mechanical limit."""
        return self.best_per_hour / self.mechanical_limit_per_hour


def sweep(cfg: BeltConfig, length_mm: float = 300.0, step_mm: float = 5.0) -> SweepResult:
    """Lower the gap from 3x the minimum gap in ``step_mm`` steps until a mis-sort.

    Raises:
        RuntimeError: when even the widest gap mis-sorts.
    """
    best = None
    steps: list[tuple[float, int]] = []
    gap = 3 * min_gap_mm(cfg)
    while gap > 0:
        bad = mis_sorts_at(cfg, length_mm, gap)
        steps.append((round(gap, 1), bad))
        if bad:
            break
        best = gap
        gap -= step_mm
    if best is None:
        raise RuntimeError("no gap sorts without mis-sorts")
    return SweepResult(
        length_mm,
        round(best, 1),
        round(per_hour(cfg, length_mm, best), 1),
        round(min_gap_mm(cfg), 1),
        round(per_hour(cfg, length_mm, min_gap_mm(cfg)), 1),
        tuple(steps),
    )
