"""Serial barcode-scanner line framing: bytes in, scanned codes out.

Pure logic: no I/O, no threads, no clock. Time is an argument in milliseconds
(any monotonic origin, ``float``). The reader backend feeds whatever bytes the
port returned together with the time it read them; this module decides what is
a code, what is noise and what is a stale fragment (field cases C3, C4, C5).

Framing rules:

* A code is the bytes between terminators. CR and LF are both terminators
  whatever suffix the scanner is configured for (so CRLF split across reads,
  LF-only scanners and blank lines all work); empty frames are never emitted.
* A fragment that got no byte for longer than the inter-byte timeout is stale:
  it is dropped and reported, never glued to the next code.
* Bytes outside printable ASCII (0x20-0x7E) are noise, except GS (0x1D, the
  GS1 FNC1 separator), which is kept. Only *leading* noise, before the first
  kept byte of a frame (port-open garbage, line glitches before a scan), is
  stripped; the frame is flagged, and if it is also shorter than
  ``min_length`` it is dropped as noise.
* A noise byte after the first kept byte (inside or at the end of the code)
  makes the frame a garbled read: it is dropped (reason ``garbled``), never
  emitted with the byte removed, since stripping it could turn the read into
  another valid code (``RMA-000\xb123`` is not ``RMA-00023``). The parcel is
  then decided on its other reads, or as a no-read.
* Frames in ``ignore_frames`` (default: the modem probe ``AT``) are dropped.
* A frame longer than ``max_length`` raw bytes is dropped as overflow; memory
  stays bounded whatever the line carries.
* An AIM symbology identifier (``]`` + letter + letter/digit, e.g. ``]C1``)
  at the start of a frame is split off into ``ScanFrame.symbology``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from protocol.codes import split_aim

__all__ = ["GS", "DropReason", "Dropped", "ScanFrame", "ScanFramer", "split_aim_prefix"]

GS: Final = 0x1D
"""Group separator byte, used as the GS1 FNC1 field separator; kept in codes."""

_CR: Final = 0x0D
_LF: Final = 0x0A
_SUFFIXES: Final = (b"\r", b"\n", b"\r\n")

DropReason = Literal["stale", "overflow", "noise", "garbled", "ignored", "empty", "reset"]
"""Why a frame was not emitted.

