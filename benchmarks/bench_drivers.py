"""Driver figures: RFID poll cycle against the MFRC522 emulator, scanner-to-event latency.

* RFID: one poll of :class:`~edge.drivers.mfrc522_reader.Mfrc522Reader` (WUPA, cascade
  anticollision and SELECT of a 7-byte UID, HLTA, REQA) through the real ``mfrc522``
  library's register access on the register-level emulator, beside the library's own
  ``MFRC522_Request`` + ``MFRC522_Anticoll`` (level 1 only: an incomplete UID) on the same
  emulator. Also an empty-field poll, against the library's request, which spins 2000
  register reads when no tag answers.
* Scanner: bytes written to a pty master until :class:`PySerialScanner` delivers the
  framed code to its callback, beside a raw pyserial ``read_until`` of the same bytes.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import tty
from collections.abc import Callable

import serial

from benchmarks import Figure
from simulator.hw import fake_modules

fake_modules.install()  # before the mfrc522 library is imported

import mfrc522  # noqa: E402

from edge.drivers.mfrc522_reader import Mfrc522Reader  # noqa: E402
from edge.drivers.pyserial_scanner import PySerialScanner  # noqa: E402
from simulator.hw.mfrc522_emu import MFRC522Emulator, VirtualTag  # noqa: E402

N_RFID = 300
N_SCAN = 200
CODE = b"RMA-000123\r"


def _ms(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _rfid() -> list[Figure]:
    chip = MFRC522Emulator()
    fake_modules.attach_spi(0, 0, chip, rst_pin=25)
    try:
        reader = Mfrc522Reader(bus=0, device=0, rst_pin=25, poll_deadline_ms=1000)
        assert reader.self_test()["ok"]
        lib = mfrc522.MFRC522(bus=0, device=0, pin_mode=11, pin_rst=25)
        lib.logger.handlers.clear()

        def lib_cycle() -> None:
            lib.MFRC522_Request(lib.PICC_REQIDL)
            lib.MFRC522_Anticoll()
            lib.Write_MFRC522(0x14, 0x80)  # field off/on: tags back to IDLE for the next REQA
            lib.AntennaOn()

        empty_ours = statistics.median(_ms(reader.poll_once, N_RFID))
        empty_lib = statistics.median(_ms(lambda: lib.MFRC522_Request(lib.PICC_REQIDL), 30))
        chip.place(VirtualTag(bytes.fromhex("047DB1A2B3C4D5"), sak=0x00))
        assert reader.poll_once()[0] == [("047DB1A2B3C4D5", 0)]
        ours = statistics.median(_ms(reader.poll_once, N_RFID))
        base = statistics.median(_ms(lib_cycle, N_RFID))
    finally:
        fake_modules.detach_spi(0, 0)
    return [
        Figure(
            "rfid poll, 7-byte UID whole (emulator) p50",
            ours,
            "ms",
            "mfrc522 lib request+anticoll CL1 only",
            base,
            higher_is_better=False,
        ),
        Figure(
            "rfid poll, empty field (emulator) p50",
            empty_ours,
            "ms",
            "mfrc522 lib request, empty field",
            empty_lib,
            higher_is_better=False,
        ),
    ]


def _pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


def _scanner() -> list[Figure]:
    master, slave, path = _pty()
    got = threading.Event()
    stamp: list[float] = []

    def on_scan(frame: object) -> None:
        stamp.append(time.perf_counter())
        got.set()

    scanner = PySerialScanner(path, suffix="CR")
    scanner.start(on_scan)
    try:
        deadline = time.monotonic() + 5
        while scanner.status()["state"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.01)
        ours = []
        for _ in range(N_SCAN):
            got.clear()
            t0 = time.perf_counter()
            os.write(master, CODE)
            if not got.wait(2):
                raise RuntimeError("scanner delivered no code")
            ours.append((stamp[-1] - t0) * 1000)
    finally:
        scanner.stop()
    port = serial.serial_for_url(path, timeout=2)
    try:
        raw = []
        for _ in range(N_SCAN):
            t0 = time.perf_counter()
            os.write(master, CODE)
            if port.read_until(b"\r") != CODE:
                raise RuntimeError("raw read lost bytes")
            raw.append((time.perf_counter() - t0) * 1000)
    finally:
        port.close()
        os.close(master)
        os.close(slave)
    return [
        Figure(
            "scanner pty-to-event latency p50",
            statistics.median(ours),
            "ms",
            "raw pyserial read_until p50",
            statistics.median(raw),
            higher_is_better=False,
        ),
        Figure(
            "scanner pty-to-event latency p99",
            sorted(ours)[int(0.99 * len(ours))],
            "ms",
            "raw pyserial read_until p99",
            sorted(raw)[int(0.99 * len(raw))],
            higher_is_better=False,
        ),
    ]


def run() -> list[Figure]:
    """RFID poll cycle and scanner latency, each beside its same-run baseline."""
    return _rfid() + _scanner()
