"""Serial barcode scanner backend on pyserial.

The port is read by a :class:`~edge.drivers.serial_port.SerialReader`: the URL may be a
device path (``/dev/ttyACM0``), a stable udev path (``/dev/serial/by-id/...``), a pty slave
path or a pyserial URL such as ``loop://``. Bytes are framed by
:class:`~edge.drivers.framing.ScanFramer`.

When the port fails (device unplugged), the partial frame is discarded, the scanner
reports itself ``degraded`` and reopens the same URL with capped exponential backoff, so
a device that comes back under another tty name is found again through its stable path.

Read timing (issue 20): a frame is stamped with the time its first byte was read, the
latest time the code can have been seen. The port is looked at every ``read_cadence_ms``;
the frame's first byte reached the port after the look before it (see
:mod:`edge.drivers.serial_port`), and the scanner itself took at most
``device_latency_ms`` from seeing the code to that byte. So each frame carries its
measured uncertainty ``latency_ms`` = (stamp - that look) + ``device_latency_ms``: the
code was seen within ``[t_ms - latency_ms, t_ms]``. When the reader thread is delayed
(the station is overloaded), the bytes wait in the port, the interval widens, and a frame
whose uncertainty exceeds ``max_latency_ms`` (the bound of a healthy reader) is ``late``:
it is delivered, counted (``late_frames``) and logged, and the core never takes it as
evidence for any parcel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from edge.drivers.framing import Dropped, ScanFrame, ScanFramer
from edge.drivers.scanner import ScanCallback
from edge.drivers.serial_port import SerialReader

__all__ = ["SUFFIXES", "PySerialScanner"]

logger = logging.getLogger(__name__)

SUFFIXES: dict[str, bytes] = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}
"""Scanner suffix names accepted by :class:`PySerialScanner`."""


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
        *,
        device_latency_ms: float = 10.0,
        max_latency_ms: float = 50.0,
        read_cadence_ms: float = 10.0,
        reader_priority: int | None = None,
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
            device_latency_ms: The scanner's own maximum delay from seeing a code to
                its first byte reaching the port (decode and transfer), ms.
            max_latency_ms: The maximum delivery latency of a healthy reader, ms: a
                frame whose measured uncertainty exceeds it is ``late`` (module doc).
            read_cadence_ms: How long one read waits for a first byte, ms: the width
                of a healthy frame's arrival interval.
            reader_priority: ``SCHED_FIFO`` priority of the reader thread (None: normal
                priority): a loaded machine then does not leave its bytes waiting.

        Raises:
            ValueError: an unknown suffix, or ``max_latency_ms`` below
                ``device_latency_ms + read_cadence_ms`` (every frame would be late).
        """
        if suffix not in SUFFIXES:
            raise ValueError(f"suffix must be one of {sorted(SUFFIXES)}, got {suffix!r}")
        if not 0 < read_cadence_ms <= 1000 or device_latency_ms < 0:
            raise ValueError("read_cadence_ms must be in (0, 1000] and device_latency_ms >= 0")
        if max_latency_ms < device_latency_ms + read_cadence_ms:
            raise ValueError(
                f"max_latency_ms ({max_latency_ms}) must be at least device_latency_ms + "
                f"read_cadence_ms ({device_latency_ms + read_cadence_ms})"
            )
        self._device_latency_ms = float(device_latency_ms)
        self._max_latency_ms = float(max_latency_ms)
        self._url = url
        self._suffix = suffix
        self._inter_byte_timeout_ms = float(inter_byte_timeout_ms)
        self._framer = self._new_framer()
        self._port = SerialReader(
            url,
            self,
            label="scanner",
            clock=clock,
            logger=logger,
            reopen_backoff_s=reopen_backoff_s,
            serial_options={"baudrate": baudrate},
            read_timeout_s=read_cadence_ms / 1000.0,
            priority=reader_priority,
        )

        self._lock = threading.Lock()
        self._on_scan: ScanCallback | None = None
        self._codes_read = 0
        self._noise_frames = 0
        self._stale_drops = 0
        self._overflow_drops = 0
        self._garbled_drops = 0
        self._ignored_frames = 0
        self._partial_drops = 0
        self._callback_errors = 0
        self._buffered_bytes = 0
        self._late_frames = 0
        self._latency_max_ms = 0.0
        self._last_latency_ms: float | None = None

    # -- public API ---------------------------------------------------------

    def start(self, on_scan: ScanCallback) -> None:
        """Start the reader thread; ``on_scan`` receives each accepted scan.

        Raises:
            RuntimeError: when already started.
        """
        with self._lock:
            self._on_scan = on_scan
        self._port.start()

    def stop(self) -> None:
        """Stop the reader thread and close the port (joins within about 1 s)."""
        self._port.stop()

    def status(self) -> dict[str, object]:
        """Return a JSON-able health snapshot (see :class:`BarcodeScanner`).

        Besides the interface keys: ``device`` (resolved path of the open
        port, or None), ``suffix``, ``overflow_drops``, ``garbled_drops``, ``ignored_frames``
        (modem probes etc.), ``partial_drops`` (fragments lost at a port
        failure), ``callback_errors``, ``open_failures`` and
        ``buffered_bytes`` (raw bytes of the frame being received); read timing:
        ``device_latency_ms`` and ``max_latency_ms`` (configured), ``late_frames``
        (frames delivered later than the healthy bound), ``latency_ms_last`` and
        ``latency_ms_max`` (measured uncertainty of the last frame and the worst, ms),
        ``realtime`` (the reader thread's scheduling).
        """
        port = self._port.status()
        with self._lock:
            return {
                "state": port["state"],
                "port": self._url,
                "device": port["device"],
                "suffix": self._suffix,
                "codes_read": self._codes_read,
                "noise_frames": self._noise_frames,
                "stale_drops": self._stale_drops,
                "overflow_drops": self._overflow_drops,
                "garbled_drops": self._garbled_drops,
                "ignored_frames": self._ignored_frames,
                "partial_drops": self._partial_drops,
                "callback_errors": self._callback_errors,
                "reopen_count": port["reopen_count"],
                "open_failures": port["open_failures"],
                "buffered_bytes": self._buffered_bytes,
                "device_latency_ms": self._device_latency_ms,
                "max_latency_ms": self._max_latency_ms,
                "late_frames": self._late_frames,
                "latency_ms_last": self._last_latency_ms,
                "latency_ms_max": self._latency_max_ms,
                "last_error": port["last_error"],
                "realtime": port["realtime"],
            }

    # -- reader thread (ByteSink of the SerialReader) -----------------------

    def _new_framer(self) -> ScanFramer:
        return ScanFramer(
            suffix=SUFFIXES[self._suffix],
            inter_byte_timeout_ms=self._inter_byte_timeout_ms,
        )

    def on_bytes(self, data: bytes, t_ms: float, since_ms: float | None = None) -> None:
        """Frame bytes that came within ``(since_ms, t_ms]`` and deliver the scans (ms).

        Called on the reader thread; ``since_ms`` None: the bytes' arrival is unknown
        before ``t_ms`` (their frame then carries only the device's latency).
        """
        frames = self._framer.feed(data, t_ms, since_ms)
        self._after_read(self._framer.take_dropped())
        for frame in frames:
            self._deliver(frame)

    def on_idle(self, t_ms: float) -> None:
        """Expire a stale fragment (reader thread)."""
        self._after_read(self._framer.expire(t_ms))

    def discard_partial(self) -> None:
        """Discard a half-received frame so it is never completed by later bytes."""
        self._record_dropped(self._framer.reset())
        with self._lock:
            self._buffered_bytes = 0

    def _after_read(self, dropped: list[Dropped]) -> None:
        with self._lock:
            self._buffered_bytes = self._framer.pending
        self._record_dropped(dropped)

    def _deliver(self, frame: ScanFrame) -> None:
        latency = round(frame.latency_ms + self._device_latency_ms, 3)
        late = latency > self._max_latency_ms
        frame = replace(frame, latency_ms=latency, late=late)
        with self._lock:
            self._last_latency_ms = latency
            self._latency_max_ms = max(self._latency_max_ms, latency)
            if late:
                self._late_frames += 1
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
                "latency_ms": latency,
            },
        )
        if late:
            logger.warning(
                "scan %r delivered late (uncertainty %.1f ms > %.1f ms): never evidence; "
                "is the station overloaded?",
                frame.code,
                latency,
                self._max_latency_ms,
                extra={
                    "port": self._url,
                    "code": frame.code,
                    "latency_ms": latency,
                    "max_latency_ms": self._max_latency_ms,
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
