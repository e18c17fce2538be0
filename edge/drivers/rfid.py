"""RFID tag reader interface and the pure parts of reading a tag: UID frames and presence.

* UIDs are compared in one canonical form everywhere: upper-case hex, no separators
  (:func:`canonical_uid`; field case C1).
* :func:`decode_cl_frame` checks one cascade level's anticollision answer (UID CLn: four
  bytes and the BCC, the XOR of the four; ISO/IEC 14443-3 section 6.5.3.3 and 6.5.4). A
  first byte ``88h`` is the cascade tag CT: the UID goes on at the next cascade level and
  the CT itself is never part of it.
* :class:`PresenceTracker` turns per-poll sightings into presence episodes: a tag is
  present from its first sighting until it was missed in ``absence_misses`` consecutive
  polls (field case C2).

A backend (e.g. :mod:`edge.drivers.mfrc522_reader`) polls in its own thread and reports
each episode start as a :class:`TagRead`, and each failed read as a :class:`TagReadFailed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal, Protocol, runtime_checkable

from protocol.messages import canonical_uid as protocol_canonical_uid

__all__ = [
    "CASCADE_TAG",
    "FailReason",
    "PresenceTracker",
    "RfidCallback",
    "TagRead",
    "TagReadFailed",
    "TagReader",
    "UidError",
    "bcc",
    "canonical_uid",
    "decode_cl_frame",
]

CASCADE_TAG: Final = 0x88
"""CT: first byte of UID CLn when the UID continues at the next cascade level."""

FailReason = Literal[
    "bad_bcc", "cascade_required", "cascade_failed", "collision", "protocol", "timeout"
]
"""Why a tag that answered could not be read.

``bad_bcc``: the BCC of a CLn frame is not the XOR of its four bytes (a corrupted read, never
a different tag). ``cascade_required``: the UID is incomplete (CT or SAK cascade bit) and the
next level could not be read; the partial bytes are never a key. ``cascade_failed``: more than
three levels, or a level's SELECT went unanswered. ``collision``: tags collided in a way the
anticollision loop could not resolve. ``protocol``: malformed answer (length, CRC_A,
parity). ``timeout``: the poll ran past its deadline.
"""


class UidError(Exception):
    """A tag answered but no whole UID could be read.

    Attributes:
        reason: a :data:`FailReason`.
        partial: the UID bytes read before the failure (never usable as a key).
    """

    def __init__(self, reason: FailReason, detail: str = "", partial: bytes = b"") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: FailReason = reason
        self.partial = partial


def canonical_uid(uid: bytes | str) -> str:
    """The canonical UID text: upper-case hex, no separators (``b"\\xdd\\x17"`` -> ``"DD17"``).

    Raw bytes from the reader, or text that may use ``:``, ``-`` or spaces between bytes;
    the one form used everywhere is :func:`protocol.messages.canonical_uid`'s.

    Raises:
        ValueError: when it is not 4, 7 or 10 bytes of hex.
    """
    text = bytes(uid).hex() if isinstance(uid, bytes | bytearray) else uid
    return protocol_canonical_uid(text)


def bcc(data: Iterable[int]) -> int:
    """Block check character of ISO/IEC 14443-3: the XOR of the bytes."""
    check = 0
    for byte in data:
        check ^= byte
    return check


def decode_cl_frame(frame: bytes) -> tuple[bytes, bool]:
    """Check one cascade level's UID CLn (5 bytes) and return ``(uid_bytes, more)``.

    ``more`` is True when the frame starts with the cascade tag ``88h``: then ``uid_bytes``
    are the three UID bytes after it and the UID continues at the next level. Otherwise
    ``uid_bytes`` are the four UID bytes of this, the last, level.

    Raises:
        UidError: ``protocol`` when not 5 bytes; ``bad_bcc`` when the check byte is wrong.
    """
    if len(frame) != 5:
        raise UidError("protocol", f"UID CLn has 5 bytes, got {len(frame)}")
    if bcc(frame[:4]) != frame[4]:
        raise UidError(
            "bad_bcc", f"{frame.hex().upper()}: BCC {frame[4]:02X} != {bcc(frame[:4]):02X}"
        )
    if frame[0] == CASCADE_TAG:
        return bytes(frame[1:4]), True
    return bytes(frame[:4]), False


@dataclass(frozen=True, slots=True)
class TagRead:
    """A tag came into the field (start of a presence episode).

    Attributes:
        uid: canonical UID (upper-case hex, 8, 14 or 20 characters).
        t_ms: monotonic time of the poll that saw it, ms.
        episode: presence episode number of this UID on this reader, from 1.
        sak: the final SAK (tag type: 08h MIFARE Classic 1K, 00h Ultralight / NTAG).
        duration_ms: how long that poll ran, ms: the tag answered within
            ``[t_ms, t_ms + duration_ms]`` (a poll thread preempted mid-poll widens it;
            past the poll deadline the poll fails instead).
    """

    uid: str
    t_ms: float
    episode: int
    sak: int
    duration_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class TagReadFailed:
    """A tag answered but its UID could not be read whole (a no-read with a reason).

    Attributes:
        reason: a :data:`FailReason`.
        t_ms: monotonic time of the poll, ms.
        detail: human-readable detail for the log.
    """

    reason: FailReason
    t_ms: float
    detail: str = ""


RfidCallback = Callable[[TagRead | TagReadFailed], None]
"""Receives reads and failed reads; called on the reader's thread, must return quickly."""


