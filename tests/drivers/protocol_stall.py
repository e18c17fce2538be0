"""A pyserial URL handler ``stall://NAME``: a serial port whose reader the test can stall.

Only the lowest layer is faked: the kernel's receive buffer of a serial port. Bytes
``arrive`` in it when the test says (the device sent them); ``stall`` holds the next
``read`` (and the one in progress) until ``release``, as a reader thread the machine does
not schedule would sit there while the bytes wait. Everything above it (pyserial's
``serial_for_url``, :class:`edge.drivers.serial_port.SerialReader`, the framer and the
scanner backend) is the real code. Register the package once:
``serial.protocol_handler_packages.append("tests.drivers")``.
"""

from __future__ import annotations

import threading
import time

from serial.serialutil import PortNotOpenError, SerialBase

PORTS: dict[str, Serial] = {}
"""Open ports by ``NAME`` (the part after ``stall://``)."""


class Serial(SerialBase):
    """The stallable port (pyserial's ``Serial`` interface: open, read, in_waiting)."""

    def open(self) -> None:
        """Open (register under its name)."""
        self._cond = threading.Condition()
        self._buf = bytearray()
        self._stalled = False
        self._in_read = 0  # reads held now
        self._entries = 0  # reads begun so far
        self._hold_from = 0  # reads from this entry on are held while stalled
        self.is_open = True
        PORTS[str(self.portstr).split("://", 1)[1]] = self

    def close(self) -> None:
        """Close (a stalled read returns nothing)."""
        self.is_open = False
        if hasattr(self, "_cond"):
            with self._cond:
                self._stalled = False
                self._cond.notify_all()

    def _reconfigure_port(self) -> None:
        pass

    @property
    def in_waiting(self) -> int:
        """Bytes in the receive buffer."""
        with self._cond:
            return len(self._buf)

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes; waits up to ``timeout`` for a first one, longer while stalled."""
        if not self.is_open:
            raise PortNotOpenError()
        deadline = time.monotonic() + (self.timeout or 0.0)
        with self._cond:
            self._entries += 1
            entry = self._entries
            while self.is_open and self._stalled and entry >= self._hold_from:
                self._in_read += 1
                self._cond.notify_all()
                self._cond.wait(0.002)
                self._in_read -= 1
            while self.is_open and not self._buf and time.monotonic() < deadline:
                self._cond.wait(0.002)
            data = bytes(self._buf[:size])
            del self._buf[:size]
            return data

    def write(self, data: bytes) -> int:
        """Writes to the device are dropped (the scanner is never written to)."""
        return len(data)

    def reset_input_buffer(self) -> None:
        """Nothing is flushed: the test writes only once the port is open."""

    # -- the test's side ----------------------------------------------------------------
    def arrive(self, data: bytes) -> None:
        """The device's bytes reach the receive buffer now."""
        with self._cond:
            self._buf += data
            self._cond.notify_all()

    def stall(self) -> None:
        """Hold the reader in a read until :meth:`release`.

        The read begun before and the next one run (the next one's look at the port and
        the clock come after this call); the one after that is held.
        """
        with self._cond:
            self._stalled = True
            self._hold_from = self._entries + 2

    def wait_stalled(self, timeout_s: float = 5.0) -> None:
        """Wait until the reader sits in a stalled read (its look at the port is done)."""
        end = time.monotonic() + timeout_s
        with self._cond:
            while not (self._stalled and self._in_read):
                if time.monotonic() > end:
                    raise TimeoutError("the reader did not enter a read")
                self._cond.wait(0.01)

    def release(self) -> None:
        """Let the reader run again."""
        with self._cond:
            self._stalled = False
            self._cond.notify_all()