``stale``: no byte for longer than the inter-byte timeout before a terminator.
``overflow``: more than ``max_length`` raw bytes. ``noise``: only noise, or
leading noise and shorter than ``min_length``. ``garbled``: a noise byte after the
first kept byte (inside the code). ``ignored``: listed in ``ignore_frames``.
``empty``: only an AIM identifier, no code. ``reset``: partial frame discarded
by :meth:`ScanFramer.reset` (e.g. the port was lost).
"""


@dataclass(frozen=True, slots=True)
class ScanFrame:
    """One accepted scan.

    Attributes:
        code: The scanned data as text: printable ASCII plus GS (``"\\x1d"``),
            leading noise stripped, without terminator and without AIM identifier.
        symbology: The AIM symbology identifier (e.g. ``"]C1"``), or ``None``.
        t_ms: Time of the frame's first byte (when the scan began), in ms on
            the caller's clock: the latest time the code can have been seen.
        had_noise: True if leading noise bytes were stripped from it.
        latency_ms: The read's timing uncertainty, ms: the code was seen within
            ``[t_ms - latency_ms, t_ms]`` (the framer gives how long before ``t_ms``
            its first byte may have reached the port; the scanner adds its device's
            own latency).
        late: True when the scanner knows the frame was delivered later than its
            healthy bound (``max_latency_ms``): never evidence for any parcel.
    """

    code: str
    symbology: str | None
    t_ms: float
    had_noise: bool
    latency_ms: float = 0.0
    late: bool = False


@dataclass(frozen=True, slots=True)
class Dropped:
    """A frame (or fragment) that was discarded, for logging and counters.

    Attributes:
        reason: Why it was dropped, see :data:`DropReason`.
        data: The raw bytes received for it (at most ``max_length`` bytes).
        t_ms: Time of its first byte, in ms on the caller's clock.
        had_noise: True if ``data`` holds noise bytes (outside printable
            ASCII, GS excepted).
    """

    reason: DropReason
    data: bytes
    t_ms: float
    had_noise: bool = False


class ScanFramer:
    """Incremental framer for a serial barcode scanner's byte stream.

    Not thread-safe: one reader feeds it. ``feed`` returns accepted frames;
    frames it drops on the way are collected and returned by
    :meth:`take_dropped`. ``expire`` and ``reset`` return their drops directly.
    """

    def __init__(
        self,
        suffix: bytes = b"\r",
        inter_byte_timeout_ms: float = 500.0,
        max_length: int = 256,
        *,
        min_length: int = 3,
        ignore_frames: Iterable[str] = ("AT",),
    ) -> None:
        """Create a framer.

        Args:
            suffix: The scanner's configured suffix: ``b"\\r"``, ``b"\\n"`` or
                ``b"\\r\\n"``. Framing accepts CR and LF either way; this is
                validated and kept for status and documentation.
            inter_byte_timeout_ms: A buffered fragment with no new byte for
                longer than this (ms) is stale and dropped.
            max_length: Longest accepted frame in raw bytes (AIM identifier
                included, terminator excluded).
            min_length: A frame that had leading noise and whose code is
                shorter than this (characters) is dropped as noise.
            ignore_frames: Exact frame texts (after leading-noise stripping) that are
                never codes, such as modem probes sent at port open.
        """
        if suffix not in _SUFFIXES:
            raise ValueError(f"suffix must be one of {_SUFFIXES!r}, got {suffix!r}")
        if inter_byte_timeout_ms <= 0:
            raise ValueError("inter_byte_timeout_ms must be > 0")
        if max_length < 1:
            raise ValueError("max_length must be >= 1")
        if min_length < 0:
            raise ValueError("min_length must be >= 0")
        self.suffix: Final = suffix
        self.inter_byte_timeout_ms: Final = float(inter_byte_timeout_ms)
        self.max_length: Final = max_length
        self.min_length: Final = min_length
        self.ignore_frames: Final = frozenset(ignore_frames)
        self._buf = bytearray()
        self._overflow = False
        self._first_t_ms = 0.0
        self._first_latency_ms = 0.0
        self._last_t_ms: float | None = None
        self._dropped: list[Dropped] = []

    @property
    def pending(self) -> int:
        """Number of raw bytes buffered for an unterminated frame."""
        return len(self._buf)

    def feed(self, data: bytes, t_ms: float, since_ms: float | None = None) -> list[ScanFrame]:
        """Consume bytes that reached the port within ``(since_ms, t_ms]`` (ms).

        A buffered fragment that has gone stale since the last byte is dropped
        first. Returns the frames completed by ``data``, in order, each with the
        ``latency_ms`` of its first byte (``t_ms - since_ms``; 0 when ``since_ms`` is
        None); drops are kept for :meth:`take_dropped`.
        """
        self._dropped.extend(self.expire(t_ms))
        frames: list[ScanFrame] = []
        for byte in data:
            if byte in (_CR, _LF):
                frame = self._complete()
                if frame is not None:
                    frames.append(frame)
                continue
            if not self._buf and not self._overflow:
                self._first_t_ms = t_ms
                self._first_latency_ms = 0.0 if since_ms is None else max(0.0, t_ms - since_ms)
            if len(self._buf) < self.max_length:
                self._buf.append(byte)
            else:
                self._overflow = True
        if data:
            self._last_t_ms = t_ms
        return frames

    def expire(self, t_ms: float) -> list[Dropped]:
        """Drop the buffered fragment if no byte came for longer than the timeout.

        Call it when a read returned nothing. ``t_ms`` is the current time (ms).
        """
        if not self._has_fragment() or self._last_t_ms is None:
            return []
        if t_ms - self._last_t_ms <= self.inter_byte_timeout_ms:
            return []
        reason: DropReason = "overflow" if self._overflow else "stale"
        return [self._discard(reason)]

    def reset(self) -> list[Dropped]:
        """Discard any partial frame (reason ``reset``), e.g. when the port is lost.

        Bytes arriving afterwards start a new frame; the fragment is never
        completed later.
        """
        self._last_t_ms = None
        if not self._has_fragment():
            return []
        return [self._discard("reset")]

    def take_dropped(self) -> list[Dropped]:
        """Return and forget the drops collected by :meth:`feed` since the last call."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def _has_fragment(self) -> bool:
        return bool(self._buf) or self._overflow

    def _discard(self, reason: DropReason) -> Dropped:
        raw = bytes(self._buf)
        dropped = Dropped(reason, raw, self._first_t_ms, len(_strip_noise(raw)) != len(raw))
        self._buf.clear()
        self._overflow = False
        return dropped

    def _complete(self) -> ScanFrame | None:
        """Close the current frame at a terminator; emit it or record a drop."""
        if not self._has_fragment():
            return None
        if self._overflow:
            self._dropped.append(self._discard("overflow"))
            return None
        raw = bytes(self._buf)
        t_ms = self._first_t_ms
        self._buf.clear()
        kept = _strip_leading_noise(raw)
        had_noise = len(kept) != len(raw)
        reason: DropReason | None = None
        symbology: str | None = None
        text = kept.decode("ascii") if all(_is_kept(b) for b in kept) else ""
        if kept and not text:
            reason = "garbled"
            had_noise = True
        elif not text:
            reason = "noise"
        elif text in self.ignore_frames:
            reason = "ignored"
        else:
            symbology, text = split_aim_prefix(text)
            if not text:
                reason = "empty"
            elif had_noise and len(text) < self.min_length:
                reason = "noise"
        if reason is not None:
            self._dropped.append(Dropped(reason, raw, t_ms, had_noise))
            return None
        return ScanFrame(
            code=text,
            symbology=symbology,
            t_ms=t_ms,
            had_noise=had_noise,
            latency_ms=self._first_latency_ms,
        )


def split_aim_prefix(text: str) -> tuple[str | None, str]:
    """Split a leading AIM symbology identifier off ``text``.

    Returns ``(identifier, rest)``, e.g. ``("]C1", "0109...")``, or
    ``(None, text)`` when ``text`` does not start with ``]`` + letter +
    letter/digit.
    """
    return split_aim(text)  # the code classifier's rule (protocol.codes)


def _is_kept(byte: int) -> bool:
    """Printable ASCII (0x20-0x7E) or GS."""
    return 0x20 <= byte <= 0x7E or byte == GS


def _strip_leading_noise(raw: bytes) -> bytes:
    """Drop the noise bytes before the first kept byte (all of ``raw`` if none)."""
    for i, byte in enumerate(raw):
        if _is_kept(byte):
            return raw[i:]
    return b""


def _strip_noise(raw: bytes) -> bytes:
    """Keep printable ASCII (0x20-0x7E) and GS; drop every other byte."""
    return bytes(b for b in raw if _is_kept(b))
