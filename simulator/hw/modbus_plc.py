"""A PLC / remote I/O coupler on the plant network: pymodbus's own Modbus TCP server.

The station's Modbus backend (:mod:`edge.drivers.pymodbus_io`) talks to it over a real
socket; the belt model reads the diverter coils the station writes and drives the discrete
inputs (photo-eye, divert-confirm, lane-full) as a PLC's terminals would see them.

Like a real coupler it has a fieldbus watchdog: :meth:`ModbusPlc.outage` drops the
network (the server stops, every connection is cut) and the coupler sets its outputs to
their safe state (every coil off) until :meth:`ModbusPlc.restore`.

Addresses are zero-based protocol addresses (coil 0 is the first coil, Modbus data model
"00001"); the data model is the Modbus Application Protocol Specification V1.1b3, §4.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import DataType, SimUtils

if TYPE_CHECKING:
    from simulator.belt import StationIO

__all__ = ["ModbusPlc", "free_port"]

READ_COILS, READ_DISCRETE_INPUTS, WRITE_COIL, WRITE_COILS = 1, 2, 5, 15
"""Modbus function codes the PLC's I/O image takes part in (the spec's §6)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ModbusPlc:
    """A Modbus TCP server with ``size`` coils and discrete inputs for unit ``unit_id``.

    Args:
        port: TCP port on 127.0.0.1 (0: a free one, see :attr:`port`).
        unit_id: the device id (Modbus "unit identifier") it answers.
        size: coils and discrete inputs, addresses 0 .. size - 1.

    Use as a context manager, or :meth:`start` / :meth:`stop`.
    """

    def __init__(self, port: int = 0, unit_id: int = 1, size: int = 64) -> None:
        self.port = port or free_port()
        self.unit_id = unit_id
        self.size = (size + 15) // 16 * 16
        # The PLC's I/O image: what its output terminals drive and its inputs read.
        self.coils = [False] * self.size
        self.inputs = [False] * self.size
        self._image_lock = threading.Lock()

        def bits() -> list[SimData]:
            return [SimData(0, count=self.size, values=False, datatype=DataType.BITS)]

        def registers() -> list[SimData]:
            return [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)]

        self._device = SimDevice(
            unit_id, simdata=(bits(), bits(), registers(), registers()), action=self._io
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None  # a ModbusTcpServer while serving
        self.online = False

    async def _io(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        """Pymodbus's device action: keep the server's registers and the I/O image equal."""
        with self._image_lock:
            if function_code in (WRITE_COIL, WRITE_COILS) and set_values is not None:
                for i, value in enumerate(set_values):
                    if 0 <= address + i < self.size:
                        self.coils[address + i] = bool(value)
                image = self.coils
            elif function_code == READ_DISCRETE_INPUTS:
                image = self.inputs
            else:
                image = self.coils
            packed = SimUtils.bitsToRegisters(list(image))
            registers[: len(packed)] = packed

    def __enter__(self) -> ModbusPlc:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- network ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start serving (blocks until the port listens)."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            self._server = ModbusTcpServer(self._device, address=("127.0.0.1", self.port))
            ready.set()
            await self._server.serve_forever()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())

        self._thread = threading.Thread(target=run, name="modbus-plc", daemon=True)
        self._thread.start()
        ready.wait(10)
        self._wait_listening()
        self.online = True

    def _wait_listening(self) -> None:
        for _ in range(500):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            threading.Event().wait(0.01)
        raise RuntimeError(f"Modbus PLC did not listen on port {self.port}")

    def stop(self) -> None:
        """Stop serving and cut every connection (idempotent)."""
        loop, server, thread = self._loop, self._server, self._thread
        self.online = False
        if loop is None or server is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(10)
        thread.join(10)
        loop.close()
        self._loop = self._server = self._thread = None

    def outage(self) -> None:
        """The plant network drops: connections cut, the watchdog turns every coil off."""
        self.stop()
        with self._image_lock:
            self.coils[:] = [False] * self.size

    def restore(self) -> None:
        """The network is back: serve again on the same port."""
        self.start()

    @contextmanager
    def outage_for(self) -> Iterator[None]:
        """``with plc.outage_for(): ...``: an outage for the block's duration."""
        self.outage()
        try:
            yield
        finally:
            self.restore()

    # -- terminals ----------------------------------------------------------------------------
    def coil(self, address: int) -> bool:
        """The output (coil) at ``address`` as the station last wrote it."""
        with self._image_lock:
            return self.coils[address]

    def set_input(self, address: int, active: bool) -> None:
        """Drive the discrete input at ``address`` (a sensor wired to the PLC)."""
        with self._image_lock:
            self.inputs[address] = active

    def set_coil(self, address: int, on: bool) -> None:
        """Force a coil (a stuck or shorted output, for self-test tests)."""
        with self._image_lock:
            self.coils[address] = on


class PlcIO:
    """The belt's :class:`~simulator.belt.StationIO` with some gates on a PLC's coils.

    Args:
        pins: the station's other I/O (photo-eye, RFID, GPIO gates, belt motor): a
            :class:`~simulator.belt.PinIO` or the harness's station process.
        plc: the PLC the station's Modbus gates write.
        coils: ``{lane: (coil address, active_high)}`` of the lanes on the PLC.
    """

    def __init__(self, pins: StationIO, plc: ModbusPlc, coils: dict[str, tuple[int, bool]]) -> None:
        self.pins = pins
        self.plc = plc
        self.coils = coils

    def eye(self, blocked: bool, t_ms: float | None = None) -> None:
        """Drive the photo-eye (not on the PLC) as of ``t_ms`` (the edge's physical time)."""
        self.pins.eye(blocked, t_ms)

    def tag(self, uid: str, present: bool) -> None:
        """Place or remove a tag at the emulated reader."""
        self.pins.tag(uid, present)

    def gate_energised(self, lane: str, t_ms: float | None = None) -> bool:
        """The lane's coil against its polarity, as the PLC's output terminal drives it.

        A GPIO gate is read as it was at ``t_ms`` (the other I/O's history); the PLC keeps
        no history of its coils, so a coil is read now.
        """
        if lane not in self.coils:
            return bool(self.pins.gate_energised(lane, t_ms))
        coil, active_high = self.coils[lane]
        return self.plc.coil(coil) == active_high

    def belt_run(self) -> bool:
        """The belt motor output, as the other I/O has it."""
        return bool(self.pins.belt_run())
