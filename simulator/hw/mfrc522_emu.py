"""MFRC522 register-level emulator with ISO/IEC 14443-3 type A virtual tags.

The emulator speaks the chip's SPI protocol (NXP MFRC522 datasheet rev. 3.9, section 8.1.2):
the first byte of a transfer is the address byte ``(addr << 1) & 0x7E`` with bit 7 set for a
read; a read transfer returns, for each address byte sent, the register value in the next
byte; a write transfer writes every following byte to the same register.

Emulated (datasheet section 9 register map, section 10 commands): the 64-byte FIFO with
FlushBuffer, the interrupt request registers with Set1/Set2 semantics, ``BitFramingReg``
(StartSend, RxAlign, TxLastBits), ``ControlReg`` RxLastBits, ``ErrorReg`` (CollErr,
ProtocolErr), ``CollReg`` (CollPos, CollPosNotValid), the antenna driver bits of
``TxControlReg``, the commands Idle, CalcCRC (CRC_A, preset 6363h), Transceive and
SoftReset, ``VersionReg`` and the hard power-down of the NRSTPD pin. Timing is not modelled:
a transceive completes when StartSend is written; a frame no tag answers raises TimerIRq
(as the timer started by TAuto would), so a driver's polling loop sees the same register
sequence it sees on the real chip.

Tags (ISO/IEC 14443-3 sections 6.3 to 6.4): IDLE / READY / ACTIVE / HALT states, REQA
(26h, 7 bits) and WUPA (52h, 7 bits) answered with ATQA, bit-oriented anticollision and
SELECT for cascade levels 1 to 3 (SEL 93h / 95h / 97h, NVB), SAK with the cascade bit
(04h) while the UID is incomplete, HLTA (50h 00h + CRC_A). Several tags answering at once
collide bit by bit; ``CollReg`` then holds the first colliding bit's position counted from
bit 1 of the cascade level's UID CLn frame (the convention of the widely used Arduino MFRC522
library; a collision in the BCC byte sets CollPosNotValid).

Faults for tests: a tag with a wrong BCC, a tag that stops answering from a cascade level
on, a chip that reads back ``00h`` (unplugged), an SPI error, a transfer that never returns.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["MFRC522Emulator", "VirtualTag", "crc_a"]

# Registers (datasheet table 20)
COMMAND, COMM_IEN, DIV_IEN, COMM_IRQ, DIV_IRQ, ERROR = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
STATUS1, STATUS2, FIFO_DATA, FIFO_LEVEL, CONTROL, BIT_FRAMING, COLL = (
    0x07,
    0x08,
    0x09,
    0x0A,
    0x0C,
    0x0D,
    0x0E,
)
MODE, TX_CONTROL, T_MODE, CRC_RESULT_M, CRC_RESULT_L, VERSION = 0x11, 0x14, 0x2A, 0x21, 0x22, 0x37

CMD_IDLE, CMD_CALC_CRC, CMD_TRANSCEIVE, CMD_SOFT_RESET = 0x00, 0x03, 0x0C, 0x0F

IRQ_TX, IRQ_RX, IRQ_IDLE, IRQ_ERR, IRQ_TIMER = 0x40, 0x20, 0x10, 0x02, 0x01
ERR_COLL, ERR_PROTOCOL = 0x08, 0x01

_RESET_VALUES = {
    COMMAND: 0x20,
    COMM_IEN: 0x80,
    COMM_IRQ: 0x14,
    STATUS1: 0x21,
    0x0B: 0x08,
    CONTROL: 0x10,
    COLL: 0xA0,
    MODE: 0x3F,
    TX_CONTROL: 0x80,
    0x16: 0x10,
    0x17: 0x84,
    0x18: 0x84,
    0x19: 0x4D,
    0x1C: 0x62,
    0x1F: 0xEB,
    CRC_RESULT_M: 0xFF,
    CRC_RESULT_L: 0xFF,
    0x24: 0x26,
    0x26: 0x48,
    0x27: 0x88,
    0x28: 0x20,
    0x29: 0x20,
}

REQA, WUPA, HLTA = 0x26, 0x52, 0x50
SEL_CODES = (0x93, 0x95, 0x97)
CASCADE_TAG = 0x88


def crc_a(data: Iterable[int]) -> bytes:
    """CRC_A of ISO/IEC 14443-3 Annex B (preset 6363h), returned LSB first (2 bytes)."""
    crc = 0x6363
    for byte in data:
        ch = (byte ^ crc) & 0xFF
        ch = (ch ^ (ch << 4)) & 0xFF
        crc = ((crc >> 8) ^ (ch << 8) ^ (ch << 3) ^ (ch >> 4)) & 0xFFFF
    return bytes((crc & 0xFF, crc >> 8))


def _bits(data: bytes, nbits: int | None = None) -> list[int]:
    """Bits of ``data`` LSB first per byte, as sent on the air; first ``nbits`` only."""
    out = [(b >> i) & 1 for b in data for i in range(8)]
    return out if nbits is None else out[:nbits]


def _bytes(bits: Sequence[int]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        out[i // 8] |= bit << (i % 8)
    return bytes(out)


@dataclass
class VirtualTag:
    """An ISO/IEC 14443-3 type A tag (PICC) in the emulator's field.

    Attributes:
        uid: 4, 7 or 10 bytes (single, double, triple size).
        sak: final SAK (08h MIFARE Classic 1K, 00h Ultralight / NTAG, 20h DESFire).
        bad_bcc_level: cascade level (1-3) whose BCC the tag sends wrong (fault), or 0.
        mute_from_level: cascade level from which the tag stops answering (fault: weak
            coupling, tag leaving the field mid-read), or 0.
        cl_override: exact CLn frames (5 bytes) to send at given levels (fault inputs).
    """

    uid: bytes
    sak: int = 0x08
    bad_bcc_level: int = 0
    mute_from_level: int = 0
    cl_override: dict[int, bytes] = field(default_factory=dict)
    state: str = "IDLE"
    level: int = 1

    def __post_init__(self) -> None:
        if len(self.uid) not in (4, 7, 10):
            raise ValueError("a UID has 4, 7 or 10 bytes")

    @property
    def levels(self) -> int:
        """Number of cascade levels (1, 2 or 3)."""
        return {4: 1, 7: 2, 10: 3}[len(self.uid)]

    @property
    def atqa(self) -> bytes:
        """ATQA, LSB first: UID size in bits 7-6 of the first byte, bit frame anticollision."""
        return bytes(((self.levels - 1) << 6 | 0x04, 0x00))

    def cl_frame(self, level: int) -> bytes:
        """The 5-byte UID CLn of ``level``: 4 UID bytes (or CT + 3) and BCC."""
        if level in self.cl_override:
            return self.cl_override[level]
        u = self.uid
        if self.levels == 1:
            part = u[0:4]
        elif self.levels == 2:
            part = bytes([CASCADE_TAG]) + u[0:3] if level == 1 else u[3:7]
        else:
            part = (
                bytes([CASCADE_TAG]) + u[0:3]
                if level == 1
                else (bytes([CASCADE_TAG]) + u[3:6] if level == 2 else u[6:10])
            )
        check = part[0] ^ part[1] ^ part[2] ^ part[3]
        if level == self.bad_bcc_level:
            check ^= 0x01
        return part + bytes([check])

    def power_off(self) -> None:
        """The tag left the field (or the field went off): back to IDLE."""
        self.state, self.level = "IDLE", 1

    def receive(self, data: bytes, nbits: int) -> list[int] | None:
        """Process one reader frame; return the answer's bits, or None for silence."""
        if nbits == 7:
            cmd = data[0] & 0x7F
            if (cmd == REQA and self.state == "IDLE") or (
                cmd == WUPA and self.state in ("IDLE", "HALT")
            ):
                self.state, self.level = "READY", 1
                return _bits(self.atqa)
            if cmd in (REQA, WUPA) and self.state in ("READY", "ACTIVE"):
                self.state, self.level = "IDLE", 1  # ISO 14443-3 6.3: unexpected frame
            return None
        if self.state == "ACTIVE":
            if nbits == 32 and data[0] == HLTA and data[1] == 0 and crc_a(data[:2]) == data[2:4]:
                self.state = "HALT"
                return None
            return None
        if self.state != "READY" or nbits < 16 or data[0] not in SEL_CODES:
            if self.state == "READY":
                self.state, self.level = "IDLE", 1
            return None
        level = SEL_CODES.index(data[0]) + 1
        if level != self.level:
            self.state, self.level = "IDLE", 1
            return None
        if self.mute_from_level and level >= self.mute_from_level:
            return None
        frame = self.cl_frame(level)
        nvb = data[1]
        if nvb == 0x70:  # SELECT: all 40 bits and CRC_A
            if nbits != 72 or crc_a(data[:7]) != data[7:9] or data[2:7] != frame:
                return None
            if level < self.levels:
                self.level = level + 1
                sak = 0x04
            else:
                self.state = "ACTIVE"
                sak = self.sak & ~0x04
            return _bits(bytes([sak]) + crc_a([sak]))
        known = nbits - 16
        if known != (nvb >> 4) * 8 + (nvb & 0x0F) - 16 or not 0 <= known < 40:
            return None
        mine = _bits(frame)
        if _bits(data[2:], known) != mine[:known]:
            return None  # not this tag's prefix: it stays silent
        return mine[known:]


