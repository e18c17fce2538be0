"""Interfaces of the GPIO devices: induct photo-eye and diverter gate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

EdgeCallback = Callable[[float, bool], None]
"""Called with (t_ms monotonic, blocked) on every raw level change."""


class PhotoEye(Protocol):
    """A through-beam or retro-reflective photo-eye; reports raw edges (debounced later)."""

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


class BeltEncoder(Protocol):
    """Belt travel from an encoder: pulses counted, millimetres derived."""

    def position_mm(self) -> float:
        """Belt travel since start, mm."""
        ...

    def close(self) -> None:
        """Release the pins."""
        ...

    def status(self) -> dict[str, object]:
        """JSON-able state: pulses, position, speed."""
        ...
