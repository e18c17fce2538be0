"""The station's physical inputs beside the sort path: reset button, E-stop, lane inputs, encoder.

The lane inputs (divert-confirm, lane-full) become :class:`~edge.station.inputs.LaneInput`
(a confirm also ends a gate test waiting for it); the belt encoder is sampled by an
:class:`~edge.station.encoder.EncoderSampler`.

The E-stop acts on the driver's thread, before the reactor hears of it: every gate is
released and locked out (:meth:`~edge.station.gates.GateBank.lock_out`) and the belt-run
output drops at once; then the core is told (a ``BeltHold("estop")``: pending diverts are
withdrawn, the ``estop`` alarm is raised, the stack light turns red). Releasing the E-stop
does not restart anything: the reset button (or a ``resume`` command) does, and is refused
while the E-stop is still engaged. An E-stop input that is configured but cannot be read
counts as engaged (fail safe).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Literal

from edge.drivers.gpio import FaultReporting
from edge.station.devices import DeviceBank
from edge.station.encoder import EncoderSampler
from edge.station.gates import GateBank
from edge.station.inputs import BeltHold, LaneInput, Resume, StationInput

__all__ = ["PhysicalControls"]

log = logging.getLogger(__name__)


class PhysicalControls:
    """Wires ``devices.controls`` (``reset``, ``estop``) to the gates, the belt and the core.

    Args:
        devices: the station's devices (its ``controls`` inputs and ``belt_run`` output).
        gates: the station's gates.
        submit: hands an input to the reactor (thread-safe).
        clock: the station's monotonic ms clock.

    Attributes:
        estop_engaged: True while the E-stop is engaged (or configured but unreadable).
        resets: reset button presses seen (refused ones included).
    """

    def __init__(
        self,
        devices: DeviceBank,
        gates: GateBank,
        submit: Callable[[StationInput], None],
        clock: Callable[[], float],
    ) -> None:
        self.devices = devices
        self.gates = gates
        self.submit = submit
        self.clock = clock
        config = devices.config.controls
        self.has_estop = config is not None and config.estop_pin is not None
        self.estop_engaged = False
        self.resets = 0
        self._belt_lock = threading.Lock()  # the E-stop and the reactor never race on belt-run
        encoder = devices.encoder
        self.encoder = EncoderSampler(encoder, submit, clock) if encoder is not None else None

    def start(self) -> None:
        """Listen to the inputs; an E-stop engaged (or unreadable) at start holds the belt."""
        for name, device in self.devices.lane_inputs.items():
            lane, kind = name.rsplit(".", 1)
            device.start(functools.partial(self.on_lane_input, lane, kind))
        for lane, gate in self.devices.gates.items():  # a gate on a PLC: its link can fail
            if isinstance(gate, FaultReporting):
                gate.watch_faults(functools.partial(self.on_lane_input, lane, "fault"))
        if self.encoder is not None:
            self.encoder.start()
        estop = self.devices.controls.get("estop")
        if estop is not None:
            estop.start(self.on_estop)
        if self.has_estop and (estop is None or estop.status().get("active") is not False):
            self.on_estop(self.clock(), True)
        reset = self.devices.controls.get("reset")
        if reset is not None:
            reset.start(self.on_reset)

    def stop(self) -> None:
        """Stop sampling the encoder (the devices close with the DeviceBank)."""
        if self.encoder is not None:
            self.encoder.stop()

    def on_lane_input(self, lane: str, kind: str, t_ms: float, active: bool) -> None:
        """A confirm / lane-full input of ``lane``, or its gate's link, changed at ``t_ms``.

        Driver thread. ``kind``: ``confirm``, ``full`` or ``fault`` (the gate's PLC lost).
        """
        if kind == "confirm" and active:
            self.gates.confirmed(lane, t_ms)  # a gate test waits for it on another thread
        which: Literal["confirm", "full", "fault"] = (
            "confirm" if kind == "confirm" else "fault" if kind == "fault" else "full"
        )
        self.submit(LaneInput(t_ms, lane, which, active))

    def on_estop(self, t_ms: float, engaged: bool) -> None:
        """The E-stop input changed at ``t_ms`` (driver thread): engaged stops everything now."""
        if engaged == self.estop_engaged:
            return
        if engaged:
            self.gates.lock_out(True)
            with self._belt_lock:
                self.estop_engaged = True
                self.devices.set_output("belt_run", False)
            log.error("EMERGENCY STOP engaged: gates released, belt stopped")
            self.submit(BeltHold(t_ms, "estop", True))
        else:
            self.estop_engaged = False
            self.gates.lock_out(False)
            log.warning("emergency stop released: press reset (or send resume) to run")

    def drive_belt(self, run: bool) -> bool:
        """Switch the belt-run output (the reactor); never on while the E-stop is engaged.

        Returns what the belt does now (False when ``run`` was refused).
        """
        with self._belt_lock:
            run = run and not self.estop_engaged
            self.devices.set_output("belt_run", run)
            return run

    def on_reset(self, t_ms: float, pressed: bool) -> None:
        """The reset button changed at ``t_ms`` (driver thread): a press resumes the station."""
        if not pressed:
            return
        self.resets += 1
        if self.estop_engaged:
            log.warning("reset refused: the emergency stop is still engaged")
            return
        self.submit(Resume(t_ms))

    def status(self) -> dict[str, object]:
        """JSON-able: ``{"estop_engaged": bool, "resets": int}``."""
        return {"estop_engaged": self.estop_engaged, "resets": self.resets}
