"""gpiozero mock pins: edges at the belt's physical time, and level changes recorded to a file.

:class:`TimedMockPin` (entry point ``timed``): ``drive_at(high, ticks)`` drives an input as
of ``ticks`` (the factory's ``ticks()`` time base, seconds): gpiozero hands that time to
the pin's ``when_changed(ticks, state)`` like lgpio hands the kernel's edge timestamp, so a
station process that gets the CPU late still sees when the beam was broken, not when it
ran. :func:`ticks_of` turns a simulated (virtual) edge time into those ticks.


gpiozero's own ``MockFactory`` picks its pin class from the ``GPIOZERO_MOCK_PIN_CLASS``
environment variable through the ``gpiozero_mock_pin_classes`` entry point group; this
project registers :class:`RecordingMockPin` there as ``recording``. A station process
started with ``GPIOZERO_MOCK_PIN_CLASS=recording`` and ``RETURNS_SIM_PIN_LOG=<file>`` on
``pin_factory = "mock"`` appends one line ``<pin> <function> <state>`` per change with a
single ``write`` on an ``O_APPEND`` descriptor, so the file shows what the process left on
its outputs even when it was killed or crashed. Nothing but the pin is faked.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockPin

__all__ = ["ENV_LOG", "RecordingMockPin", "TimedMockPin", "last_states", "read_log", "ticks_of"]

ENV_LOG = "RETURNS_SIM_PIN_LOG"


HISTORY = 256
"""Level changes each :class:`TimedMockPin` remembers for :meth:`TimedMockPin.level_at`."""


class TimedMockPin(MockPin):  # type: ignore[misc]
    """``MockPin`` whose input edges can carry their own time (``drive_at``).

    Its recent levels can be asked for a past time (``level_at``: where a gate output was
    when the parcel physically reached it).
    """

    _edge_ticks: float | None = None

    def __init__(self, factory: Any, info: Any) -> None:
        self._changes: deque[tuple[float, bool]] = deque(maxlen=HISTORY)
        super().__init__(factory, info)

    def level_at(self, ticks: float) -> bool:
        """The pin's level at ``ticks`` (factory ``ticks()`` seconds).

        The oldest level known when ``ticks`` is older than the last :data:`HISTORY` changes.
        """
        level = bool(self._state)
        for at, value in reversed(self._changes):
            if at <= ticks:
                return value
            level = not value
        return level

    def drive_at(self, high: bool, ticks: float) -> None:
        """Drive the input high (True) or low as of ``ticks`` (seconds, factory ``ticks()``).

        The pin's ``when_changed`` receives ``ticks`` and the level, as from a factory
        with kernel timestamps; nothing happens when the level does not change.
        """
        self._edge_ticks = ticks
        try:
            if high:
                self.drive_high()
            else:
                self.drive_low()
        finally:
            self._edge_ticks = None

    def _change_state(self, value: Any) -> bool:
        changed = bool(super()._change_state(value))
        if changed:
            if self._edge_ticks is not None:
                self._last_change = self._edge_ticks  # what _call_when_changed passes
            self._changes.append((self._last_change, bool(value)))
        return changed


def ticks_of(t_ms: float, clock: Callable[[], float], ticks_now: float) -> float:
    """Factory ticks (s) of station time ``t_ms`` (virtual ms of ``clock``), read now.

    ``ticks_now`` is the factory's ``ticks()`` read at the same moment as ``clock()``; a
    :class:`edge.clock.ScaledClock`'s rate turns virtual ms into real seconds.
    """
    rate = float(getattr(clock, "rate", 1.0))
    return ticks_now - (clock() - t_ms) / 1000.0 / rate


class RecordingMockPin(TimedMockPin):
    """``MockPin`` appending ``<pin> <function> <0|1>`` lines to ``$RETURNS_SIM_PIN_LOG``."""

    def __init__(self, factory: Any, info: Any) -> None:
        path = os.environ.get(ENV_LOG)
        self._log_fd = (
            os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None
        )
        super().__init__(factory, info)

    def _record(self) -> None:
        if self._log_fd is not None:
            line = f"{self.info.name} {self._function} {int(bool(self._state))}\n"
            os.write(self._log_fd, line.encode())

    def _set_function(self, value: str) -> None:
        super()._set_function(value)
        self._record()

    def _change_state(self, value: Any) -> bool:
        changed = bool(super()._change_state(value))
        if changed:
            self._record()
        return changed


def read_log(path: Path) -> list[tuple[str, str, int]]:
    """The recorded changes: ``(pin name, function, level)`` in order."""
    rows = []
    for line in path.read_text().splitlines():
        name, function, level = line.split()
        rows.append((name, function, int(level)))
    return rows


def last_states(path: Path) -> dict[str, int]:
    """The last recorded level of each pin (e.g. ``{"GPIO17": 0}``)."""
    return {name: level for name, _, level in read_log(path)}