class PresenceTracker:
    """Presence episodes of UIDs seen poll by poll (field case C2). Pure, not thread-safe.

    A UID's episode starts at the first poll that sees it and ends at the
    ``absence_misses``-th consecutive poll that does not.
    """

    def __init__(self, absence_misses: int = 3) -> None:
        """Args: absence_misses: consecutive missed polls that end an episode (>= 1)."""
        if absence_misses < 1:
            raise ValueError("absence_misses must be >= 1")
        self.absence_misses = absence_misses
        self._misses: dict[str, int] = {}
        self._episodes: dict[str, int] = {}

    @property
    def present(self) -> frozenset[str]:
        """UIDs currently in an episode."""
        return frozenset(self._misses)

    def episodes(self, uid: str) -> int:
        """Number of episodes ``uid`` has started so far."""
        return self._episodes.get(uid, 0)

    def feed(self, seen: Iterable[str]) -> tuple[list[tuple[str, int]], list[str]]:
        """Account one poll that saw ``seen``; returns ``(arrived, left)``.

        ``arrived`` holds ``(uid, episode number)`` for each episode started by this poll,
        ``left`` the UIDs whose episode ended with it.
        """
        seen_set = set(seen)
        arrived: list[tuple[str, int]] = []
        left: list[str] = []
        for uid in sorted(seen_set):
            if uid not in self._misses:
                self._episodes[uid] = self._episodes.get(uid, 0) + 1
                arrived.append((uid, self._episodes[uid]))
            self._misses[uid] = 0
        for uid in sorted(set(self._misses) - seen_set):
            self._misses[uid] += 1
            if self._misses[uid] >= self.absence_misses:
                del self._misses[uid]
                left.append(uid)
        return arrived, left

    def reset(self) -> list[str]:
        """End every episode (e.g. the reader was re-initialised); returns the UIDs."""
        gone = sorted(self._misses)
        self._misses.clear()
        return gone


RfidState = Literal["ok", "degraded", "failed", "stopped"]


@runtime_checkable
class TagReader(Protocol):
    """An RFID reader that polls on its own thread and pushes reads to a callback."""

    def self_test(self) -> dict[str, object]:
        """Open and probe the device; returns ``{"ok": bool, "detail": str}``. Never raises."""
        ...

    def start(self, on_read: RfidCallback) -> None:
        """Start polling; ``on_read`` gets each :class:`TagRead` and :class:`TagReadFailed`."""
        ...

    def stop(self) -> None:
        """Stop polling and release the device; returns within about one second."""
        ...

    def status(self) -> dict[str, object]:
        """JSON-able health: at least ``state`` (ok, degraded, failed, stopped), counters."""
        ...
