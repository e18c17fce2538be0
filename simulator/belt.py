"""The belt model: a SimPy discrete-event process per parcel, in real or accelerated time.

Each parcel blocks the induct photo-eye for its length, shows its label to the scanner (by
writing the code to the scanner's serial line) as it passes the scan tunnel, and at every
gate checks whether that gate's output is energised (and the diverter can move: powered,
not stuck) when its leading edge arrives: if so it is diverted into that lane, else it
runs on, to quarantine at the end of the belt. A parcel with an RFID tag puts a virtual tag
into the emulated MFRC522's field while its middle is within ``rfid_range_mm`` of the
reader (at the scan tunnel).

Only the lowest layer is touched, through :class:`StationIO`: gpiozero MockFactory pins
and the MFRC522 emulator (in the station's process), and the pty master of the scanner.
Time: ``rate`` virtual ms per real ms (1: real time); ``clock`` is the station's
(virtual) monotonic clock, used to stamp each induct for matching the station's reports.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import simpy
import simpy.rt
from gpiozero.pins.mock import MockPin

from simulator.hw.mfrc522_emu import MFRC522Emulator, VirtualTag
from simulator.scenario import SimParcel


class StationIO(Protocol):
    """The station's lowest hardware layer as the belt touches it."""

    def eye(self, blocked: bool) -> None:
        """Drive the induct photo-eye pin."""

    def tag(self, uid: str, present: bool) -> None:
        """Put a tag into (or take it out of) the reader's field."""

    def gate_energised(self, lane: str) -> bool:
        """True while that lane's gate output is energised (False: station down)."""


class PinIO:
    """:class:`StationIO` on MockFactory pins and an emulator in this process.

    Args:
        eye_pin: the photo-eye input pin; ``eye_blocked_high`` gives its polarity.
        gates: ``{lane: (gate output pin, active_high)}``.
        rfid: the emulated reader, or None.
    """

    def __init__(
        self,
        eye_pin: MockPin,
        eye_blocked_high: bool,
        gates: dict[str, tuple[MockPin, bool]],
        rfid: MFRC522Emulator | None = None,
    ) -> None:
        self.eye_pin = eye_pin
        self.eye_blocked_high = eye_blocked_high
        self.gates = gates
        self.rfid = rfid
        self._tags: dict[str, VirtualTag] = {}

    def eye(self, blocked: bool) -> None:
        """Drive the photo-eye pin."""
        if blocked == self.eye_blocked_high:
            self.eye_pin.drive_high()
        else:
            self.eye_pin.drive_low()

    def tag(self, uid: str, present: bool) -> None:
        """Place or remove a tag at the emulated reader."""
        if self.rfid is None:
            return
        if present:
            self._tags[uid] = self.rfid.place(VirtualTag(bytes.fromhex(uid), sak=0x00))
        elif uid in self._tags:
            self.rfid.remove(self._tags.pop(uid))

    def gate_energised(self, lane: str) -> bool:
        """The gate output's level against its polarity."""
        pin, active_high = self.gates[lane]
        return bool(pin.state) == active_high


@dataclass(frozen=True)
class GateSpot:
    """A gate as the belt sees it."""

    lane: str
    pos_mm: float


@dataclass
class Passage:
    """What the belt saw of one parcel."""

    index: int
    induct_clock_ms: float | None = None
    lane: str | None = None
    exit_clock_ms: float | None = None


