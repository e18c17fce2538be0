"""Checkweigher backend on pyserial: the Toledo continuous output of a weighing indicator.

The format
----------
"Toledo continuous" (Mettler Toledo's *standard continuous output*) is the de facto common
continuous weight string of industrial indicators: besides Mettler Toledo's own terminals
(IND560 / IND780 / Wildcat technical manuals, "Continuous Output"), indicators of Ohaus
(Defender 5000), Cardinal (225, "TOLEDO" continuous formats), Fairbanks (FB2550 / FB3000,
"Toledo data format"), Kern, Rice Lake and others emit it, and PLC interface modules read
it (Rice Lake documents it as its "Toledo 8142" stream). One frame, sent at the display
update rate (about 5-20 per second), 7-bit ASCII (bit 7 is parity or 0 and is ignored)::

    STX SWA SWB SWC  W W W W W W  [T T T T T T]  CR  [CHK]
    02h  status A-C  displayed weight  tare       0Dh  checksum

- **Weight**, then optionally **tare**: six digits each, no sign, no decimal point
  (leading zeros or blanks). The short form without tare (Cardinal "SHORT") is detected
  by the CR after the weight.
- **Status word A**: bits 0-2 the decimal point of the six digits (0: two dummy zeros,
  x100; 1: one dummy zero, x10; 2: ``XXXXXX``; 3: ``XXXXX.X`` ... 7: ``X.XXXXX``; the
  dummy zeros are displayed, not sent: Vector VI-200 manual, "XXXXXX0" for code 1),
  bits 3-4 the increment (x1, x2, x5), bit 5 always 1.
- **Status word B**: bit 0 net (1) / gross (0), bit 1 negative, bit 2 out of range
  (over capacity, or under zero when negative), bit 3 motion, bit 4 kg (1) / lb (0),
  bit 5 always 1, bit 6 zero not captured since power-up.
- **Status word C**: bits 0-2 the unit (0: lb or kg per status B bit 4, 1: grams,
  2: metric tons, 3: ounces; others are not supported here), bit 3 print request,
  bit 4 expanded display (x10), bit 5 always 1.
- **Checksum** (optional, set ``checksum`` to match the indicator): the two's complement
  of the seven low-order bits of the sum of every character before it, STX and CR
  included; the frame is valid when the 7-bit sum of all its characters is 0.

Status bits are read as Mettler Toledo and Ohaus document them (bit 5 set makes every
status byte printable, so an STX in a status position always means a cut frame).

Bad input is counted, never delivered: bytes outside a frame (``garbage``), a wrong
checksum (``checksum``), a frame whose status bytes, digits or CR are not where the format
puts them (``malformed``), a frame cut by the next STX (``truncated``), a fragment with no
byte for longer than ``inter_byte_timeout_ms`` (``stale``), an unsupported unit
(``unsupported_unit``) and a fragment lost when the port fails (``reset``). The port is read
by :class:`~edge.drivers.serial_port.SerialReader`, so an unplugged indicator is reopened
with backoff like the scanner. The station reports ``degraded`` while no valid frame came
for ``stale_after_ms``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

import serial

from edge.drivers.scale import ScaleCallback, ScaleState, WeightReading, to_grams
from edge.drivers.serial_port import SerialReader

__all__ = ["BadFrame", "BadReason", "PySerialScale", "ToledoFramer", "toledo_checksum"]

logger = logging.getLogger(__name__)

STX: Final = 0x02
CR: Final = 0x0D
_STATUS_BIT: Final = 0x20
_UNITS: Final = {1: "g", 2: "t", 3: "oz"}
_SHORT: Final = 10  # STX, three status bytes, six weight digits
_LONG: Final = 16  # ... and six tare digits
_MAX_GARBAGE: Final = 64

BadReason = Literal[
    "garbage", "checksum", "malformed", "truncated", "stale", "unsupported_unit", "reset"
]
"""Why bytes were not a reading (see the module doc)."""


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Bytes that were dropped: why, the bytes (at most 64 kept), when the first came (ms)."""

    reason: BadReason
    data: bytes
    t_ms: float
    detail: str = ""


