"""Barcode scanner interface: what the station daemon needs from any scanner backend.

Backends (e.g. :mod:`edge.drivers.pyserial_scanner`) deliver each accepted scan as
a :class:`~edge.drivers.framing.ScanFrame` on their own thread and report their
health through :meth:`BarcodeScanner.status`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

from edge.drivers.framing import ScanFrame

__all__ = ["BarcodeScanner", "ScanCallback", "ScannerState"]

ScanCallback = Callable[[ScanFrame], None]
"""Receives each accepted scan; called on the backend's reader thread."""

ScannerState = Literal["ok", "degraded", "stopped"]
"""``ok``: port open and reading. ``degraded``: started but the port is not
usable (not yet opened, unplugged, reopening). ``stopped``: not started or stopped.
"""


@runtime_checkable
class BarcodeScanner(Protocol):
    """A barcode scanner that pushes scans to a callback."""

    def start(self, on_scan: ScanCallback) -> None:
        """Start reading; ``on_scan`` is called once per accepted scan.

        The callback runs on the backend's thread and should return quickly;
        exceptions it raises are logged and do not stop the reader.
        """
        ...

    def stop(self) -> None:
        """Stop reading and release the port; returns within about one second."""
        ...

    def status(self) -> dict[str, object]:
        """Return a JSON-able health snapshot.

        Keys at least: ``state`` (:data:`ScannerState`), ``port`` (str),
        ``codes_read``, ``noise_frames``, ``stale_drops``, ``reopen_count``
        (ints) and ``last_error`` (str or None).
        """
        ...
