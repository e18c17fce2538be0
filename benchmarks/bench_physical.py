"""Checkweigher path: the physical rule's cost per parcel and the Toledo decoder's rate.

- ``physical check p50 / p99``: :func:`edge.sorter.physical.check_parcel` on a parcel claiming
  two lines (3 + 1 units, weight and footprint), against the disposition table's
  :func:`edge.sorter.policy.decide` for the same parcel: what the check adds to a decision.
- ``Toledo frames decoded/s``: :class:`edge.drivers.pyserial_scale.ToledoFramer` on a
  stream of 18-byte frames with checksum, against the fastest rate a serial line can carry
  them (115 200 baud, 10 bits per byte): the headroom of the reader thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from benchmarks import Figure
from edge.drivers.pyserial_scale import ToledoFramer
from edge.sorter.model import Identity, RmaLineRecord
from edge.sorter.physical import Claim, Footprint, PhysicalCheck, WeightMeasure, check_parcel
from edge.sorter.policy import Facts, decide, default_policy

N_CHECKS = 20_000
N_FRAMES = 20_000
FRAME_BYTES = 18
FASTEST_LINE_FRAMES_S = 115_200 / 10 / FRAME_BYTES


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def _frame(grams: int) -> bytes:
    body = bytes([0x02, 0x2A, 0x20, 0x21]) + f"{grams:06d}".encode() + b"000000\r"
    return body + bytes([-sum(body) & 0x7F])


def _timed(call: Callable[[], object], n: int) -> list[float]:
    """Microseconds of each of ``n`` calls."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        call()
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def run() -> list[Figure]:
    """The two figures of the module doc."""
    mug = RmaLineRecord("MUG", 3, weight_g=400, length_mm=120, width_mm=90, height_mm=100)
    shoe = RmaLineRecord("SHOE-42", 1, weight_g=850, length_mm=330, width_mm=210, height_mm=120)
    claims = (Claim(mug, 3), Claim(shoe))
    check = PhysicalCheck()
    weight, footprint = WeightMeasure(2100.0), Footprint(400, 300)
    policy = default_policy()
    facts = Facts(Identity.MATCHED, "authorized", "A", "camera", "MUG", None, "size")
    ours = _timed(lambda: check_parcel(claims, check, weight=weight, footprint=footprint), N_CHECKS)
    base = _timed(lambda: decide(policy, facts), N_CHECKS)
    stream = b"".join(_frame(g % 30_000) for g in range(N_FRAMES))
    framer = ToledoFramer()
    t0 = time.perf_counter()
    for i in range(0, len(stream), 256):
        framer.feed(stream[i : i + 256], 0.0)
    rate = N_FRAMES / (time.perf_counter() - t0)
    return [
        *(
            Figure(
                f"physical check p{int(p * 100)} (2 lines, weight + footprint)",
                _pct(ours, p),
                "us",
                f"policy decide() p{int(p * 100)}, same parcel",
                _pct(base, p),
                higher_is_better=False,
            )
            for p in (0.5, 0.99)
        ),
        Figure(
            "Toledo frames decoded/s",
            rate,
            "1/s",
            "frames/s of a 115200 baud line",
            FASTEST_LINE_FRAMES_S,
        ),
    ]
