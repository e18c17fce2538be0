"""The sorter core on the virtual belt: parcels sorted per second, and the throughput sweep.

Speed: parcels per second of wall time the core sorts on the virtual belt (all inputs,
wake-ups and gate commands), against what the belt needs at its mechanical limit (the
headroom of the core). Throughput: the highest arrival rate with zero mis-sorts (every
parcel in its lane: collisions and fail-safe quarantines both count), found by sweeping
the gap down in 5 mm steps, against the mechanical limit ``speed / (length + minimum
gap)``, where the minimum gap is the belt travel during one diverter cycle (stroke + two
margins): no gate can switch between two parcels closer than that.
"""

from __future__ import annotations

import random
import time

from benchmarks import Figure
from edge.sorter.model import BeltConfig, Disposition, LaneSpec, RmaLineRecord, RmaRecord
from simulator.vbelt import VParcel, run_virtual

N_SPEED = 2000
N_SWEEP = 120
LENGTH_MM = 300.0


def demo_belt() -> BeltConfig:
    """The demo geometry: 1 m/s, scan at 400 mm, gates at 1500 / 2300 / 3100 mm."""
    return BeltConfig(
        speed_mm_s=1000.0,
        scan_pos_mm=400.0,
        scan_tol_mm=50.0,
        gate_stroke_ms=60.0,
        gate_margin_ms=40.0,
        lanes=(
            LaneSpec("restock", Disposition.RESTOCK, 1500.0, "restock"),
            LaneSpec("refurbish", Disposition.REFURBISH, 2300.0, "refurbish"),
            LaneSpec("recycle", Disposition.RECYCLE, 3100.0, "recycle"),
            LaneSpec("quarantine", Disposition.QUARANTINE, 4000.0, None),
        ),
    )


class _Directory:
    def __init__(self, numbers: list[str]) -> None:
        self.rmas = {
            n: RmaRecord(n, "authorized", 1, (RmaLineRecord("SKU-1", 1),), "changed_mind")
            for n in numbers
        }

    def lookup_rma(self, number: str) -> RmaRecord | None:
        return self.rmas.get(number)

    def find_rmas(self, kind: str, value: str) -> tuple[str, ...]:
        return ()


def _stream(n: int, gap_mm: float, seed: int = 1) -> tuple[list[VParcel], list[str]]:
    """Alternating known (restock) and unknown (quarantine) parcels: gates must switch."""
    rng = random.Random(seed)
    parcels, expected = [], []
    for i in range(n):
        known = i % 2 == 0 or rng.random() < 0.3
        parcels.append(
            VParcel(LENGTH_MM, gap_mm, label=f"RMA-{i:06d}" if known else f"RMA-X{i:06d}")
        )
        expected.append("restock" if known else "quarantine")
    return parcels, expected


def min_gap_mm(cfg: BeltConfig) -> float:
    """Belt travel during one diverter cycle: stroke plus a margin each side, mm."""
    return (cfg.gate_stroke_ms + 2 * cfg.gate_margin_ms) * cfg.speed_mm_s / 1000.0


def mechanical_limit_per_h(cfg: BeltConfig, length_mm: float = LENGTH_MM) -> float:
    """Speed / (length + minimum gap), parcels per hour."""
    return cfg.speed_mm_s * 3600.0 / (length_mm + min_gap_mm(cfg))


def mis_sorts_at(cfg: BeltConfig, gap_mm: float, n: int = N_SWEEP) -> int:
    """Parcels not in their lane (collisions and fail-safe quarantines count) at this gap."""
    parcels, expected = _stream(n, gap_mm)
    directory = _Directory([p.label for p in parcels if p.label and "X" not in p.label])
    run = run_virtual(cfg, directory, parcels)
    return sum(lane != want for lane, want in zip(run.lanes(), expected, strict=True))


def sweep(cfg: BeltConfig, step_mm: float = 5.0) -> tuple[float, float]:
    """Smallest gap (mm) with zero mis-sorts, scanning down from 3x the minimum gap.

    Returns (gap_mm, parcels per hour at that gap).
    """
    best = None
    gap = 3 * min_gap_mm(cfg)
    while gap > 0:
        if mis_sorts_at(cfg, gap) != 0:
            break
        best = gap
        gap -= step_mm
    if best is None:
        raise RuntimeError("no gap sorts without mis-sorts")
    return best, cfg.speed_mm_s * 3600.0 / (LENGTH_MM + best)


def _core_rate(cfg: BeltConfig) -> float:
    parcels, _ = _stream(N_SPEED, 400.0)
    directory = _Directory([p.label for p in parcels if p.label and "X" not in p.label])
    t0 = time.perf_counter()
    run_virtual(cfg, directory, parcels)
    return N_SPEED / (time.perf_counter() - t0)


def run() -> list[Figure]:
    """Core speed and the throughput sweep on the demo geometry."""
    cfg = demo_belt()
    gap, rate = sweep(cfg)
    limit = mechanical_limit_per_h(cfg)
    return [
        Figure(
            f"core: parcels sorted/s (virtual belt, {N_SPEED})",
            _core_rate(cfg),
            "1/s",
            "needed at the mechanical limit",
            mechanical_limit_per_h(cfg) / 3600.0,
        ),
        Figure(
            f"sweep: max parcels/h, 0 mis-sorts (gap {gap:.0f} mm)",
            rate,
            "parcels/h",
            f"mechanical limit v/(L+{min_gap_mm(cfg):.0f} mm)",
            limit,
        ),
    ]
