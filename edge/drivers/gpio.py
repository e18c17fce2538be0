"""Interfaces of the binary devices: photo-eye, diverter gate, inputs, outputs, encoder.

Backends (e.g. :mod:`edge.drivers.gpiozero_io`) implement them; the station shell only
sees these interfaces (:class:`edge.station.devices.DeviceBank`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

EdgeCallback = Callable[[float, bool], None]
"""Called with (t_ms monotonic, blocked) on every raw level change."""


class PhotoEye(Protocol):
    """A through-beam or retro-reflective photo-eye; reports raw edges (debounced later)."""

    def self_test(self) -> dict[str, object]:
        """``{"ok": bool, "detail": str}``: what was checked; never raises."""
        ...

    def start(self, on_edge: EdgeCallback) -> None:
        """Begin reporting raw level changes to ``on_edge``."""
        ...

    def close(self) -> None:
        """Release the pin."""
        ...

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        ...


class DiverterGate(Protocol):
    """A diverter (pusher / swing arm) driven by one output; de-energised unless commanded."""

    name: str

    def self_test(self) -> dict[str, object]:
        """Check the output without moving the diverter: ``{"ok": bool, "detail": str}``."""
        ...

    def energise(self) -> None:
        """Move the diverter into the belt (divert)."""
        ...

    def release(self) -> None:
        """De-energise: the diverter returns to its rest position (no divert)."""
        ...

    def close(self) -> None:
        """De-energise and release the pin."""
        ...

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        ...


LevelCallback = Callable[[float, bool], None]
"""Called with (t_ms monotonic, active) on every raw change of a binary input."""


@runtime_checkable
class FaultReporting(Protocol):
    """A device whose link can fail at run time (a gate on a PLC over the network)."""

    def watch_faults(self, on_fault: LevelCallback) -> None:
        """Call ``on_fault(t_ms, faulted)`` when the device is lost (True) or back (False)."""
        ...


@runtime_checkable
class EdgeStampedEncoder(Protocol):
    """An encoder that knows when its last count happened (its pin factory's edge time)."""

    def sample(self) -> tuple[float | None, int]:
        """``(station ms of the last counted edge, or None before the first; counts)``."""
        ...


class BinaryInput(Protocol):
    """A digital input such as a divert-confirm switch or a lane-full sensor (raw edges)."""

    name: str

    def start(self, on_change: LevelCallback) -> None:
        """Begin reporting raw level changes to ``on_change``."""
        ...

    def close(self) -> None:
        """Release the pin."""
        ...

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        ...


class BinaryOutput(Protocol):
    """An on/off output such as the belt-run contactor or a stack-light lamp; off at start."""

    name: str

    def set(self, on: bool) -> None:
        """Switch the output on or off."""
        ...

    @property
    def on(self) -> bool:
        """True while switched on."""
        ...

    def close(self) -> None:
        """Switch off and release the output."""
        ...

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        ...


class BeltEncoder(Protocol):
    """Belt travel from an encoder: pulses counted, millimetres derived."""

    @property
    def pulses(self) -> int:
        """Counts since start (cumulative; negative when a quadrature belt ran backwards)."""
        ...

    def position_mm(self) -> float:
        """Belt travel since start, mm."""
        ...

    def close(self) -> None:
        """Release the pins."""
        ...

    def status(self) -> dict[str, object]:
        """JSON-able state: pulses, position, speed."""
        ...
