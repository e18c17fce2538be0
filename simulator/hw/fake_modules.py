"""Stand-ins for the ``spidev`` and ``RPi.GPIO`` extension modules (the lowest layer).

The ``mfrc522`` PyPI package imports ``RPi.GPIO`` and ``spidev`` at the top of its module
and talks to the chip only through ``SpiDev.xfer2`` and ``GPIO.setup/output``. Installing
these two fakes in ``sys.modules`` before that import makes the library's own register
read/write code drive an :class:`~simulator.hw.mfrc522_emu.MFRC522Emulator`: SPI bus and
device numbers select the emulator attached with :func:`attach_spi`, and the reset pin
given to the library drives the emulator's NRSTPD pin.

Only for simulation and tests: never installed by the station daemon itself.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Sequence
from typing import Any

from simulator.hw.mfrc522_emu import MFRC522Emulator

__all__ = ["attach_spi", "detach_spi", "install", "installed"]

_LOCK = threading.Lock()
_DEVICES: dict[tuple[int, int], MFRC522Emulator] = {}
_RST_PINS: dict[int, MFRC522Emulator] = {}


def attach_spi(bus: int, device: int, chip: MFRC522Emulator, rst_pin: int | None = None) -> None:
    """Put ``chip`` on ``/dev/spidev{bus}.{device}``; ``rst_pin`` (BCM) drives its NRSTPD."""
    with _LOCK:
        _DEVICES[(bus, device)] = chip
        if rst_pin is not None:
            _RST_PINS[rst_pin] = chip


def detach_spi(bus: int, device: int) -> None:
    """Remove whatever chip is on that bus / chip select (opening it then fails)."""
    with _LOCK:
        chip = _DEVICES.pop((bus, device), None)
        for pin in [p for p, c in _RST_PINS.items() if c is chip]:
            del _RST_PINS[pin]


class SpiDev:
    """``spidev.SpiDev`` on the emulated bus (same method names and attributes)."""

    def __init__(self, bus: int | None = None, device: int | None = None) -> None:
        self.max_speed_hz = 500_000
        self.mode = 0
        self._chip: MFRC522Emulator | None = None
        if bus is not None and device is not None:
            self.open(bus, device)

    def open(self, bus: int, device: int) -> None:
        """Open ``/dev/spidev{bus}.{device}``; FileNotFoundError when nothing is attached."""
        with _LOCK:
            chip = _DEVICES.get((bus, device))
        if chip is None:
            raise FileNotFoundError(2, "No such file or directory", f"/dev/spidev{bus}.{device}")
        self._chip = chip

    def xfer2(self, data: Sequence[int], *args: Any) -> list[int]:
        """Full-duplex transfer with chip select held between bytes."""
        if self._chip is None:
            raise OSError(9, "Bad file descriptor")
        return self._chip.xfer(list(data))

    xfer = xfer2

    def close(self) -> None:
        """Close the device."""
        self._chip = None


class _GPIO(types.ModuleType):
    """``RPi.GPIO``: only what the ``mfrc522`` library uses, pins wired to emulators."""

    BOARD, BCM, OUT, IN, HIGH, LOW = 10, 11, 0, 1, 1, 0
    PUD_OFF, PUD_DOWN, PUD_UP = 20, 21, 22

    def __init__(self) -> None:
        super().__init__("RPi.GPIO")
        self._mode: int | None = None
        self.levels: dict[int, int] = {}

    def getmode(self) -> int | None:
        return self._mode

    def setmode(self, mode: int) -> None:
        self._mode = mode

    def setwarnings(self, flag: bool) -> None:
        pass

    def setup(self, channel: int, direction: int, *args: Any, **kwargs: Any) -> None:
        self.levels.setdefault(channel, 0)

    def output(self, channel: int, value: int) -> None:
        self.levels[channel] = int(bool(value))
        with _LOCK:
            chip = _RST_PINS.get(channel)
        if chip is not None:
            chip.set_nrstpd(int(bool(value)))

    def input(self, channel: int) -> int:
        return self.levels.get(channel, 0)

    def cleanup(self, channel: int | Sequence[int] | None = None) -> None:
        channels = (
            list(self.levels)
            if channel is None
            else ([channel] if isinstance(channel, int) else list(channel))
        )
        for ch in channels:
            self.levels.pop(ch, None)


def installed() -> bool:
    """True when the fakes are the ``spidev`` and ``RPi.GPIO`` modules of this process."""
    return getattr(sys.modules.get("spidev"), "__fake__", False) is True


def install() -> None:
    """Make ``import spidev`` and ``import RPi.GPIO`` load these fakes (idempotent).

    Must run before the ``mfrc522`` library is first imported in the process.
    """
    if installed():
        return
    spidev = types.ModuleType("spidev")
    spidev.SpiDev = SpiDev  # type: ignore[attr-defined]
    spidev.__fake__ = True  # type: ignore[attr-defined]
    gpio = _GPIO()
    rpi = types.ModuleType("RPi")
    rpi.GPIO = gpio  # type: ignore[attr-defined]
    rpi.__path__ = []  # a package, so ``import RPi.GPIO`` resolves
    sys.modules["spidev"] = spidev
    sys.modules["RPi"] = rpi
    sys.modules["RPi.GPIO"] = gpio
