"""Serial test doubles: a real pseudo-terminal pair (clock and waits: ``simulator.testing``).

Only the serial port is faked (a pty: the kernel's own tty layer under real pyserial).
"""

from __future__ import annotations

import os
import tty


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