class Belt:
    """Belt model.

    Args:
        speed_mm_s: belt speed, mm/s.
        length_mm: from the photo-eye to the end of the belt (quarantine), mm.
        scan_pos_mm: scan tunnel position, mm.
        io: the station's pins and reader.
        scanner_fd: the pty master of the scanner's serial line.
        gates: the gates.
        suffix: bytes ending each scan on the serial line.
        rfid_range_mm: read range of the reader along the belt, mm.
        rate: virtual ms per real ms.
        clock: the station's monotonic clock (virtual ms).
        gate_works: ``(lane) -> bool``: False while the diverter cannot move (power cut,
            stuck), whatever its output says.
        on_exit: called with each parcel's :class:`Passage` as it leaves the belt.
    """

    def __init__(
        self,
        *,
        speed_mm_s: float,
        length_mm: float,
        scan_pos_mm: float,
        io: StationIO,
        scanner_fd: int,
        gates: list[GateSpot],
        suffix: bytes = b"\r",
        rfid_range_mm: float = 50.0,
        rate: float = 1.0,
        clock: Callable[[], float] = lambda: time.monotonic_ns() / 1e6,
        gate_works: Callable[[str], bool] = lambda lane: True,
        on_exit: Callable[[Passage], None] = lambda p: None,
    ) -> None:
        self.speed_mm_s = speed_mm_s
        self.length_mm = length_mm
        self.scan_pos_mm = scan_pos_mm
        self.io = io
        self.scanner_fd = scanner_fd
        self.gates = sorted(gates, key=lambda g: g.pos_mm)
        self.suffix = suffix
        self.rfid_range_mm = rfid_range_mm
        self.rate = rate
        self.clock = clock
        self.gate_works = gate_works
        self.on_exit = on_exit
        self.passages: dict[int, Passage] = {}
        self._lock = threading.Lock()
        self.env: simpy.rt.RealtimeEnvironment | None = None

    def _ms(self, mm: float) -> float:
        return mm * 1000.0 / self.speed_mm_s

    def _eye(self, p: SimParcel, blocked: bool) -> bool:
        if blocked:
            self.passages[p.index].induct_clock_ms = self.clock()
        self.io.eye(blocked)
        return False

    def _scan(self, code: bytes) -> bool:
        os.write(self.scanner_fd, code)
        return False

    def _tag(self, uid: str, present: bool) -> bool:
        self.io.tag(uid, present)
        return False

    def _parcel(self, env: simpy.Environment, p: SimParcel) -> simpy.events.ProcessGenerator:
        yield env.timeout(max(0.0, p.induct_at_ms - env.now))
        t0 = env.now
        self.passages[p.index] = Passage(p.index)
        steps: list[tuple[float, int, Callable[[], bool]]] = [
            (t0, 0, functools.partial(self._eye, p, True)),
            (t0 + self._ms(p.length_mm), 1, functools.partial(self._eye, p, False)),
        ]
        scan_at = t0 + self._ms(self.scan_pos_mm + p.length_mm / 2)
        for k, code in enumerate(p.scan_codes):
            data = code.encode() + self.suffix
            steps.append((scan_at + 20.0 * k, 2, functools.partial(self._scan, data)))
        if p.tag_uid is not None:
            range_ms = self._ms(self.rfid_range_mm)
            steps.append((scan_at - range_ms, 2, functools.partial(self._tag, p.tag_uid, True)))
            steps.append((scan_at + range_ms, 2, functools.partial(self._tag, p.tag_uid, False)))
        for gate in self.gates:
            at = t0 + self._ms(gate.pos_mm)
            steps.append((at, 3, functools.partial(self._at_gate, p, gate)))
        steps.append((t0 + self._ms(self.length_mm), 4, functools.partial(self._end, p)))
        for at, _, step in sorted(steps, key=lambda s: (s[0], s[1])):
            yield env.timeout(max(0.0, at - env.now))
            if step():
                return

    def _at_gate(self, p: SimParcel, gate: GateSpot) -> bool:
        if self.gate_works(gate.lane) and self.io.gate_energised(gate.lane):
            self._exit(p, gate.lane)
            return True
        return False

    def _end(self, p: SimParcel) -> bool:
        self._exit(p, "quarantine")
        return True

    def _exit(self, p: SimParcel, lane: str) -> None:
        with self._lock:
            passage = self.passages[p.index]
            passage.lane = lane
            passage.exit_clock_ms = self.clock()
        self.on_exit(passage)

    def run(
        self,
        parcels: list[SimParcel],
        tail_ms: float = 500.0,
        extra: Callable[[simpy.Environment], None] = lambda env: None,
    ) -> dict[int, str]:
        """Run every parcel through; returns {parcel index: lane reached}.

        ``extra`` may add processes (the fault timeline) to the environment first.
        """
        env = simpy.rt.RealtimeEnvironment(factor=0.001 / self.rate, strict=False)
        self.env = env
        for p in parcels:
            env.process(self._parcel(env, p))
        extra(env)
        last = max((p.induct_at_ms for p in parcels), default=0.0)
        env.run(until=last + self._ms(self.length_mm + 1000.0) + tail_ms)
        return {i: p.lane for i, p in self.passages.items() if p.lane is not None}
