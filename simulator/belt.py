"""The belt model: a SimPy discrete-event process per parcel, in real time.

Each parcel blocks the induct photo-eye for its length, shows its label to the scanner (by
writing the code to the scanner's serial line) as it passes the scan tunnel, and at every
gate checks whether that gate's output pin is energised when its leading edge arrives: if
so it is diverted into that lane, else it runs on, to quarantine at the end of the belt.
A parcel with an RFID tag puts a virtual tag into the emulated MFRC522's field while its
middle is within ``rfid_range_mm`` of the reader (at the scan tunnel).
Only the lowest layer is touched: gpiozero MockFactory pins, the pty master and the
MFRC522 emulator on the fake SPI bus.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import simpy
import simpy.rt
from gpiozero.pins.mock import MockPin

from simulator.hw.mfrc522_emu import MFRC522Emulator, VirtualTag
from simulator.scenario import SimParcel


@dataclass(frozen=True)
class GatePin:
    """A gate output as the belt sees it."""

    lane: str
    pos_mm: float
    pin: MockPin
    active_high: bool

    @property
    def energised(self) -> bool:
        """True while the diverter is in the belt."""
        return bool(self.pin.state) == self.active_high


class Belt:
    """Real-time belt model.

    Args:
        speed_mm_s: belt speed, mm/s.
        length_mm: from the photo-eye to the end of the belt (quarantine), mm.
        scan_pos_mm: scan tunnel position, mm.
        eye_pin: the photo-eye input pin; ``eye_blocked_high`` gives its polarity.
        scanner_fd: the pty master of the scanner's serial line.
        gates: the gate outputs.
        suffix: bytes ending each scan on the serial line.
        rfid: the emulated RFID reader at the scan tunnel, or None.
        rfid_range_mm: read range of the reader along the belt, mm.
    """

    def __init__(
        self,
        *,
        speed_mm_s: float,
        length_mm: float,
        scan_pos_mm: float,
        eye_pin: MockPin,
        eye_blocked_high: bool,
        scanner_fd: int,
        gates: list[GatePin],
        suffix: bytes = b"\r",
        rfid: MFRC522Emulator | None = None,
        rfid_range_mm: float = 50.0,
    ) -> None:
        self.speed_mm_s = speed_mm_s
        self.length_mm = length_mm
        self.scan_pos_mm = scan_pos_mm
        self.eye_pin = eye_pin
        self.eye_blocked_high = eye_blocked_high
        self.scanner_fd = scanner_fd
        self.gates = sorted(gates, key=lambda g: g.pos_mm)
        self.suffix = suffix
        self.rfid = rfid
        self.rfid_range_mm = rfid_range_mm
        self.outcomes: dict[int, str] = {}
        self._lock = threading.Lock()

    def _ms(self, mm: float) -> float:
        return mm * 1000.0 / self.speed_mm_s

    def _eye(self, blocked: bool) -> bool:
        if blocked == self.eye_blocked_high:
            self.eye_pin.drive_high()
        else:
            self.eye_pin.drive_low()
        return False

    def _scan(self, code: bytes) -> bool:
        os.write(self.scanner_fd, code)
        return False

    def _tag(self, tag: VirtualTag, present: bool) -> bool:
        assert self.rfid is not None
        if present:
            self.rfid.place(tag)
        else:
            self.rfid.remove(tag)
        return False

    def _parcel(self, env: simpy.Environment, p: SimParcel) -> simpy.events.ProcessGenerator:
        yield env.timeout(max(0.0, p.induct_at_ms - env.now))
        t0 = env.now
        steps: list[tuple[float, int, Callable[[], bool]]] = [
            (t0, 0, functools.partial(self._eye, True)),
            (t0 + self._ms(p.length_mm), 1, functools.partial(self._eye, False)),
        ]
        if p.barcode is not None:
            code = p.barcode.encode() + self.suffix
            at = t0 + self._ms(self.scan_pos_mm + p.length_mm / 2)
            steps.append((at, 2, functools.partial(self._scan, code)))
        if p.tag_uid is not None and self.rfid is not None:
            tag = VirtualTag(bytes.fromhex(p.tag_uid), sak=0x00)
            middle_at = t0 + self._ms(self.scan_pos_mm + p.length_mm / 2)
            range_ms = self._ms(self.rfid_range_mm)
            steps.append((middle_at - range_ms, 2, functools.partial(self._tag, tag, True)))
            steps.append((middle_at + range_ms, 2, functools.partial(self._tag, tag, False)))
        for gate in self.gates:
            at = t0 + self._ms(gate.pos_mm)
            steps.append((at, 3, functools.partial(self._at_gate, p, gate)))
        steps.append((t0 + self._ms(self.length_mm), 4, functools.partial(self._end, p)))
        for at, _, step in sorted(steps, key=lambda s: (s[0], s[1])):
            yield env.timeout(max(0.0, at - env.now))
            if step():
                return

    def _at_gate(self, p: SimParcel, gate: GatePin) -> bool:
        if gate.energised:
            with self._lock:
                self.outcomes[p.index] = gate.lane
            return True
        return False

    def _end(self, p: SimParcel) -> bool:
        with self._lock:
            self.outcomes[p.index] = "quarantine"
        return True

    def run(self, parcels: list[SimParcel], tail_ms: float = 500.0) -> dict[int, str]:
        """Run every parcel through in real time; returns {parcel index: lane reached}."""
        env = simpy.rt.RealtimeEnvironment(factor=0.001, strict=False)
        for p in parcels:
            env.process(self._parcel(env, p))
        last = max((p.induct_at_ms for p in parcels), default=0.0)
        env.run(until=last + self._ms(self.length_mm + 1000.0) + tail_ms)
        return dict(self.outcomes)
