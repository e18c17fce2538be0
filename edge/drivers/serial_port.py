"""One serial port read on its own thread, reopened after an unplug: shared by serial backends.

:class:`SerialReader` opens the port with :func:`serial.serial_for_url`, so the URL may be a
device path (``/dev/ttyACM0``), a stable udev path (``/dev/serial/by-id/...``), a pty slave
path or a pyserial URL such as ``loop://``. Every read is handed with its monotonic time
(ms) to a :class:`ByteSink` (the backend's framer); a read that returned nothing is an idle
tick, so the sink can expire stale fragments.

Read timing: each chunk comes with the interval in which its bytes reached the port,
``(since_ms, t_ms]``. The loop looks at the port (``in_waiting``) before every read: bytes
already waiting were there by that look (``t_ms``) and came after the previous look
(``since_ms``); a blocking read's bytes came after its own look and are stamped when the
read returns. A reader thread that the machine delays (CPU overload) therefore widens the
interval instead of silently stamping old bytes as new: the backend judges the read's
uncertainty from it (``edge.drivers.pyserial_scanner``).

When the port fails (device unplugged: :class:`serial.SerialException` or :class:`OSError`,
including pyserial's "device reports readiness to read but returned no data"), the sink is
told to discard its partial frame, the reader reports itself ``degraded`` and reopens the
same URL with capped exponential backoff. Because the URL is reopened, a device that comes
back under another tty name is found again through its stable path. An unexpected error in
the sink is logged and handled like a port failure, so a bug never kills the reader silently.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Literal, Protocol

import serial

__all__ = ["ByteSink", "PortState", "SerialReader"]

PortState = Literal["ok", "degraded", "stopped"]
"""``ok``: port open and reading. ``degraded``: started but the port is not usable (not yet
opened, unplugged, reopening). ``stopped``: not started or stopped."""

_READ_TIMEOUT_S = 0.05
_STOP_JOIN_S = 1.0


def _set_fifo(priority: int) -> str:
    """Put the calling thread at ``SCHED_FIFO`` ``priority``; the status line. Never raises."""
    if not hasattr(os, "sched_setscheduler"):
        return "refused: no SCHED_FIFO on this platform"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        return f"refused: SCHED_FIFO {priority}: {exc.strerror or exc} (grant CAP_SYS_NICE)"
    return f"SCHED_FIFO {priority}"


class ByteSink(Protocol):
    """What a :class:`SerialReader` feeds; all calls come from the reader thread."""

    def on_bytes(self, data: bytes, t_ms: float, since_ms: float | None = None) -> None:
        """Bytes that reached the port within ``(since_ms, t_ms]`` (monotonic ms).

        ``since_ms`` None: only ``t_ms`` is known.
        """
        ...

    def on_idle(self, t_ms: float) -> None:
        """A read timed out with no byte at ``t_ms`` (ms): expire stale fragments."""
        ...

    def discard_partial(self) -> None:
        """The port was lost or the reader stops: drop any half-received frame."""
        ...


class SerialReader:
    """Reads one serial port on a thread and reopens it after a failure.

    Args:
        url: port path or pyserial URL; reopened as given after a failure, so prefer a
            stable path such as ``/dev/serial/by-id/...``.
        sink: receives the bytes (see :class:`ByteSink`).
        label: device name in thread names and log messages (``scanner``, ``scale``).
        clock: monotonic time source in ms, used to stamp reads.
        logger: where port events are logged.
        reopen_backoff_s: ``(first, cap)`` delays in seconds between reopen attempts; the
            delay doubles after each failed attempt.
        serial_options: keyword arguments for :func:`serial.serial_for_url` (``baudrate``,
            ``bytesize``, ``parity``, ``stopbits``); the read timeout is the reader's own.
        read_timeout_s: how long one blocking read waits for a first byte, s: the loop's
            cadence (the width of a healthy read's arrival interval).
        priority: ``SCHED_FIFO`` priority the reader thread asks for (None: normal), so a
            loaded machine does not hold its bytes in the port; refused without
            ``CAP_SYS_NICE`` (``status()["realtime"]`` says so).

    Raises:
        ValueError: when ``reopen_backoff_s`` is not ``0 < first <= cap``.
    """

    def __init__(
        self,
        url: str,
        sink: ByteSink,
        *,
        label: str,
        clock: Callable[[], float],
        logger: logging.Logger,
        reopen_backoff_s: tuple[float, float] = (0.05, 2.0),
        serial_options: Mapping[str, object] | None = None,
        read_timeout_s: float = _READ_TIMEOUT_S,
        priority: int | None = None,
    ) -> None:
        first_s, cap_s = reopen_backoff_s
        if not 0 < read_timeout_s <= 1.0:
            raise ValueError("read_timeout_s must be in (0, 1] s")
        self._read_timeout_s = read_timeout_s
        self._priority = priority
        self._realtime = "normal priority"
        if not 0 < first_s <= cap_s:
            raise ValueError("reopen_backoff_s must be (first, cap) with 0 < first <= cap")
        self.url = url
        self._sink = sink
        self._label = label
        self._clock = clock
        self._log = logger
        self._backoff_first_s = first_s
        self._backoff_cap_s = cap_s
        self._options = dict(serial_options or {})
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._state: PortState = "stopped"
        self._device: str | None = None
        self._last_error: str | None = None
        self._opens = 0
        self._open_failures = 0

    # -- public API ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the reader thread (state ``degraded`` until the port is open).

        Raises:
            RuntimeError: when already started.
        """
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"{self._label} already started")
            self._stop_event.clear()
            self._state = "degraded"
            self._thread = threading.Thread(
                target=self._run, name=f"{self._label}:{self.url}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the reader thread and close the port (joins within about 1 s); idempotent."""
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is None:
            return
        self._stop_event.set()
        thread.join(timeout=_STOP_JOIN_S)
        if thread.is_alive():
            self._log.warning(
                "%s reader thread did not stop in time",
                self._label,
                extra={"port": self.url, "timeout_s": _STOP_JOIN_S},
            )
        with self._lock:
            self._state = "stopped"

    @property
    def state(self) -> PortState:
        """The port's :data:`PortState`."""
        with self._lock:
            return self._state

    def note_error(self, text: str) -> None:
        """Record ``text`` as ``last_error`` (a backend's own finding, e.g. no valid frame)."""
        with self._lock:
            self._last_error = text

    def status(self) -> dict[str, object]:
        """JSON-able port health.

        Keys: ``state``, ``port`` (the URL), ``device`` (resolved path of the open port, or
        None), ``reopen_count`` (successful opens after the first), ``open_failures`` and
        ``last_error`` (str or None), ``realtime`` (the thread's scheduling: ``SCHED_FIFO
        <n>``, ``normal priority`` or ``refused: <why>``).
        """
        with self._lock:
            return {
                "realtime": self._realtime,
                "state": self._state,
                "port": self.url,
                "device": self._device,
                "reopen_count": max(0, self._opens - 1),
                "open_failures": self._open_failures,
                "last_error": self._last_error,
            }

    # -- reader thread ------------------------------------------------------------------
    def _run(self) -> None:
        """Open, read until failure or stop, back off, reopen."""
        if self._priority is not None:
            line = _set_fifo(self._priority)
            with self._lock:
                self._realtime = line
            if line.startswith("refused"):
                self._log.warning("%s reader: %s", self._label, line, extra={"port": self.url})
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
                self._log.exception("%s reader failed", self._label, extra={"port": self.url})
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
        self._sink.discard_partial()

    def _open(self) -> serial.SerialBase | None:
        try:
            port = serial.serial_for_url(self.url, timeout=self._read_timeout_s, **self._options)
        except (serial.SerialException, OSError, ValueError) as exc:
            with self._lock:
                self._state = "degraded"
                self._last_error = f"open failed: {exc}"
                self._open_failures += 1
            self._log.debug(
                "%s port open failed", self._label, extra={"port": self.url, "error": str(exc)}
            )
            return None
        device = os.path.realpath(self.url) if os.path.exists(self.url) else None
        with self._lock:
            self._state = "ok"
            self._device = device
            self._opens += 1
            reopen_count = self._opens - 1
        self._log.info(
            "%s port open",
            self._label,
            extra={"port": self.url, "device": device, "reopen_count": reopen_count},
        )
        return port

    def _read_loop(self, port: serial.SerialBase) -> None:
        previous_ms = self._clock()  # nothing read before the port was open
        while not self._stop_event.is_set():
            look_ms = self._clock()
            waiting = port.in_waiting
            if waiting:  # there by this look, came after the previous one
                data = port.read(waiting)
                if data:
                    self._sink.on_bytes(data, look_ms, previous_ms)
            else:  # came after this look; stamped when the read returns
                data = port.read(1)
                now_ms = self._clock()
                if data:
                    self._sink.on_bytes(data, now_ms, look_ms)
                else:
                    self._sink.on_idle(now_ms)
            previous_ms = look_ms

    def _port_lost(self, exc: BaseException) -> None:
        with self._lock:
            self._state = "degraded"
            self._last_error = f"port lost: {exc}"
        self._log.warning(
            "%s port lost; reopening with backoff",
            self._label,
            extra={"port": self.url, "error": str(exc)},
        )
        self._sink.discard_partial()
