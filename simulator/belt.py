"""The belt model: a SimPy discrete-event process per parcel, in real or accelerated time.

Each parcel blocks the induct photo-eye for its length, shows its label to the scanner (by
writing the code to the scanner's serial line) as it passes the scan tunnel, and at every
gate checks whether that gate's output is energised (and the diverter can move: powered,
not stuck) when its leading edge arrives: if so it is diverted into that lane, else it
runs on, to quarantine at the end of the belt. A parcel with an RFID tag puts a virtual tag
into the emulated MFRC522's field while its middle is within ``rfid_range_mm`` of the
reader (at the scan tunnel). With a checkweigher (``platform_mm`` and ``weigh``), a parcel
with a weight loads the platform as its leading edge rides on (not settled), settles once
its trailing edge is on (the weight stands still while the body lies wholly on the
platform), and unloads it as its leading edge leaves: ``weigh(grams, stable)`` is the
simulated indicator's :meth:`~simulator.hw.indicator.ToledoIndicator.set_load`.

Only the lowest layer is touched, through :class:`StationIO`: gpiozero MockFactory pins
and the MFRC522 emulator (in the station's process), and the pty master of the scanner.
Time: ``rate`` virtual ms per real ms (1: real time); ``clock`` is the station's
(virtual) monotonic clock. Every edge the belt makes happens at its *physical* time, the
model's own ``clock() at start + env.now`` (virtual ms), whenever the processes get the
CPU: the photo-eye edge carries it to the station's pin (like a kernel timestamp), and it
stamps each induct for matching the station's reports.
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

    def eye(self, blocked: bool, t_ms: float | None = None) -> None:
        """Drive the induct photo-eye pin; ``t_ms``: the edge's physical time (station ms)."""

    def tag(self, uid: str, present: bool) -> None:
        """Put a tag into (or take it out of) the reader's field."""

    def gate_energised(self, lane: str, t_ms: float | None = None) -> bool:
        """True when that lane's gate was energised at ``t_ms`` (physical; None: now).

        False when the station is down.
        """

    def belt_run(self) -> bool:
        """True while the belt motor output runs the belt (always, without one)."""


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

    def eye(self, blocked: bool, t_ms: float | None = None) -> None:
        """Drive the photo-eye pin (at once: this process's pins have no edge time)."""
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

    def gate_energised(self, lane: str, t_ms: float | None = None) -> bool:
        """The gate output's level (now) against its polarity."""
        pin, active_high = self.gates[lane]
        return bool(pin.state) == active_high

    def belt_run(self) -> bool:
        """No motor output here: the belt always runs."""
        return True


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
        platform_mm: (start, end) of the checkweigher platform downstream of the eye, mm,
            or None (no checkweigher).
        weigh: sets the platform's load, ``(grams, stable)``.
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
        platform_mm: tuple[float, float] | None = None,
        weigh: Callable[[float, bool], None] = lambda grams, stable: None,
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
        self.platform_mm = platform_mm
        self.weigh = weigh
        self.passages: dict[int, Passage] = {}
        self._lock = threading.Lock()
        self.env: simpy.rt.RealtimeEnvironment | None = None
        self.follow_motor = False  # poll the station's belt-run output (jam stops the belt)
        self.stuck: set[int] = set()  # parcels that jam at the photo-eye
        self.removed: dict[int, simpy.Event] = {}  # stuck parcel -> "operator removed it"
        self._bodies_at_eye = 0
        self._jammed_by: simpy.Event | None = None  # removal of the parcel stuck at the eye
        self._running = True
        self._pos0_mm = 0.0
        self._t0_ms = 0.0
        self._changed: simpy.Event | None = None
        self._clock0_ms = 0.0

    def _ms(self, mm: float) -> float:
        return mm * 1000.0 / self.speed_mm_s

    def physical_ms(self) -> float:
        """The model's time of what happens now (station clock, virtual ms).

        The simulated event's own time, not when this process got the CPU for it (the
        real-time environment runs late under load, never early).
        """
        return self._clock0_ms + (self.env.now if self.env is not None else 0.0)

    def _eye(self, p: SimParcel, blocked: bool) -> bool:
        t_ms = self.physical_ms()
        if blocked:
            self.passages[p.index].induct_clock_ms = t_ms
        # one beam: blocked while any body is in it (touching parcels are one long block)
        before = self._bodies_at_eye
        self._bodies_at_eye += 1 if blocked else -1
        if (before == 0) != (self._bodies_at_eye == 0):
            self.io.eye(blocked, t_ms)
        return False

    # -- motion: belt position (mm) advances only while the motor runs ------------------
    def _pos(self, now_ms: float) -> float:
        run_ms = now_ms - self._t0_ms if self._running else 0.0
        return self._pos0_mm + run_ms * self.speed_mm_s / 1000.0

    def _set_running(self, env: simpy.Environment, running: bool) -> None:
        if running == self._running:
            return
        self._pos0_mm, self._t0_ms = self._pos(env.now), env.now
        self._running = running
        if self._changed is not None:
            self._changed.succeed()
        self._changed = env.event()

    def _until(self, env: simpy.Environment, target_mm: float) -> simpy.events.ProcessGenerator:
        while True:
            left = target_mm - self._pos(env.now)
            if left <= 1e-9:
                return
            assert self._changed is not None
            if self._running:
                yield env.timeout(left * 1000.0 / self.speed_mm_s) | self._changed
            else:
                yield self._changed

    def _motor(
        self, env: simpy.Environment, poll_ms: float = 10.0
    ) -> simpy.events.ProcessGenerator:
        while True:
            yield env.timeout(poll_ms)
            self._set_running(env, self.io.belt_run())

    def _scan(self, code: bytes) -> bool:
        os.write(self.scanner_fd, code)
        return False

    def _load(self, grams: float, stable: bool) -> bool:
        self.weigh(grams, stable)
        return False

    def _tag(self, uid: str, present: bool) -> bool:
        self.io.tag(uid, present)
        return False

    def _parcel(self, env: simpy.Environment, p: SimParcel) -> simpy.events.ProcessGenerator:
        v = self.speed_mm_s / 1000.0  # mm per ms
        start = p.induct_at_ms * v  # belt position at which it reaches the photo-eye
        yield from self._until(env, start)
        self.passages[p.index] = Passage(p.index)
        if self._jammed_by is not None:
            # piled up behind the parcel stuck at the eye: cleared off with it, unseen
            yield self._jammed_by
            self._removed(p)
            return
        if p.index in self.stuck:  # it jams at the eye until the operator takes it off
            self._jammed_by = self.removed[p.index]
            self._eye(p, True)
            yield self.removed[p.index]
            self._eye(p, False)
            self._jammed_by = None
            self._removed(p)
            return
        steps: list[tuple[float, int, Callable[[], bool]]] = [
            (start, 0, functools.partial(self._eye, p, True)),
            (start + p.length_mm, 1, functools.partial(self._eye, p, False)),
        ]
        scan_at = start + self.scan_pos_mm + p.length_mm / 2
        for k, code in enumerate(p.scan_codes):
            data = code.encode() + self.suffix
            steps.append((scan_at + 20.0 * v * k, 2, functools.partial(self._scan, data)))
        if p.tag_uid is not None:
            rng = self.rfid_range_mm
            steps.append((scan_at - rng, 2, functools.partial(self._tag, p.tag_uid, True)))
            steps.append((scan_at + rng, 2, functools.partial(self._tag, p.tag_uid, False)))
        if self.platform_mm is not None and p.weight_g is not None:
            on, off = self.platform_mm
            grams = p.weight_g
            steps.append((start + on, 2, functools.partial(self._load, grams, False)))
            steps.append((start + on + p.length_mm, 2, functools.partial(self._load, grams, True)))
            steps.append((start + off, 2, functools.partial(self._load, 0.0, True)))
        for gate in self.gates:
            steps.append((start + gate.pos_mm, 3, functools.partial(self._at_gate, p, gate)))
        steps.append((start + self.length_mm, 4, functools.partial(self._end, p)))
        for at, _, step in sorted(steps, key=lambda s: (s[0], s[1])):
            yield from self._until(env, at)
            if step():
                return

    def _removed(self, p: SimParcel) -> None:
        with self._lock:
            self.passages[p.index].lane = "removed"
            self.passages[p.index].exit_clock_ms = self.clock()
        self.on_exit(self.passages[p.index])

    def _at_gate(self, p: SimParcel, gate: GateSpot) -> bool:
        if self.gate_works(gate.lane) and self.io.gate_energised(gate.lane, self.physical_ms()):
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
        self._clock0_ms = self.clock()  # env.now == 0 here
        self.env = env
        self._changed = env.event()
        for index in self.stuck:
            self.removed[index] = env.event()
        for p in parcels:
            env.process(self._parcel(env, p))
        if self.follow_motor:
            env.process(self._motor(env))
        extra(env)  # a SimPy process hook, not Django  # nosec B610
        last = max((p.induct_at_ms for p in parcels), default=0.0)
        until = env.process(self._until(env, last * self.speed_mm_s / 1000.0))
        env.run(until=until)  # the last induct, in belt travel (stops delay it) ...
        env.run(until=env.now + self._ms(self.length_mm + 1000.0) + tail_ms)  # ... then out
        return {i: p.lane for i, p in self.passages.items() if p.lane is not None}
