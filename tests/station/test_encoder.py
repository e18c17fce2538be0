"""Encoder end to end on the real daemon: counts reach the core, gates follow speed changes.

A test belt (a thread) moves parcels by a speed profile that changes while parcels are
between their decision and their gate; it drives the encoder's pulse pin (gpiozero mock
pin), the induct photo-eye pin and hands each label read to the station as the scan tunnel
sees it; at each gate it looks at the gate's pin while the parcel passes. The station
knows only the counts: every parcel must still end in its lane (0 mis-sorts).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge.daemon import StationDaemon
from edge.drivers.framing import ScanFrame
from edge.station.encoder import EncoderSampler
from edge.station.inputs import EncoderCount, StationInput
from simulator.testing import (
    ManualClock,
    announcement,
    label_trusting_policy_payload,
    station_config,
    wait_until,
)

MM_PER_PULSE = 2.0
LENGTH_MM = 300.0
GATES = {"restock": (1500.0, 17, True), "recycle": (2300.0, 22, False)}
END_MM = 3000.0


def speed_mm_ms(t_ms: float) -> float:
    """1 m/s, then half speed, then 1.3 m/s: changes while parcels head for their gate."""
    return 1.0 if t_ms < 2000 else 0.5 if t_ms < 4200 else 1.3


@dataclass
class Parcel:
    start_mm: float  # belt travel at which its lead reaches the photo-eye
    code: str
    expected: str
    scanned: bool = False
    lane: str | None = None
    seen: dict[str, list[bool]] = field(default_factory=dict)


def run_belt(daemon: StationDaemon, parcels: list[Parcel], stop: threading.Event) -> None:
    pins = daemon.devices.pin_factory
    encoder, eye = pins.pin(20), pins.pin(4)
    gate_pins = {lane: (pins.pin(p), high) for lane, (_, p, high) in GATES.items()}
    t0 = last = time.monotonic() * 1000.0
    pos = pulses = 0.0
    eye_blocked = False
    while not stop.is_set() and any(p.lane is None for p in parcels):
        now = time.monotonic() * 1000.0
        pos += (now - last) * speed_mm_ms(now - t0)
        last = now
        while pulses + 1 <= pos / MM_PER_PULSE:
            pulses += 1
            encoder.drive_high()
            encoder.drive_low()
        blocked = any(0.0 <= pos - p.start_mm <= LENGTH_MM for p in parcels)
        if blocked != eye_blocked:
            eye_blocked = blocked
            (eye.drive_high if blocked else eye.drive_low)()
        for p in parcels:
            lead = pos - p.start_mm
            if not p.scanned and lead >= 400.0 + LENGTH_MM / 2:
                p.scanned = True
                daemon.submit(ScanFrame(p.code, None, daemon.clock(), False))
            if p.lane is not None:
                continue
            for lane, (gate_mm, _, _) in GATES.items():
                pin, high = gate_pins[lane]
                if gate_mm <= lead <= gate_mm + LENGTH_MM:  # passing the gate
                    p.seen.setdefault(lane, []).append(bool(pin.state) == high)
                elif lead > gate_mm + LENGTH_MM and lane in p.seen and all(p.seen[lane]):
                    p.lane = lane  # energised all along its passage: diverted
            if lead > END_MM + LENGTH_MM and p.lane is None:
                p.lane = "quarantine" if not any(any(v) for v in p.seen.values()) else "collision"
        time.sleep(0.0005)


@pytest.mark.realtime  # parcels on a real-time belt: run one at a time (Makefile)
def test_speed_changes_after_the_decision_sort_with_no_mis_sort(
    tmp_path: Path, scanner_pty: str
) -> None:
    config = station_config(
        tmp_path,
        scanner_pty,
        encoder={"pin_a": 20, "mm_per_pulse": MM_PER_PULSE},
        belt={"speed_mm_s": 1000, "scan_pos_mm": 400, "scan_tol_mm": 80, "length_mm": END_MM},
    )
    daemon = StationDaemon(config)
    known = [f"RMA-00000{i}" for i in range(1, 5)]
    for number in known:
        daemon.store.apply_announcement(announcement(number))
    codes = [known[0], known[1], "RMA-999999", known[2], known[3], "RMA-999998"]
    parcels = [
        Parcel(300.0 + 750.0 * i, code, "restock" if code in known else "quarantine")
        for i, code in enumerate(codes)
    ]
    stop = threading.Event()
    belt = threading.Thread(target=run_belt, args=(daemon, parcels, stop), daemon=True)
    try:
        daemon.apply_policy(label_trusting_policy_payload())  # label-only parcels
        daemon.start()
        belt.start()
        wait_until(
            lambda: all(p.lane is not None for p in parcels), what="every parcel out", timeout_s=30
        )
    finally:
        stop.set()
        belt.join(5)
        daemon.stop()
    assert [p.lane for p in parcels] == [p.expected for p in parcels]
    assert [d.lane.name for d in daemon.decisions] == [p.expected for p in parcels]
    assert daemon.core.odometer.mm_per_count == MM_PER_PULSE  # tracked by the counts


def test_the_sampler_submits_counts_in_station_time() -> None:
    class Counter:
        pulses = 7

    got: list[StationInput] = []
    clock = ManualClock(123.0)
    sampler = EncoderSampler(Counter(), got.append, clock, period_ms=5.0)  # type: ignore[arg-type]
    sampler.sample()
    assert got == [EncoderCount(123.0, 7)]


def test_samples_carry_their_last_counted_edge_time_when_the_encoder_knows_it() -> None:
    class Stamped:
        """An encoder whose pin factory stamps its edges (GpiozeroEncoder.sample)."""

        def __init__(self) -> None:
            self.last: tuple[float | None, int] = (None, 0)

        @property
        def pulses(self) -> int:
            return self.last[1]

        def sample(self) -> tuple[float | None, int]:
            return self.last

    enc, got = Stamped(), list[StationInput]()
    clock = ManualClock(100.0)
    sampler = EncoderSampler(enc, got.append, clock)  # type: ignore[arg-type]
    sampler.sample()  # no edge yet: now
    enc.last = (112.5, 40)
    clock.set(125.0)
    sampler.sample()  # the sampler ran 12.5 ms after the 40th count: stamped at the count
    clock.set(150.0)
    sampler.sample()  # no new count: a standing belt, now
    enc.last = (149.0, 41)
    clock.set(175.0)
    sampler.sample()  # an edge not after the previous sample: now
    assert got == [
        EncoderCount(100.0, 0),
        EncoderCount(112.5, 40),
        EncoderCount(150.0, 40),
        EncoderCount(175.0, 41),
    ]
