"""MFRC522 RFID reader over SPI, on the ``mfrc522`` package (pimylifeup MFRC522-python).

The library's :class:`mfrc522.MFRC522` opens the SPI device (``spidev``), drives the reset
pin (``RPi.GPIO``), initialises the chip (``MFRC522_Init``) and gives register access
(``Read_MFRC522`` / ``Write_MFRC522`` / ``SetBitMask`` / ``ClearBitMask``) and the CRC
coprocessor (``CalulateCRC``); this module uses exactly those. What the library lacks is
done here, after the NXP MFRC522 datasheet (rev. 3.9) and ISO/IEC 14443-3:

* Transceive with a deadline (datasheet 10.3.1.8): the library's ``MFRC522_ToCard`` ignores
  the timer interrupt and spins 2000 register reads when no tag answers; ours stops at
  TimerIRq (no tag) or at the poll's deadline.
* Full anticollision and SELECT at cascade levels 1 to 3 (ISO/IEC 14443-3 6.5.3, 6.5.4):
  SEL 93h / 95h / 97h, bit-oriented anticollision frames with NVB, TxLastBits / RxAlign,
  collision resolution from ``CollReg``, BCC checked at each level, SAK cascade bit (04h)
  followed, so 7-byte (NTAG, Ultralight) and 10-byte UIDs are read whole. The library's
  ``MFRC522_Anticoll`` reads level 1 only and would key a 7-byte tag by ``88`` + 3 bytes.
* WUPA then REQA per poll with HLTA after each read, so every tag in the field is read once
  per poll and a resting tag is seen again at the next poll.

One poll thread per reader; each poll has a deadline (``poll_deadline_ms``). A poll past its
deadline is abandoned as a ``timeout``; a bus call that never returns leaves the thread
stuck, which :meth:`Mfrc522Reader.status` reports (``stalled``, state ``degraded``) while the
sorter core goes on deciding parcels by their own deadlines. After ``reinit_after_errors``
consecutive failed polls (SPI errors, timeouts, a chip that does not answer its version),
the chip is reset through its NRSTPD pin and re-initialised.

On a station this needs the ``pi`` extra (``mfrc522``, ``spidev``, ``RPi.GPIO``). The
simulator puts register-level fakes of ``spidev`` and ``RPi.GPIO`` under the same library.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import mfrc522
from RPi import GPIO

from edge.clock import monotonic_ms
from edge.drivers.rfid import (
    FailReason,
    PresenceTracker,
    RfidCallback,
    RfidState,
    TagRead,
    TagReadFailed,
    UidError,
    canonical_uid,
    decode_cl_frame,
)

__all__ = ["KNOWN_VERSIONS", "Mfrc522Reader", "PollTimeout", "crc_a"]

logger = logging.getLogger(__name__)

# Registers and bits (datasheet section 9.2, table 20; section 10.3 commands)
_COMMAND, _COMM_IRQ, _ERROR, _FIFO_DATA, _FIFO_LEVEL = 0x01, 0x04, 0x06, 0x09, 0x0A
_CONTROL, _BIT_FRAMING, _COLL, _VERSION = 0x0C, 0x0D, 0x0E, 0x37
_CMD_IDLE, _CMD_TRANSCEIVE = 0x00, 0x0C
_T_RELOAD_H, _T_RELOAD_L = 0x2C, 0x2D
_NO_ANSWER_TICKS = 10
_REINIT_BACKOFF_CAP_S = 2.0
"""Timer reload after the library's init (TPrescaler D3Eh: 0.5 ms ticks, datasheet 8.5):
5 ms until TimerIRq when no tag answers, instead of the library's 15 ms; ISO/IEC 14443-3
answers (ATQA, UID CLn, SAK) come within about 0.1 ms at 106 kbit/s."""
_IRQ_RX, _IRQ_IDLE, _IRQ_ERR, _IRQ_TIMER = 0x20, 0x10, 0x02, 0x01
_ERR_COLL, _ERR_HARD = 0x08, 0x13  # CollErr; BufferOvfl | ParityErr | ProtocolErr
_REQA, _WUPA, _HLTA = 0x26, 0x52, 0x50
_SEL = (0x93, 0x95, 0x97)
_SAK_CASCADE = 0x04

KNOWN_VERSIONS: Final = {0x91: "MFRC522 v1.0", 0x92: "MFRC522 v2.0", 0x88: "FM17522 clone"}
"""``VersionReg`` values of chips this driver accepts (datasheet 9.3.4.8)."""


class PollTimeout(Exception):
    """A poll ran past its deadline."""


def crc_a(data: bytes) -> bytes:
    """CRC_A (ISO/IEC 14443-3 Annex B, preset 6363h), LSB first; checks a tag's answer."""
    crc = 0x6363
    for byte in data:
        ch = (byte ^ crc) & 0xFF
        ch = (ch ^ (ch << 4)) & 0xFF
        crc = ((crc >> 8) ^ (ch << 8) ^ (ch << 3) ^ (ch >> 4)) & 0xFFFF
    return bytes((crc & 0xFF, crc >> 8))


