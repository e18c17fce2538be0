"""Driver test fixtures: the emulated MFRC522 on a fake SPI bus under the real library."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulator.hw import fake_modules
from simulator.hw.mfrc522_emu import MFRC522Emulator

fake_modules.install()  # before anything imports the mfrc522 library


@pytest.fixture
def chip() -> Iterator[MFRC522Emulator]:
    """An MFRC522 emulator on SPI bus 0, chip select 0, NRSTPD on BCM 25."""
    emu = MFRC522Emulator()
    fake_modules.attach_spi(0, 0, emu, rst_pin=25)
    try:
        yield emu
    finally:
        emu.release.set()
        fake_modules.detach_spi(0, 0)
