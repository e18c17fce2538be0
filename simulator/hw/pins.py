"""A gpiozero mock pin that records every level change in a file, for child processes.

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
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockPin

__all__ = ["ENV_LOG", "RecordingMockPin", "last_states", "read_log"]

ENV_LOG = "RETURNS_SIM_PIN_LOG"


class RecordingMockPin(MockPin):  # type: ignore[misc]
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
