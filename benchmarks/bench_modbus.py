"""Modbus TCP round trip (coil write, then read back): the station's link vs raw pymodbus.

Both run against the same PLC (pymodbus's own server), in the same run.

Ours goes through :class:`edge.drivers.pymodbus_io.ModbusLink` (its lock, checks and
fault handling) while its poll thread reads 16 discrete inputs every 5 ms, as on a station;
the baseline is a bare ``ModbusTcpClient`` on its own connection, nothing else running.
"""

from __future__ import annotations

import time

from pymodbus.client import ModbusTcpClient

from benchmarks import Figure
from edge.config import ModbusSection
from edge.drivers.pymodbus_io import ModbusLink
from simulator.hw.modbus_plc import ModbusPlc

N = 500
COIL = 3


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def _raw(port: int) -> list[float]:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=1.0, retries=0)
    client.connect()  # type: ignore[no-untyped-call]
    times = []
    try:
        for i in range(N):
            t0 = time.perf_counter()
            client.write_coil(COIL, i % 2 == 0, device_id=1)
            client.read_coils(COIL, count=1, device_id=1)
            times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        client.close()  # type: ignore[no-untyped-call]
    return times


def _link(port: int) -> list[float]:
    link = ModbusLink(ModbusSection(host="127.0.0.1", port=port, poll_ms=5))
    link.add_coil(COIL)
    for address in range(16):
        link.subscribe(address, lambda t_ms, level: None)
    times = []
    try:
        if not link.connect():
            raise RuntimeError(f"no PLC: {link.last_error}")
        for i in range(N):
            t0 = time.perf_counter()
            link.write_coil(COIL, i % 2 == 0)
            link.read_coil(COIL)
            times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        link.close()
    return times


def run() -> list[Figure]:
    """Round trip p50 / p99 (ms) of N coil writes read back: our link vs raw pymodbus."""
    with ModbusPlc() as plc:
        base = _raw(plc.port)
        ours = _link(plc.port)
    return [
        Figure(
            f"modbus coil write+read back p{int(p * 100)} (link, polling)",
            _pct(ours, p),
            "ms",
            f"raw pymodbus client p{int(p * 100)}",
            _pct(base, p),
            higher_is_better=False,
        )
        for p in (0.5, 0.99)
    ]