def toledo_checksum(frame: bytes) -> int:
    """The checksum character of ``frame`` (STX through CR): ``-sum & 0x7F``."""
    return -sum(b & 0x7F for b in frame) & 0x7F


def _digits(field: bytes) -> int | None:
    text = field.decode("ascii", "replace").lstrip(" ")
    return int(text) if text and text.isdigit() and text.isascii() else None


class ToledoFramer:
    """Incremental decoder of the Toledo continuous output. Pure; one feeder; time in ms.

    Args:
        checksum: True when the indicator appends the checksum character.
        inter_byte_timeout_ms: a fragment with no byte for longer than this is stale.

    Raises:
        ValueError: on a non-positive ``inter_byte_timeout_ms``.
    """

    def __init__(self, checksum: bool = True, inter_byte_timeout_ms: float = 200.0) -> None:
        if inter_byte_timeout_ms <= 0:
            raise ValueError("inter_byte_timeout_ms must be > 0")
        self.checksum = checksum
        self.inter_byte_timeout_ms = float(inter_byte_timeout_ms)
        self._frame = bytearray()  # from STX; empty when hunting for STX
        self._cr_at: int | None = None  # where the frame's CR is, once known
        self._garbage = bytearray()
        self._garbage_count = 0
        self._first_t_ms = 0.0
        self._last_t_ms: float | None = None
        self._bad: list[BadFrame] = []

    @property
    def pending(self) -> int:
        """Bytes buffered: a frame being received, or garbage not yet reported."""
        return len(self._frame) + self._garbage_count

    def feed(self, data: bytes, t_ms: float) -> list[WeightReading]:
        """Consume bytes read at ``t_ms``; return the readings completed, in order.

        A fragment gone stale since the last byte is dropped first; drops are kept for
        :meth:`take_bad`.
        """
        self._bad.extend(self.expire(t_ms))
        readings: list[WeightReading] = []
        for raw in data:
            byte = raw & 0x7F
            if not self._frame:
                if byte == STX:
                    self._flush_garbage()
                    self._frame.append(byte)
                    self._first_t_ms = t_ms
                else:
                    if not self._garbage_count:
                        self._first_t_ms = t_ms
                    self._garbage_count += 1
                    if len(self._garbage) < _MAX_GARBAGE:
                        self._garbage.append(byte)
                continue
            reading = self._add(byte, t_ms)
            if reading is not None:
                readings.append(reading)
        if data:
            self._last_t_ms = t_ms
        return readings

    def expire(self, t_ms: float) -> list[BadFrame]:
        """Drop a fragment (or report garbage) when no byte came for longer than the timeout."""
        if self._last_t_ms is None or t_ms - self._last_t_ms <= self.inter_byte_timeout_ms:
            return []
        return self._drop_pending("stale")

    def reset(self) -> list[BadFrame]:
        """Discard a partial frame (reason ``reset``), e.g. when the port was lost."""
        self._last_t_ms = None
        return self._drop_pending("reset")

    def take_bad(self) -> list[BadFrame]:
        """Return and forget the drops collected by :meth:`feed` since the last call."""
        bad, self._bad = self._bad, []
        return bad

    # -- internals ----------------------------------------------------------------------
    def _drop_pending(self, reason: BadReason) -> list[BadFrame]:
        """Report pending garbage, and drop the partial frame with ``reason``."""
        dropped = self._take_garbage()
        if self._frame:
            dropped.append(BadFrame(reason, bytes(self._frame), self._first_t_ms))
            self._clear()
        return dropped

    def _flush_garbage(self) -> None:
        self._bad.extend(self._take_garbage())

    def _take_garbage(self) -> list[BadFrame]:
        if not self._garbage_count:
            return []
        n = self._garbage_count
        bad = BadFrame("garbage", bytes(self._garbage), self._first_t_ms, f"{n} byte(s)")
        self._garbage.clear()
        self._garbage_count = 0
        return [bad]

    def _clear(self) -> None:
        self._frame.clear()
        self._cr_at = None

    def _restart(self, t_ms: float) -> None:
        self._bad.append(BadFrame("truncated", bytes(self._frame), self._first_t_ms))
        self._clear()
        self._frame.append(STX)
        self._first_t_ms = t_ms

    def _add(self, byte: int, t_ms: float) -> WeightReading | None:
        """Add one byte after the STX; return the reading it completes, if any."""
        n = len(self._frame)  # the position this byte takes
        if self._cr_at is not None and n > self._cr_at:  # the checksum character
            self._frame.append(byte)
            return self._complete()
        if byte == STX:  # a new frame starts where data should be: this one was cut
            self._restart(t_ms)
            return None
        self._frame.append(byte)
        if n == _SHORT:  # CR of the short form, or the first tare digit
            self._cr_at = _SHORT if byte == CR else _LONG
            if byte != CR:
                return None
        elif n == _LONG:
            if byte != CR:
                self._bad.append(
                    BadFrame("malformed", bytes(self._frame), self._first_t_ms, "no CR")
                )
                self._clear()
                return None
        else:
            return None
        return None if self.checksum else self._complete()

    def _complete(self) -> WeightReading | None:
        frame = bytes(self._frame)
        t_ms = self._first_t_ms
        self._clear()
        body = frame[:-1] if self.checksum else frame
        if self.checksum and toledo_checksum(body) != frame[-1]:
            want = toledo_checksum(body)
            self._bad.append(
                BadFrame("checksum", frame, t_ms, f"got {frame[-1]:02X}h, want {want:02X}h")
            )
            return None
        return self._decode(body, t_ms)

    def _decode(self, body: bytes, t_ms: float) -> WeightReading | None:
        swa, swb, swc = body[1], body[2], body[3]
        if not swa & swb & swc & _STATUS_BIT:
            self._bad_frame("malformed", body, t_ms, "status byte without bit 5")
            return None
        weight = _digits(body[4:10])
        tare = _digits(body[10:16]) if len(body) > _SHORT + 1 else None
        if weight is None or (len(body) > _SHORT + 1 and tare is None):
            self._bad_frame("malformed", body, t_ms, "weight or tare is not digits")
            return None
        unit_code = swc & 0x07
        if unit_code == 0:
            unit = "kg" if swb & 0x10 else "lb"
        elif unit_code in _UNITS:
            unit = _UNITS[unit_code]
        else:
            self._bad_frame("unsupported_unit", body, t_ms, f"unit code {unit_code}")
            return None
        exponent = 2 - (swa & 0x07)  # code 0: x100 and 1: x10 (dummy zeros not sent)
        negative = bool(swb & 0x02)
        value = Decimal(-weight if negative else weight).scaleb(exponent)
        out_of_range = bool(swb & 0x04)
        return WeightReading(
            t_ms=t_ms,
            value=value,
            unit=unit,
            weight_g=to_grams(value, unit),
            stable=not swb & 0x08,
            net=bool(swb & 0x01),
            load=("underload" if negative else "overload") if out_of_range else "ok",
            zeroed=not swb & 0x40,
            tare_g=None if tare is None else to_grams(Decimal(tare).scaleb(exponent), unit),
        )

    def _bad_frame(self, reason: BadReason, body: bytes, t_ms: float, detail: str) -> None:
        self._bad.append(BadFrame(reason, body, t_ms, detail))


