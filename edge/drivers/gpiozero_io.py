"""Photo-eyes, gates, lane inputs, belt encoder and outputs on gpiozero devices.

The pin factory is chosen by name in the station config (``rpigpio`` on Pi 4 and earlier,
``lgpio`` on Pi 5, ``mock`` in simulation); never by silent fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice, RotaryEncoder
from gpiozero.pins import Factory

from edge.clock import monotonic_ms
from edge.drivers.gpio import LevelCallback

log = logging.getLogger(__name__)


def make_pin_factory(name: str) -> Factory:
    """Build the gpiozero pin factory called ``name`` (mock, rpigpio, lgpio).

    Raises:
        ValueError: on an unknown name.
        ImportError: when the backend library is not installed (e.g. RPi.GPIO off a Pi).
    """
    if name == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if name == "rpigpio":
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory()
    if name == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    raise ValueError(f"unknown pin factory {name!r} (mock, rpigpio, lgpio)")


class GpiozeroInput:
    """A binary input (divert-confirm, lane-full) on a GPIO pin, raw edges timestamped.

    Args:
        name: what it is, e.g. ``"restock.confirm"``.
        pin: BCM pin number.
        active_high: True when the input reads high while active.
        pin_factory: the gpiozero pin factory.
        clock: monotonic ms time source.
    """

    def __init__(
        self,
        name: str,
        pin: int,
        active_high: bool,
        pin_factory: Factory,
        clock: Callable[[], float] = monotonic_ms,
    ) -> None:
        self.name = name
        self.pin = pin
        self.clock = clock
        self._device = DigitalInputDevice(
            pin, pull_up=None, active_state=active_high, pin_factory=pin_factory
        )
        self._on_change: LevelCallback | None = None
        self.edges = 0

    def start(self, on_change: LevelCallback) -> None:
        """Report every raw change as (t_ms, active) to ``on_change``."""
        self._on_change = on_change
        self._device.when_activated = self._changed
        self._device.when_deactivated = self._changed

    def _changed(self, *args: Any) -> None:
        t_ms = self.clock()
        self.edges += 1
        if self._on_change is not None:
            self._on_change(t_ms, bool(self._device.value))

    @property
    def active(self) -> bool:
        """Current raw level: True when active."""
        return bool(self._device.value)

    def close(self) -> None:
        """Release the pin."""
        self._device.close()

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        return {"state": "ok", "active": self.active, "edges": self.edges}


class GpiozeroPhotoEye(GpiozeroInput):
    """Induct photo-eye on a GPIO input: raw edges as (t_ms, blocked); debounce is the core's.

    Args:
        pin: BCM pin number.
        blocked_level: "high" when the sensor output is high while the beam is blocked.
        pin_factory: the gpiozero pin factory.
        clock: monotonic ms time source used to stamp edges.
    """

    def __init__(
        self,
        pin: int,
        blocked_level: str,
        pin_factory: Factory,
        clock: Callable[[], float] = monotonic_ms,
    ) -> None:
        super().__init__("photo_eye", pin, blocked_level == "high", pin_factory, clock)
        self.blocked_level = blocked_level

    def self_test(self) -> dict[str, object]:
        """The input was claimed (the pin exists and is free): ``{"ok": True, "detail"}``."""
        return {"ok": True, "detail": f"GPIO{self.pin}, blocked={self.blocked_level}"}

    @property
    def blocked(self) -> bool:
        """Current (raw) level: True when the beam is blocked."""
        return self.active

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        return {"state": "ok", "blocked": self.blocked, "edges": self.edges}


class GpiozeroDiverterGate:
    """Diverter gate on a GPIO output, off at start and off on close.

    Args:
        name: gate id (the lane name).
        pin: BCM pin number.
        active_high: True when energising means driving the pin high.
        pin_factory: the gpiozero pin factory.
    """

    def __init__(self, name: str, pin: int, active_high: bool, pin_factory: Factory) -> None:
        self.name = name
        self.pin = pin
        self._device = DigitalOutputDevice(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
        )
        self.fired = 0

    def energise(self) -> None:
        """Divert."""
        self._device.on()
        self.fired += 1

    def release(self) -> None:
        """Back to rest (no divert)."""
        self._device.off()

    @property
    def energised(self) -> bool:
        """True while the gate is commanded to divert."""
        return bool(self._device.value)

    def close(self) -> None:
        """De-energise, then release the pin."""
        if self._device.closed:
            return
        try:
            self._device.off()
        finally:
            self._device.close()

    @property
    def inactive_level(self) -> int:
        """The pin level (0 / 1) of the de-energised gate."""
        return 0 if self._device.active_high else 1

    def self_test(self) -> dict[str, object]:
        """Drive the gate off and read the pin back; never pulses the diverter.

        Returns ``{"ok": bool, "detail": str}``: not ok when the pin does not read back
        the de-energised level (a shorted or stuck output); such a gate is never used.
        """
        try:
            self._device.off()
            level = int(bool(self._device.pin.state))
        except Exception as exc:
            return {"ok": False, "detail": f"pin read-back failed: {exc}"}
        if level != self.inactive_level:
            return {
                "ok": False,
                "detail": f"GPIO{self.pin} reads {level} after off, expected {self.inactive_level}",
            }
        return {"ok": True, "detail": f"GPIO{self.pin} off (level {level})"}

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        return {"state": "ok", "energised": self.energised, "fired": self.fired}


class GpiozeroEncoder:
    """Belt encoder: gpiozero ``RotaryEncoder`` (quadrature, A and B) or pulses on A only.

    Args:
        pin_a: BCM pin of channel A.
        pin_b: BCM pin of channel B, or None for a single-channel pulse counter.
        mm_per_pulse: belt travel per counted step, mm.
        pin_factory: the gpiozero pin factory.
    """

    def __init__(
        self, pin_a: int, pin_b: int | None, mm_per_pulse: float, pin_factory: Factory
    ) -> None:
        self.mm_per_pulse = mm_per_pulse
        self._pulses = 0
        self._rotary: RotaryEncoder | None = None
        self._input: DigitalInputDevice | None = None
        if pin_b is not None:
            self._rotary = RotaryEncoder(
                pin_a, pin_b, max_steps=0, wrap=False, pin_factory=pin_factory
            )
        else:
            self._input = DigitalInputDevice(
                pin_a, pull_up=None, active_state=True, pin_factory=pin_factory
            )
            self._input.when_activated = self._pulse

    def _pulse(self, *args: Any) -> None:
        self._pulses += 1

    @property
    def pulses(self) -> int:
        """Steps counted since start (negative when a quadrature belt ran backwards)."""
        return self._rotary.steps if self._rotary is not None else self._pulses

    def position_mm(self) -> float:
        """Belt travel since start, mm."""
        return self.pulses * self.mm_per_pulse

    def close(self) -> None:
        """Release the pins."""
        for dev in (self._rotary, self._input):
            if dev is not None:
                dev.close()

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        return {"state": "ok", "pulses": self.pulses, "position_mm": self.position_mm()}


class GpiozeroOutput:
    """A plain on/off output (belt-run contactor, stack-light lamp), off at start and close.

    Args:
        name: what it drives, e.g. ``"belt_run"`` or ``"stack_light.red"``.
        pin: BCM pin number.
        active_high: True when on means driving the pin high.
        pin_factory: the gpiozero pin factory.
    """

    def __init__(self, name: str, pin: int, active_high: bool, pin_factory: Factory) -> None:
        self.name = name
        self.pin = pin
        self._device = DigitalOutputDevice(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
        )

    def set(self, on: bool) -> None:
        """Switch the output on or off."""
        if self._device.closed:
            return
        self._device.value = on

    @property
    def on(self) -> bool:
        """True while switched on."""
        return not self._device.closed and bool(self._device.value)

    def close(self) -> None:
        """Switch off, then release the pin."""
        if self._device.closed:
            return
        try:
            self._device.off()
        finally:
            self._device.close()

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        return {"on": self.on}
