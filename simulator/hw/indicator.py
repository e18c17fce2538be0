"""A weighing indicator's Toledo continuous output, emulated on a pseudo-terminal.

:class:`ToledoIndicator` streams one frame per ``period_s`` with the load the simulation
sets (:meth:`ToledoIndicator.set_load`), into the master side of a pty whose slave the real
:class:`edge.drivers.pyserial_scale.PySerialScale` opens: only the serial line is faked.
:func:`toledo_frame` builds one frame by the format documented in
:mod:`edge.drivers.pyserial_scale` (status words A-C, six weight and six tare digits, CR,
checksum).
"""

from __future__ import annotations

import contextlib
import os
import threading
import tty

__all__ = ["ToledoIndicator", "toledo_frame"]

_STATUS = 0x20  # bit 5, always set


def toledo_frame(
    weight_g: float,
    *,
    stable: bool = True,
    overload: bool = False,
    tare_g: float = 0.0,
    checksum: bool = True,
) -> bytes:
    """One frame showing ``weight_g`` in kg with three decimals (increment x1, gross).

    Weights beyond six digits (999.999 kg) are shown as overload.
    """
    count = round(abs(weight_g))
    tare = round(abs(tare_g))
    over = overload or count > 999_999
    swa = _STATUS | 0x08 | 5  # XXX.XXX, increment x1
    swb = _STATUS | 0x10  # kg
    if weight_g < 0:
        swb |= 0x02
    if over:
        swb |= 0x04
    if not stable:
        swb |= 0x08
    body = bytes([0x02, swa, swb, _STATUS])
    body += f"{min(count, 999_999):06d}{min(tare, 999_999):06d}\r".encode()
    return body + (bytes([-sum(body) & 0x7F]) if checksum else b"")


class ToledoIndicator:
    """An indicator streaming its displayed load into a pty (a daemon thread).

    Args:
        period_s: time between frames, s (indicators send 5-20 per second).
        checksum: whether frames carry the checksum character.

    Attributes:
        path: the pty slave's path, for the station's ``[scale] url``.
    """

    def __init__(self, period_s: float = 0.05, checksum: bool = True) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.period_s = period_s
        self.checksum = checksum
        self._lock = threading.Lock()
        self._load_g = 0.0
        self._stable = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_sent = 0

    def set_load(self, weight_g: float, *, stable: bool = True) -> None:
        """What the platform carries from now on, grams, and whether it has settled."""
        with self._lock:
            self._load_g, self._stable = weight_g, stable

    def start(self) -> None:
        """Start streaming."""
        self._thread = threading.Thread(target=self._run, name="toledo-indicator", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop streaming and close the pty."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            with self._lock:
                frame = toledo_frame(self._load_g, stable=self._stable, checksum=self.checksum)
            try:
                os.write(self.master, frame)
            except OSError:
                return
            self.frames_sent += 1