_PARITY: Final = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
_BAD_KEYS: Final[dict[BadReason, str]] = {
    "garbage": "garbage_frames",
    "checksum": "checksum_errors",
    "malformed": "malformed_frames",
    "truncated": "truncated_frames",
    "stale": "stale_frames",
    "unsupported_unit": "unsupported_frames",
    "reset": "partial_drops",
}


def _monotonic_ms() -> float:
    return time.monotonic_ns() / 1e6


class PySerialScale:
    """A weighing indicator's Toledo continuous output on a serial port (pyserial).

    Implements :class:`edge.drivers.scale.Checkweigher`.

    Args:
        url: port path or pyserial URL (prefer a stable ``/dev/serial/by-id/...`` path).
        baudrate / bytesize / parity / stopbits: the indicator's line settings (``parity``
            ``N``, ``E`` or ``O``; Toledo outputs are often 9600 7E1 or 8N1).
        checksum: True when the indicator appends the checksum character.
        inter_byte_timeout_ms: a fragment with no byte for longer than this is dropped.
        stale_after_ms: no valid frame for this long: ``degraded``.
        self_test_ms: how long :meth:`self_test` waits for a valid frame.
        clock: monotonic time source in ms (stamps readings).
        reopen_backoff_s: ``(first, cap)`` seconds between reopen attempts after a failure.
    """

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: int = 1,
        checksum: bool = True,
        inter_byte_timeout_ms: float = 200.0,
        stale_after_ms: float = 1000.0,
        self_test_ms: float = 2000.0,
        clock: Callable[[], float] = _monotonic_ms,
        reopen_backoff_s: tuple[float, float] = (0.05, 2.0),
    ) -> None:
        if parity not in _PARITY:
            raise ValueError(f"parity must be one of {', '.join(_PARITY)}, got {parity!r}")
        self._url = url
        self._clock = clock
        self._checksum = checksum
        self._inter_byte_timeout_ms = inter_byte_timeout_ms
        self._stale_after_ms = stale_after_ms
        self._self_test_ms = self_test_ms
        self._options: dict[str, object] = {
            "baudrate": baudrate,
            "bytesize": bytesize,
            "parity": _PARITY[parity],
            "stopbits": stopbits,
        }
        self._framer = ToledoFramer(checksum, inter_byte_timeout_ms)
        self._port = SerialReader(
            url,
            self,
            label="scale",
            clock=clock,
            logger=logger,
            reopen_backoff_s=reopen_backoff_s,
            serial_options=self._options,
        )
        self._lock = threading.Lock()
        self._on_reading: ScaleCallback | None = None
        self._started_at_ms: float | None = None
        self._last: WeightReading | None = None
        self._readings = 0
        self._callback_errors = 0
        self._bad: dict[str, int] = dict.fromkeys(_BAD_KEYS.values(), 0)
        self._last_bad: str | None = None

    # -- public API ---------------------------------------------------------------------
    def self_test(self) -> dict[str, object]:
        """Wait up to ``self_test_ms`` for one valid frame; ``{"ok", "detail"}``; never raises.

        When the scale is running, judge from its readings instead of opening the port.
        """
        if self._port.state != "stopped":
            last = self._fresh_reading()
            if last is None:
                return {"ok": False, "detail": self._silence()}
            return {"ok": True, "detail": _describe(last)}
        framer = ToledoFramer(self._checksum, self._inter_byte_timeout_ms)
        bad: list[BadFrame] = []
        try:
            port = serial.serial_for_url(self._url, timeout=0.05, **self._options)
        except (serial.SerialException, OSError, ValueError) as exc:
            return {"ok": False, "detail": f"cannot open {self._url}: {exc}"}
        try:
            deadline = time.monotonic() + self._self_test_ms / 1000.0
            while time.monotonic() < deadline:
                data = port.read(port.in_waiting or 1)
                now = self._clock()
                readings = framer.feed(data, now) if data else []
                bad += framer.take_bad() if data else framer.expire(now)
                if readings:
                    return {"ok": True, "detail": _describe(readings[0])}
        except (serial.SerialException, OSError) as exc:
            return {"ok": False, "detail": f"{self._url}: {exc}"}
        except Exception as exc:  # a self-test never raises
            return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        finally:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()
        reasons = sorted({b.reason for b in bad})
        why = f" ({len(bad)} bad: {', '.join(reasons)})" if bad else ""
        window = f"{self._self_test_ms:.0f} ms"
        return {"ok": False, "detail": f"no valid Toledo continuous frame in {window}{why}"}

    def start(self, on_reading: ScaleCallback) -> None:
        """Start the reader thread; ``on_reading`` receives each decoded reading.

        Raises:
            RuntimeError: when already started.
        """
        with self._lock:
            self._on_reading = on_reading
            self._started_at_ms = self._clock()
        self._port.start()

    def stop(self) -> None:
        """Stop the reader thread and close the port (joins within about 1 s)."""
        self._port.stop()

    def status(self) -> dict[str, object]:
        """JSON-able health (see :class:`~edge.drivers.scale.Checkweigher`).

        Besides the interface keys: ``device``, ``open_failures``, ``checksum`` (on/off),
        one counter per bad-frame reason (``garbage_frames``, ``checksum_errors``,
        ``malformed_frames``, ``truncated_frames``, ``stale_frames``,
        ``unsupported_frames``, ``partial_drops``; ``bad_frames`` is their sum),
        ``callback_errors``, ``buffered_bytes`` and ``last_bad`` (the last drop's reason
        and detail). ``state`` is ``degraded`` while the port is open but no valid frame
        came for ``stale_after_ms``.
        """
        port = self._port.status()
        fresh = self._fresh_reading()
        state: ScaleState = port["state"]  # type: ignore[assignment]
        last_error = port["last_error"]
        if state == "ok" and fresh is None and self._silent_too_long():
            state, last_error = "degraded", self._silence()
        with self._lock:
            last = self._last
            now = self._clock()
            return {
                "state": state,
                "port": self._url,
                "device": port["device"],
                "checksum": self._checksum,
                "readings": self._readings,
                "bad_frames": sum(self._bad.values()),
                **self._bad,
                "callback_errors": self._callback_errors,
                "reopen_count": port["reopen_count"],
                "open_failures": port["open_failures"],
                "buffered_bytes": self._framer.pending,
                "last_reading": None
                if last is None
                else {
                    "weight_g": round(last.weight_g, 3),
                    "unit": last.unit,
                    "stable": last.stable,
                    "net": last.net,
                    "load": last.load,
                    "age_ms": round(now - last.t_ms, 1),
                },
                "last_bad": self._last_bad,
                "last_error": last_error,
            }

    # -- reader thread (ByteSink of the SerialReader) -----------------------------------
    def on_bytes(self, data: bytes, t_ms: float, since_ms: float | None = None) -> None:
        """Decode bytes read at ``t_ms`` and deliver the readings (reader thread).

        ``since_ms`` (when they came, at the earliest) is not used: a weighing is timed
        by its plateau, which spans many readings.
        """
        readings = self._framer.feed(data, t_ms)
        self._record(self._framer.take_bad())
        for reading in readings:
            self._deliver(reading)

    def on_idle(self, t_ms: float) -> None:
        """Expire a stale fragment (reader thread)."""
        self._record(self._framer.expire(t_ms))

    def discard_partial(self) -> None:
        """Drop a half-received frame (port lost, or stopping)."""
        self._record(self._framer.reset())

    # -- internals ----------------------------------------------------------------------
    def _fresh_reading(self) -> WeightReading | None:
        with self._lock:
            last = self._last
        if last is None or self._clock() - last.t_ms > self._stale_after_ms:
            return None
        return last

    def _silent_too_long(self) -> bool:
        with self._lock:
            since = self._last.t_ms if self._last is not None else self._started_at_ms
        return since is not None and self._clock() - since > self._stale_after_ms

    def _silence(self) -> str:
        with self._lock:
            last_bad = self._last_bad
        why = f"; last bad frame: {last_bad}" if last_bad else ""
        return f"no valid weight frame for over {self._stale_after_ms:.0f} ms{why}"

    def _deliver(self, reading: WeightReading) -> None:
        with self._lock:
            self._readings += 1
            self._last = reading
            on_reading = self._on_reading
        if on_reading is None:
            return
        try:
            on_reading(reading)
        except Exception:
            with self._lock:
                self._callback_errors += 1
            logger.exception("scale on_reading callback raised", extra={"port": self._url})

    def _record(self, bad: list[BadFrame]) -> None:
        for item in bad:
            text = f"{item.reason}: {item.detail}" if item.detail else item.reason
            with self._lock:
                self._bad[_BAD_KEYS[item.reason]] += 1
                self._last_bad = text
            level = logging.INFO if item.reason == "reset" else logging.WARNING
            logger.log(
                level,
                "scale frame dropped",
                extra={"port": self._url, "reason": item.reason, "data_hex": item.data.hex()},
            )


def _describe(reading: WeightReading) -> str:
    kind = "net" if reading.net else "gross"
    motion = "stable" if reading.stable else "in motion"
    load = "" if reading.load == "ok" else f", {reading.load}"
    return f"Toledo continuous: {reading.value} {reading.unit} {kind}, {motion}{load}"
