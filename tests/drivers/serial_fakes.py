"""Serial test doubles: a real pseudo-terminal pair, a settable clock, a deadline poller.

Only the serial port is faked (a pty: the kernel's own tty layer under real pyserial).
"""

from __future__ import annotations

import os
import threading
import time
import tty
from collections.abc import Callable

import pytest


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what or predicate}")


class Pty:
    """A pseudo-terminal pair: the test writes to the master as the device would."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        self.path = os.ttyname(self.slave)
        self._open = {self.master, self.slave}

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close_master(self) -> None:
        self._close(self.master)

    def close(self) -> None:
        self._close(self.master)
        self._close(self.slave)

    def _close(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)


class FakeClock:
    """Thread-safe settable clock in ms, so silences need no real sleeps."""

    def __init__(self) -> None:
        self._t_ms = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._t_ms

    def advance(self, ms: float) -> None:
        with self._lock:
            self._t_ms += ms
