"""Serial barcode scanner backend on pyserial.

A reader thread opens the port with :func:`serial.serial_for_url`, so the URL
may be a device path (``/dev/ttyACM0``), a stable udev path
(``/dev/serial/by-id/...``), a pty slave path or a pyserial URL such as
``loop://``. Bytes are framed by :class:`~edge.drivers.framing.ScanFramer`.

When the port fails (device unplugged: :class:`serial.SerialException` or
:class:`OSError`, including pyserial's "device reports readiness to read but
returned no data"), the partial frame is discarded, the scanner reports itself
``degraded`` and reopens the same URL with capped exponential backoff. Because
the URL is reopened, a device that comes back under another tty name is found
again through its stable path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable

import serial

from edge.drivers.framing import Dropped, ScanFrame, ScanFramer
from edge.drivers.scanner import ScanCallback, ScannerState

__all__ = ["SUFFIXES", "PySerialScanner"]

logger = logging.getLogger(__name__)

SUFFIXES: dict[str, bytes] = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}
"""Scanner suffix names accepted by :class:`PySerialScanner`."""

_READ_TIMEOUT_S = 0.05
_STOP_JOIN_S = 1.0


def _monotonic_ms() -> float:
    """Monotonic clock in milliseconds."""
    return time.monotonic_ns() / 1e6


class PySerialScanner:
    """Serial (USB-CDC / RS-232) barcode scanner read with pyserial.

    Implements :class:`edge.drivers.scanner.BarcodeScanner`.
    """

    def __init__(
        self,
        url: str,
        baudrate: int = 9600,
        suffix: str = "CR",
        inter_byte_timeout_ms: float = 300,
        clock: Callable[[], float] = _monotonic_ms,
        reopen_backoff_s: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        """Configure the scanner; nothing is opened until :meth:`start`.

        Args:
            url: Port path or pyserial URL; reopened as given after a failure,
                so prefer a stable path such as ``/dev/serial/by-id/...``.
            baudrate: Line speed in bit/s (ignored by USB-CDC devices).
            suffix: The scanner's configured suffix, ``"CR"``, ``"LF"`` or
                ``"CRLF"`` (framing accepts CR and LF either way).
            inter_byte_timeout_ms: A partial code with no byte for longer than
                this (ms) is dropped as stale.
            clock: Monotonic time source in ms, used to timestamp frames.
            reopen_backoff_s: ``(first, cap)`` delays in seconds between reopen
                attempts; the delay doubles after each failed attempt.
        """
        if suffix not in SUFFIXES:
            raise ValueError(f"suffix must be one of {sorted(SUFFIXES)}, got {suffix!r}")
        first_s, cap_s = reopen_backoff_s
        if not 0 < first_s <= cap_s:
            raise ValueError("reopen_backoff_s must be (first, cap) with 0 < first <= cap")
        self._url = url
        self._baudrate = baudrate
        self._suffix = suffix
        self._inter_byte_timeout_ms = float(inter_byte_timeout_ms)
        self._clock = clock
        self._backoff_first_s = first_s
        self._backoff_cap_s = cap_s
        self._framer = self._new_framer()

        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_scan: ScanCallback | None = None

        self._state: ScannerState = "stopped"
        self._device: str | None = None
        self._last_error: str | None = None
        self._codes_read = 0
        self._noise_frames = 0
        self._stale_drops = 0
        self._overflow_drops = 0
        self._garbled_drops = 0
        self._ignored_frames = 0
        self._partial_drops = 0
        self._callback_errors = 0
        self._opens = 0
        self._open_failures = 0
        self._buffered_bytes = 0

    # -- public API ---------------------------------------------------------

    def start(self, on_scan: ScanCallback) -> None:
        """Start the reader thread; ``on_scan`` receives each accepted scan."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("scanner already started")
            self._on_scan = on_scan
            self._stop_event.clear()
            self._framer = self._new_framer()
            self._state = "degraded"  # until the port is open
            self._thread = threading.Thread(
                target=self._run, name=f"scanner:{self._url}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the reader thread and close the port (joins within about 1 s)."""
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is None:
            return
        self._stop_event.set()
        thread.join(timeout=_STOP_JOIN_S)
        if thread.is_alive():
            logger.warning(
                "scanner reader thread did not stop in time",
                extra={"port": self._url, "timeout_s": _STOP_JOIN_S},
            )
        with self._lock:
            self._state = "stopped"

    def status(self) -> dict[str, object]:
        """Return a JSON-able health snapshot (see :class:`BarcodeScanner`).

        Besides the interface keys: ``device`` (resolved path of the open
        port, or None), ``suffix``, ``overflow_drops``, ``garbled_drops``, ``ignored_frames``
        (modem probes etc.), ``partial_drops`` (fragments lost at a port
        failure), ``callback_errors``, ``open_failures`` and
        ``buffered_bytes`` (raw bytes of the frame being received).
        """
        with self._lock:
            return {
                "state": self._state,
                "port": self._url,
                "device": self._device,
                "suffix": self._suffix,
                "codes_read": self._codes_read,
                "noise_frames": self._noise_frames,
                "stale_drops": self._stale_drops,
                "overflow_drops": self._overflow_drops,
                "garbled_drops": self._garbled_drops,
                "ignored_frames": self._ignored_frames,
                "partial_drops": self._partial_drops,
                "callback_errors": self._callback_errors,
                "reopen_count": max(0, self._opens - 1),
                "open_failures": self._open_failures,
                "buffered_bytes": self._buffered_bytes,
                "last_error": self._last_error,
            }

    # -- reader thread ------------------------------------------------------

    def _new_framer(self) -> ScanFramer:
        return ScanFramer(
            suffix=SUFFIXES[self._suffix],
            inter_byte_timeout_ms=self._inter_byte_timeout_ms,
        )

    def _run(self) -> None:
        """Open, read until failure or stop, back off, reopen."""
        failures = 0
        while not self._stop_event.is_set():
            port = self._open()
            if port is None:
                delay_s = min(self._backoff_cap_s, self._backoff_first_s * 2**failures)
                failures += 1
                self._stop_event.wait(delay_s)
                continue
            failures = 0
            error: Exception | None = None
            try:
                self._read_loop(port)
            except (serial.SerialException, OSError) as exc:
                error = exc
            except Exception as exc:  # a bug must not kill the reader silently
                logger.exception("scanner reader failed", extra={"port": self._url})
                error = exc
            finally:
                with contextlib.suppress(serial.SerialException, OSError):
                    port.close()
                with self._lock:
                    self._device = None
            if error is not None:
                self._port_lost(error)
                # First reopen attempt after the base delay, doubling from there.
                failures = 1
                self._stop_event.wait(self._backoff_first_s)
        self._drop_partial()

    def _open(self) -> serial.SerialBase | None:
        try:
            port = serial.serial_for_url(
                self._url, baudrate=self._baudrate, timeout=_READ_TIMEOUT_S
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            with self._lock:
                self._state = "degraded"
                self._last_error = f"open failed: {exc}"
                self._open_failures += 1
            logger.debug("scanner port open failed", extra={"port": self._url, "error": str(exc)})
            return None
        device = os.path.realpath(self._url) if os.path.exists(self._url) else None
        with self._lock:
            self._state = "ok"
            self._device = device
            self._opens += 1
            reopen_count = self._opens - 1
        logger.info(
            "scanner port open",
            extra={"port": self._url, "device": device, "reopen_count": reopen_count},
        )
        return port

    def _read_loop(self, port: serial.SerialBase) -> None:
        while not self._stop_event.is_set():
            data = port.read(port.in_waiting or 1)
            now_ms = self._clock()
            if data:
                frames = self._framer.feed(data, now_ms)
                dropped = self._framer.take_dropped()
            else:
                frames = []
                dropped = self._framer.expire(now_ms)
            with self._lock:
                self._buffered_bytes = self._framer.pending
            self._record_dropped(dropped)
            for frame in frames:
                self._deliver(frame)

    def _port_lost(self, exc: BaseException) -> None:
        with self._lock:
            self._state = "degraded"
            self._last_error = f"port lost: {exc}"
        logger.warning(
            "scanner port lost; reopening with backoff",
            extra={"port": self._url, "error": str(exc)},
        )
        self._drop_partial()

    def _drop_partial(self) -> None:
        """Discard a half-received frame so it is never completed by later bytes."""
        self._record_dropped(self._framer.reset())
        with self._lock:
            self._buffered_bytes = 0

    def _deliver(self, frame: ScanFrame) -> None:
        with self._lock:
            self._codes_read += 1
            if frame.had_noise:
                self._noise_frames += 1
            on_scan = self._on_scan
        logger.debug(
            "scan",
            extra={
                "port": self._url,
                "code": frame.code,
                "symbology": frame.symbology,
                "t_ms": frame.t_ms,
                "had_noise": frame.had_noise,
            },
        )
        if on_scan is None:
            return
        try:
            on_scan(frame)
        except Exception:
            with self._lock:
                self._callback_errors += 1
            logger.exception(
                "scanner on_scan callback raised", extra={"port": self._url, "code": frame.code}
            )

    def _record_dropped(self, dropped: list[Dropped]) -> None:
        for item in dropped:
            with self._lock:
                if item.reason == "stale":
                    self._stale_drops += 1
                elif item.reason == "overflow":
                    self._overflow_drops += 1
                elif item.reason == "garbled":
                    self._garbled_drops += 1
                elif item.reason == "ignored":
                    self._ignored_frames += 1
                elif item.reason == "reset":
                    self._partial_drops += 1
                if item.had_noise:
                    self._noise_frames += 1
            warn = item.reason in ("stale", "overflow", "garbled")
            level = logging.WARNING if warn else logging.INFO
            logger.log(
                level,
                "scanner frame dropped",
                extra={
                    "port": self._url,
                    "reason": item.reason,
                    "data_hex": item.data.hex(),
                    "t_ms": item.t_ms,
                },
            )