@dataclass(frozen=True, slots=True)
class _Rx:
    data: bytes
    last_bits: int  # valid bits of the last byte, 0 = all 8
    collision: bool
    coll_reg: int


class Mfrc522Reader:
    """MFRC522 on SPI, polled on its own thread. Implements :class:`~edge.drivers.rfid.TagReader`.

    Args:
        bus: SPI bus (``/dev/spidev{bus}.{device}``).
        device: SPI chip select.
        spi_speed_hz: SPI clock, Hz (the chip takes up to 10 MHz).
        rst_pin: BCM pin wired to the chip's NRSTPD (hard reset / power-down).
        poll_interval_ms: time from the start of one poll to the start of the next, ms.
        poll_deadline_ms: a poll still running after this is abandoned, ms.
        absence_misses: consecutive missed polls that end a tag's presence episode.
        reinit_after_errors: consecutive failed polls before the chip is reset.
        max_tags: most tags read in one poll.
        clock: monotonic time source, ms.
    """

    def __init__(
        self,
        bus: int = 0,
        device: int = 0,
        spi_speed_hz: int = 1_000_000,
        rst_pin: int = 25,
        poll_interval_ms: float = 20.0,
        poll_deadline_ms: float = 50.0,
        absence_misses: int = 3,
        reinit_after_errors: int = 5,
        max_tags: int = 4,
        clock: Callable[[], float] = monotonic_ms,
    ) -> None:
        if poll_interval_ms <= 0 or poll_deadline_ms <= 0:
            raise ValueError("poll_interval_ms and poll_deadline_ms must be > 0")
        if reinit_after_errors < 1 or max_tags < 1:
            raise ValueError("reinit_after_errors and max_tags must be >= 1")
        self.bus, self.device, self.rst_pin = bus, device, rst_pin
        self.spi_speed_hz = spi_speed_hz
        self.poll_interval_ms = float(poll_interval_ms)
        self.poll_deadline_ms = float(poll_deadline_ms)
        self.reinit_after_errors = reinit_after_errors
        self.max_tags = max_tags
        self.clock = clock
        self.presence = PresenceTracker(absence_misses)
        self._chip: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_read: RfidCallback | None = None
        self._deadline = float("inf")
        self._state: RfidState = "stopped"
        self._version: int | None = None
        self._poll_started: float | None = None
        self._consecutive_errors = 0
        self._chip_ok = True  # False after a failed re-init: only re-inits until it answers
        self._last_failure: str | None = None
        self.counters: dict[str, int] = {
            "polls": 0,
            "reads": 0,
            "read_errors": 0,
            "poll_errors": 0,
            "timeouts": 0,
            "reinits": 0,
            "callback_errors": 0,
        }
        self.last_error: str | None = None
        self.last_poll_ms: float | None = None

    # -- lifecycle -------------------------------------------------------------------
    def self_test(self) -> dict[str, object]:
        """Open the SPI device, initialise the chip and check ``VersionReg``. Never raises.

        Returns ``{"ok": bool, "detail": str}``; on failure the reader state is ``failed``.
        """
        try:
            self._open()
            version = self._chip.Read_MFRC522(_VERSION)
        except Exception as exc:  # any bus or library failure is a failed self-test
            self._fail(f"open failed: {exc}")
            return {"ok": False, "detail": self.last_error or ""}
        self._version = version
        if version not in KNOWN_VERSIONS:
            self._fail(f"VersionReg {version:02X}h is not an MFRC522 (chip missing or unwired?)")
            return {"ok": False, "detail": self.last_error or ""}
        self._state = "ok"
        return {"ok": True, "detail": f"{KNOWN_VERSIONS[version]} (VersionReg {version:02X}h)"}

    def start(self, on_read: RfidCallback) -> None:
        """Start the poll thread (runs :meth:`self_test` first if it was not run)."""
        if self._thread is not None:
            raise RuntimeError("reader already started")
        if self._chip is None:
            self.self_test()
        self._on_read = on_read
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rfid:mfrc522", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the poll thread and release the SPI device and the reset pin."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=1.0)
            if thread.is_alive():
                logger.warning("rfid poll thread still stuck in a bus call at stop")
        self._close()
        self._state = "stopped"

    def status(self) -> dict[str, object]:
        """JSON-able health.

        Keys: ``state``, ``backend``, ``spi`` (``"bus.device"``), ``version`` (hex or
        None), ``present`` (UIDs in the field), ``stalled`` (True when a poll has been
        running for longer than its deadline, e.g. a bus call that never returned),
        ``last_poll_ms`` (duration of the last poll), ``last_error`` and the counters
        ``polls``, ``reads``, ``read_errors``, ``poll_errors``, ``timeouts``, ``reinits``,
        ``callback_errors``.
        """
        started = self._poll_started
        stalled = started is not None and self.clock() - started > self.poll_deadline_ms
        state = self._state
        if stalled and state == "ok":
            state = "degraded"
        with self._lock:
            counters = dict(self.counters)
            present = sorted(self.presence.present)
        return {
            "state": state,
            "backend": "mfrc522",
            "spi": f"{self.bus}.{self.device}",
            "version": None if self._version is None else f"{self._version:02X}",
            "present": present,
            "stalled": stalled,
            "last_poll_ms": self.last_poll_ms,
            "last_error": "poll stuck in a bus call" if stalled else self.last_error,
            **counters,
        }

    # -- polling ---------------------------------------------------------------------
    def poll_once(self) -> tuple[list[tuple[str, int]], list[UidError]]:
        """One poll: read every tag in the field (at most ``max_tags``).

        Returns ``([(uid, sak), ...], [UidError, ...])``: the canonical UIDs read whole,
        and the tags that answered but could not be read.

        Raises:
            PollTimeout: past ``poll_deadline_ms``.
            OSError: SPI failure.
        """
        if self._chip is None:
            self._open()
        self._deadline = self.clock() + self.poll_deadline_ms
        uids: list[tuple[str, int]] = []
        errors: list[UidError] = []
        request = _WUPA  # wakes halted tags too: a tag resting in the field is seen again
        for _ in range(self.max_tags):
            if not self._request(request):
                break
            request = _REQA  # next: only tags not yet read this poll (the read ones halt)
            try:
                uid, sak = self._select()
            except UidError as exc:
                errors.append(exc)
                break  # the failed tag is still READY and would answer again
            uids.append((canonical_uid(uid), sak))
            self._halt()
        return uids, errors

    def _run(self) -> None:
        next_at = self.clock()
        failed_reinits = 0
        while not self._stop.is_set():
            if not self._chip_ok:
                # The chip did not come back from a re-init (unplugged, unpowered): no busy
                # polling against a dead bus, only re-init attempts with capped backoff.
                failed_reinits += 1
                if self._stop.wait(min(_REINIT_BACKOFF_CAP_S, 0.1 * 2**failed_reinits)):
                    break
                self._reinit()
                next_at = self.clock()
                continue
            failed_reinits = 0
            self._poll_cycle()
            next_at += self.poll_interval_ms
            now = self.clock()
            if next_at < now:  # overran: skip, do not burst to catch up
                next_at = now
            self._stop.wait(max(0.0, (next_at - now) / 1000.0))

    def _poll_cycle(self) -> None:
        t_ms = self.clock()
        self._poll_started = t_ms
        try:
            uids, errors = self.poll_once()
        except PollTimeout as exc:
            self._poll_failed("timeout", str(exc), t_ms)
            return
        except Exception as exc:  # SPI errors, a dead chip, a library bug
            self._poll_failed("error", f"{type(exc).__name__}: {exc}", t_ms)
            return
        finally:
            self.last_poll_ms = round(self.clock() - t_ms, 3)
            self._poll_started = None
        self._consecutive_errors = 0
        if self._state in ("degraded", "failed"):
            self._state = "ok"  # the chip answers again (e.g. after a re-init)
        with self._lock:
            self.counters["polls"] += 1
            arrived, left = self.presence.feed(uid for uid, _ in uids)
        saks = dict(uids)
        for uid, episode in arrived:
            with self._lock:
                self.counters["reads"] += 1
            logger.info("rfid tag %s (episode %d)", uid, episode, extra={"uid": uid})
            self._deliver(TagRead(uid, t_ms, episode, saks[uid], self.last_poll_ms or 0.0))
        for uid in left:
            logger.debug("rfid tag %s left the field", uid, extra={"uid": uid})
        failure = "; ".join(str(e) for e in errors) or None
        for err in errors:
            with self._lock:
                self.counters["read_errors"] += 1
            if failure != self._last_failure:  # a bad tag resting in the field: report once
                logger.warning("rfid read failed: %s", err, extra={"reason": err.reason})
                self._deliver(TagReadFailed(err.reason, t_ms, str(err)))
        self._last_failure = failure

    def _poll_failed(self, kind: str, detail: str, t_ms: float) -> None:
        self._consecutive_errors += 1
        with self._lock:
            self.counters["polls"] += 1
            self.counters["timeouts" if kind == "timeout" else "poll_errors"] += 1
        self.last_error = detail
        self._state = "degraded"
        logger.warning("rfid poll failed (%s): %s", kind, detail)
        if kind == "timeout" and self._last_failure != "timeout":
            self._deliver(TagReadFailed("timeout", t_ms, detail))
        self._last_failure = "timeout" if kind == "timeout" else detail
        if self._consecutive_errors >= self.reinit_after_errors:
            self._reinit()

    def _reinit(self) -> None:
        """Hard-reset the chip through NRSTPD and run the library's init again."""
        with self._lock:
            self.counters["reinits"] += 1
            self.presence.reset()
        self._consecutive_errors = 0
        logger.warning("rfid: re-initialising the MFRC522 after repeated errors")
        try:
            if self._chip is None:
                self._open()
            else:
                GPIO.output(self.rst_pin, 0)
                time.sleep(0.001)  # datasheet 8.8.1: NRSTPD low for > 100 ns
                GPIO.output(self.rst_pin, 1)
                time.sleep(0.001)  # oscillator start-up
                self._chip.MFRC522_Init()
                self._tune_timer()
            version = self._chip.Read_MFRC522(_VERSION)
            if version not in KNOWN_VERSIONS:
                raise OSError(f"VersionReg {version:02X}h after reset")
            self._version = version
            self._chip_ok = True
        except Exception as exc:
            self._chip_ok = False
            self.last_error = f"re-init failed: {exc}"
            logger.warning("rfid re-init failed: %s", exc)

    def _deliver(self, event: TagRead | TagReadFailed) -> None:
        if self._on_read is None:
            return
        try:
            self._on_read(event)
        except Exception:
            with self._lock:
                self.counters["callback_errors"] += 1
            logger.exception("rfid callback raised")

    # -- device ----------------------------------------------------------------------
    def _open(self) -> None:
        chip = mfrc522.MFRC522(
            bus=self.bus,
            device=self.device,
            spd=self.spi_speed_hz,
            pin_mode=11,
            pin_rst=self.rst_pin,
        )
        # The library adds a stream handler to its logger per instance; ours logs instead.
        chip.logger.handlers.clear()
        self._chip = chip
        self._tune_timer()

    def _tune_timer(self) -> None:
        self._chip.Write_MFRC522(_T_RELOAD_H, 0)
        self._chip.Write_MFRC522(_T_RELOAD_L, _NO_ANSWER_TICKS)

    def _close(self) -> None:
        chip, self._chip = self._chip, None
        if chip is None:
            return
        with contextlib.suppress(Exception):
            chip.spi.close()
        # Not chip.Close_MFRC522(): its GPIO.cleanup() would release every RPi.GPIO pin of
        # the process, the gates' included. Only our reset pin is released.
        with contextlib.suppress(Exception):
            GPIO.cleanup(self.rst_pin)

    def _fail(self, detail: str) -> None:
        self._state = "failed"
        self.last_error = detail
        logger.error("rfid self-test failed: %s", detail)

    # -- ISO/IEC 14443-3 over the MFRC522 ------------------------------------------
    def _transceive(self, data: bytes, tx_last_bits: int = 0, rx_align: int = 0) -> _Rx | None:
        """Send ``data`` and receive the answer (datasheet 10.3.1.8 Transceive).

        Returns None when no tag answered (TimerIRq).

        Raises:
            PollTimeout: the poll's deadline passed before the chip finished.
            UidError: ``protocol`` on a parity, protocol or buffer error.
        """
        chip = self._chip
        chip.Write_MFRC522(_COMMAND, _CMD_IDLE)
        chip.Write_MFRC522(_COMM_IRQ, 0x7F)  # clear every interrupt request bit
        chip.Write_MFRC522(_FIFO_LEVEL, 0x80)  # FlushBuffer
        for byte in data:
            chip.Write_MFRC522(_FIFO_DATA, byte)
        chip.Write_MFRC522(_BIT_FRAMING, (rx_align << 4) | tx_last_bits)
        chip.Write_MFRC522(_COMMAND, _CMD_TRANSCEIVE)
        chip.SetBitMask(_BIT_FRAMING, 0x80)  # StartSend
        while True:
            irq = chip.Read_MFRC522(_COMM_IRQ)
            if irq & (_IRQ_RX | _IRQ_IDLE):
                break
            if irq & _IRQ_TIMER:
                chip.ClearBitMask(_BIT_FRAMING, 0x80)
                return None
            if self.clock() > self._deadline:
                chip.ClearBitMask(_BIT_FRAMING, 0x80)
                raise PollTimeout(f"no answer from the chip within {self.poll_deadline_ms} ms")
        chip.ClearBitMask(_BIT_FRAMING, 0x80)
        error = chip.Read_MFRC522(_ERROR)
        if error & _ERR_HARD:
            raise UidError("protocol", f"ErrorReg {error:02X}h")
        level = chip.Read_MFRC522(_FIFO_LEVEL) & 0x7F
        last_bits = chip.Read_MFRC522(_CONTROL) & 0x07
        received = bytes(chip.Read_MFRC522(_FIFO_DATA) for _ in range(level))
        collision = bool(error & _ERR_COLL)
        coll_reg = chip.Read_MFRC522(_COLL) if collision else 0
        return _Rx(received, last_bits, collision, coll_reg)

    def _request(self, command: int) -> bool:
        """REQA / WUPA (7-bit short frame): True when at least one tag answered ATQA."""
        rx = self._transceive(bytes([command]), tx_last_bits=7)
        if rx is None:
            return False
        # Tags of different UID sizes collide in their ATQA; they are still there.
        return rx.collision or (len(rx.data) == 2 and rx.last_bits == 0)

    def _halt(self) -> None:
        """HLTA: the selected tag stops answering REQA until the next WUPA."""
        frame = bytes([_HLTA, 0x00])
        self._transceive(frame + self._chip_crc(frame))

    def _chip_crc(self, data: bytes) -> bytes:
        """CRC_A by the chip's coprocessor (the library's ``CalulateCRC``)."""
        return bytes(self._chip.CalulateCRC(list(data)))

    def _select(self) -> tuple[bytes, int]:
        """Anticollision and SELECT through the cascade levels; returns (UID, final SAK).

        Raises:
            UidError: see :data:`~edge.drivers.rfid.FailReason`.
        """
        uid = b""
        for level, sel in enumerate(_SEL, start=1):
            try:
                frame = self._anticollision(sel)
                part, more = decode_cl_frame(frame)
                select = bytes([sel, 0x70]) + frame
                rx = self._transceive(select + self._chip_crc(select))
            except UidError as exc:
                if level > 1 and exc.reason in ("protocol", "collision", "cascade_failed"):
                    raise UidError("cascade_required", str(exc), uid) from exc
                exc.partial = uid
                raise
            if rx is None:
                reason: FailReason = "cascade_required" if level > 1 else "cascade_failed"
                raise UidError(reason, f"no SAK at cascade level {level}", uid)
            if len(rx.data) != 3 or crc_a(rx.data[:1]) != rx.data[1:3]:
                raise UidError("protocol", f"bad SAK frame {rx.data.hex()}", uid)
            sak = rx.data[0]
            uid += part
            if more != bool(sak & _SAK_CASCADE):
                raise UidError("protocol", f"CT and SAK {sak:02X}h disagree at level {level}", uid)
            if not more:
                return uid, sak
        raise UidError("cascade_failed", "UID longer than three cascade levels", uid)

    def _anticollision(self, sel: int) -> bytes:
        """Bit-oriented anticollision loop of one cascade level; returns UID CLn (5 bytes).

        Raises:
            UidError: ``cascade_required`` when the tag stops answering at a level > 1
                (raised by the caller), ``collision`` when unresolvable, ``protocol``.
        """
        known = bytearray(5)
        known_bits = 0
        for _ in range(33):  # at most one round per UID bit
            nbytes, nbits = divmod(known_bits, 8)
            nvb = ((2 + nbytes) << 4) | nbits
            frame = bytes([sel, nvb]) + bytes(known[: nbytes + (1 if nbits else 0)])
            rx = self._transceive(frame, tx_last_bits=nbits, rx_align=nbits)
            if rx is None:
                level = _SEL.index(sel) + 1
                if level > 1:
                    raise UidError("cascade_required", f"no answer at cascade level {level}")
                raise UidError("cascade_failed", "tag went silent in anticollision")
            # The first received bit lands at bit ``nbits`` of byte ``nbytes`` (RxAlign).
            for i, byte in enumerate(rx.data):
                idx = nbytes + i
                if idx >= 5:
                    break
                if i == 0 and nbits:
                    low = (1 << nbits) - 1
                    known[idx] = (known[idx] & low) | (byte & ~low & 0xFF)
                else:
                    known[idx] = byte
            if not rx.collision:
                got = (len(rx.data) - 1) * 8 + (rx.last_bits or 8) - nbits if rx.data else 0
                if known_bits + got != 40:
                    raise UidError("protocol", f"anticollision answer of {got} bits")
                return bytes(known)
            if rx.coll_reg & 0x20:
                raise UidError("collision", "collision in the BCC (CollPosNotValid)")
            pos = rx.coll_reg & 0x1F or 32
            if pos <= known_bits:
                raise UidError("collision", f"collision at bit {pos} already known")
            # Keep the bits before the collision, choose 1 for the colliding bit (ISO 6.5.3.3).
            known_bits = pos
            byte_i, bit_i = divmod(pos - 1, 8)
            known[byte_i] |= 1 << bit_i
            known[byte_i] &= (1 << (bit_i + 1)) - 1
            for j in range(byte_i + 1, 5):
                known[j] = 0
        raise UidError("collision", "anticollision did not converge")
