"""Photo-eye and diverter gate on gpiozero devices.

The pin factory is chosen by name in the station config (``rpigpio`` on Pi 4 and earlier,
``lgpio`` on Pi 5, ``mock`` in simulation); never by silent fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice
from gpiozero.pins import Factory

from edge.clock import monotonic_ms
from edge.drivers.gpio import EdgeCallback

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


class GpiozeroPhotoEye:
    """Induct photo-eye on a GPIO input.

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
        self.clock = clock
        self._device = DigitalInputDevice(
            pin, pull_up=None, active_state=(blocked_level == "high"), pin_factory=pin_factory
        )
        self._on_edge: EdgeCallback | None = None
        self.edges = 0

    def start(self, on_edge: EdgeCallback) -> None:
        """Report every raw edge as (t_ms, blocked) to ``on_edge``."""
        self._on_edge = on_edge
        self._device.when_activated = self._changed
        self._device.when_deactivated = self._changed

    def _changed(self, *args: Any) -> None:
        t_ms = self.clock()
        self.edges += 1
        if self._on_edge is not None:
            self._on_edge(t_ms, bool(self._device.value))

    @property
    def blocked(self) -> bool:
        """Current (raw) level: True when the beam is blocked."""
        return bool(self._device.value)

    def close(self) -> None:
        """Release the pin."""
        self._device.close()

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

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        return {"state": "ok", "energised": self.energised, "fired": self.fired}