class MFRC522Emulator:
    """The chip: registers, FIFO, CRC coprocessor, transceiver and the tags in its field.

    Thread-safe: the test (or the belt) moves tags while the driver's thread polls.
    """

    def __init__(self, version: int = 0x92) -> None:
        self.version = version
        self.tags: list[VirtualTag] = []
        self.transfers = 0
        self.frames_sent = 0
        self.resets = 0
        self.unplugged = False
        self.spi_errors = 0  # the next N transfers raise OSError
        self.hang = threading.Event()  # set: transfers block until ``release`` is set
        self.release = threading.Event()
        self._lock = threading.RLock()
        self._powered = True
        self._reset_registers()

    # -- the field (test controls) ---------------------------------------------------
    def place(self, tag: VirtualTag) -> VirtualTag:
        """Put ``tag`` into the field (it powers up in IDLE)."""
        with self._lock:
            tag.power_off()
            self.tags.append(tag)
        return tag

    def remove(self, tag: VirtualTag) -> None:
        """Take ``tag`` out of the field."""
        with self._lock:
            if tag in self.tags:
                self.tags.remove(tag)
            tag.power_off()

    def clear(self) -> None:
        """Take every tag out of the field."""
        with self._lock:
            for tag in list(self.tags):
                self.remove(tag)

    # -- pins and bus ----------------------------------------------------------------
    def set_nrstpd(self, level: int) -> None:
        """Drive the NRSTPD pin: low is hard power-down, a rising edge a hard reset."""
        with self._lock:
            if level and not self._powered:
                self._reset_registers()
                self.resets += 1
            self._powered = bool(level)

    def xfer(self, data: Sequence[int]) -> list[int]:
        """One SPI transfer with chip select held low (datasheet 8.1.2); returns MISO bytes."""
        if self.hang.is_set():
            self.release.wait()
        with self._lock:
            self.transfers += 1
            if self.spi_errors > 0:
                self.spi_errors -= 1
                raise OSError(121, "Remote I/O error (emulated SPI fault)")
            if self.unplugged or not self._powered or not data:
                return [0] * len(data)
            first = data[0]
            addr = (first >> 1) & 0x3F
            if first & 0x80:  # read: each byte sent is the next address
                out = [0]
                for i in range(1, len(data)):
                    out.append(self._read(addr))
                    addr = (data[i] >> 1) & 0x3F
                return out
            for value in data[1:]:
                self._write(addr, value & 0xFF)
            return [0] * len(data)

    # -- registers -------------------------------------------------------------------
    def _reset_registers(self) -> None:
        self.regs = [0] * 64
        for reg, value in _RESET_VALUES.items():
            self.regs[reg] = value
        self.regs[VERSION] = self.version
        self.fifo: list[int] = []
        self._crc_stream: list[int] = []
        for tag in self.tags:
            tag.power_off()

    def _read(self, addr: int) -> int:
        if addr == FIFO_DATA:
            return self.fifo.pop(0) if self.fifo else 0
        if addr == FIFO_LEVEL:
            return len(self.fifo)
        if addr == VERSION:
            return self.version
        return self.regs[addr]

    def _write(self, addr: int, value: int) -> None:
        if addr == FIFO_DATA:
            if self.regs[COMMAND] & 0x0F == CMD_CALC_CRC:
                self._crc_stream.append(value)  # the coprocessor takes it straight away
                self._crc_done()
            elif len(self.fifo) < 64:
                self.fifo.append(value)
            else:
                self.regs[ERROR] |= 0x10  # BufferOvfl
            return
        if addr == FIFO_LEVEL:
            if value & 0x80:
                self.fifo.clear()
            return
        if addr in (COMM_IRQ, DIV_IRQ):
            mask = value & 0x7F
            self.regs[addr] = self.regs[addr] | mask if value & 0x80 else self.regs[addr] & ~mask
            return
        if addr in (ERROR, VERSION, STATUS1):
            return  # read-only
        if addr == COMMAND:
            self._command(value)
            return
        if addr == TX_CONTROL and not value & 0x03:
            for tag in self.tags:
                tag.power_off()  # field off: every tag loses power
        old = self.regs[addr]
        self.regs[addr] = value
        start_send = addr == BIT_FRAMING and value & 0x80 and not old & 0x80
        if start_send and self.regs[COMMAND] & 0x0F == CMD_TRANSCEIVE:
            self._transceive()

    def _command(self, value: int) -> None:
        cmd = value & 0x0F
        if cmd == CMD_SOFT_RESET:
            self._reset_registers()
            self.resets += 1
            return
        self.regs[COMMAND] = value & 0x3F
        if cmd == CMD_IDLE:
            return
        if cmd == CMD_CALC_CRC:
            self._calc_crc()

    def _calc_crc(self) -> None:
        """CalcCRC (datasheet 10.3.1.4): FIFO bytes into the coprocessor, result, CRCIRq."""
        self._crc_stream = list(self.fifo)
        self.fifo.clear()
        self._crc_done()

    def _crc_done(self) -> None:
        crc = crc_a(self._crc_stream)
        self.regs[CRC_RESULT_L], self.regs[CRC_RESULT_M] = crc[0], crc[1]
        self.regs[DIV_IRQ] |= 0x04

    def _transceive(self) -> None:
        """Send the FIFO (TxLastBits), collect the tags' answers into the FIFO (RxAlign)."""
        self.frames_sent += 1
        framing = self.regs[BIT_FRAMING]
        tx_last, rx_align = framing & 0x07, (framing >> 4) & 0x07
        data = bytes(self.fifo)
        self.fifo.clear()
        nbits = len(data) * 8 if tx_last == 0 else (len(data) - 1) * 8 + tx_last
        self.regs[COMM_IRQ] |= IRQ_TX
        self.regs[ERROR] = 0
        self.regs[COLL] = (self.regs[COLL] & 0x80) | 0x20
        answers: list[list[int]] = []
        if self.regs[TX_CONTROL] & 0x03 and nbits > 0:
            for tag in list(self.tags):
                ans = tag.receive(data, nbits)
                if ans is not None:
                    answers.append(ans)
        if not answers:
            if self.regs[T_MODE] & 0x80:  # TAuto: the timer runs out
                self.regs[COMM_IRQ] |= IRQ_TIMER
            return
        length = max(len(a) for a in answers)
        bits: list[int] = []
        coll_at: int | None = None
        for i in range(length):
            values = {a[i] for a in answers if i < len(a)}
            if len(values) > 1 and coll_at is None:
                coll_at = i
            bits.append(1 if 1 in values else 0)
        stored = [0] * rx_align + bits
        self.fifo = list(_bytes(stored))
        self.regs[CONTROL] = (self.regs[CONTROL] & 0xF8) | (len(stored) % 8)
        self.regs[COMM_IRQ] |= IRQ_RX
        if coll_at is not None:
            self.regs[ERROR] |= ERR_COLL
            self.regs[COMM_IRQ] |= IRQ_ERR
            known = nbits - 16 if data and data[0] in SEL_CODES else 0
            pos = known + coll_at + 1
            if pos <= 32:
                self.regs[COLL] = (self.regs[COLL] & 0x80) | (pos % 32)
            else:
                self.regs[COLL] = (self.regs[COLL] & 0x80) | 0x20
