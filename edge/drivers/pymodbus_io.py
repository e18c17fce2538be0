"""Diverter gates (coils) and lane inputs (discrete inputs) on a PLC over Modbus TCP.

Built on pymodbus's synchronous TCP client. One :class:`ModbusLink` per station (the
``[modbus]`` section) owns the connection: gates write their coil through it (function 5,
write single coil), and its poll thread reads the discrete inputs every ``poll_ms``
(function 2, read discrete inputs; a coil read, function 1, when there is none: the
heartbeat) and reports their changes, stamped at the poll that saw them. Addresses are
zero-based protocol addresses (Modbus Application Protocol Specification V1.1b3, §4.3 and
§6; Modbus Messaging on TCP/IP Implementation Guide V1.0b).

A lost connection (a timeout, a reset, an exception response to a gate write) is a device
fault: the link tells every watcher (the daemon turns it into a ``gate_fault`` of each
Modbus lane: parcels in flight go to quarantine, alarm raised), writes nothing until it is
back, and reconnects with exponential back-off (``reconnect_min_ms`` doubling to
``reconnect_max_ms``). On every (re)connect it first drives every gate coil off (the safe
state), then reports the fault cleared. The coupler's own fieldbus watchdog is what makes
the outputs safe while the station cannot reach it; configure it (typically 100-500 ms).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.clock import monotonic_ms
from edge.config import ModbusSection
from edge.drivers.gpio import LevelCallback

__all__ = ["ModbusDiverterGate", "ModbusFault", "ModbusInput", "ModbusLink", "ModbusPhotoEye"]

log = logging.getLogger(__name__)

MAX_BITS_PER_READ = 2000
"""Most discrete inputs one read may ask for (the spec's limit for function 2)."""

FaultCallback = Callable[[float, bool], None]
"""Called with (t_ms monotonic, faulted) when the link is lost (True) or back (False)."""


class ModbusFault(RuntimeError):
    """The PLC cannot be reached or refused a request."""


class ModbusLink:
    """The station's Modbus TCP connection to its PLC / remote I/O coupler.

    Args:
        section: the ``[modbus]`` section (host, port, unit id, timeouts, poll period).
        clock: monotonic ms time source that stamps input changes and faults.

    Attributes:
        connected: True while the PLC answers.
        faults: connections lost since start.
        last_error: why the last connection was lost ("" before any).
    """

    def __init__(self, section: ModbusSection, clock: Callable[[], float] = monotonic_ms) -> None:
        self.section = section
        self.clock = clock
        # Any: some of pymodbus's client methods carry no annotations
        self._client: Any = ModbusTcpClient(
            section.host,
            port=section.port,
            timeout=section.timeout_ms / 1000.0,
            retries=0,
        )
        self._lock = threading.RLock()  # pymodbus's sync client is not thread-safe
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._coils: set[int] = set()
        self._inputs: dict[int, list[Callable[[float, bool], None]]] = {}
        self._levels: dict[int, bool] = {}
        self._watchers: list[FaultCallback] = []
        self._users = 0
        self.connected = False
        self.faults = 0
        self.last_error = ""
        self.reconnects = 0

    # -- membership ---------------------------------------------------------------------------
    def acquire(self) -> None:
        """A device uses the link (each one :meth:`release` s it when it closes)."""
        with self._lock:
            self._users += 1

    def release(self) -> None:
        """A device is done with the link; the last one closes it."""
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last:
            self.close()

    def add_coil(self, address: int) -> None:
        """A gate on coil ``address``: driven off at every (re)connect."""
        with self._lock:
            self._coils.add(address)

    def subscribe(self, address: int, on_change: Callable[[float, bool], None]) -> None:
        """Report every change of discrete input ``address`` as (t_ms, level)."""
        with self._lock:
            self._inputs.setdefault(address, []).append(on_change)
        self.start()

    def watch(self, on_fault: FaultCallback) -> None:
        """Call ``on_fault(t_ms, faulted)`` when the connection is lost or back."""
        with self._lock:
            self._watchers.append(on_fault)

    # -- connection ---------------------------------------------------------------------------
    def connect(self) -> bool:
        """Connect now if not connected (coils driven off first); True when connected."""
        with self._lock:
            if self.connected:
                return True
            try:
                if not self._client.connect():
                    raise ModbusFault(f"cannot connect to {self.section.host}:{self.section.port}")
                for address in sorted(self._coils):
                    self._write(address, False)
                changes = self._read_inputs()
            except (ModbusException, ModbusFault, OSError) as exc:
                self._client.close()
                self.last_error = str(exc)
                return False
            self.connected = True
            was_faulted = self.faults > 0
        log.info("modbus %s:%d connected", self.section.host, self.section.port)
        if was_faulted:
            self.reconnects += 1
            self._notify(False)
        self._report(changes)  # what changed while it was away (a lane emptied, ...)
        return True

    def start(self) -> None:
        """Start the poll / reconnect thread (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="modbus", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop polling and close the connection (idempotent)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2 + self.section.timeout_ms / 1000.0)
        with self._lock:
            self._client.close()
            self.connected = False

    def _run(self) -> None:
        backoff_ms = self.section.reconnect_min_ms
        while not self._stop.is_set():
            if not self.connected:
                if self.connect():
                    backoff_ms = self.section.reconnect_min_ms
                    continue
                self._stop.wait(backoff_ms / 1000.0)
                backoff_ms = min(backoff_ms * 2, self.section.reconnect_max_ms)
                continue
            try:
                with self._lock:
                    changes = self._read_inputs()
            except (ModbusException, ModbusFault, OSError) as exc:
                self._lost(exc)
                continue
            self._report(changes)  # outside the lock: callbacks take other locks
            self._stop.wait(self.section.poll_ms / 1000.0)

    def _lost(self, exc: BaseException) -> None:
        with self._lock:
            if not self.connected:
                return
            self.connected = False
            self.faults += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._client.close()
        log.error("modbus %s:%d lost: %s", self.section.host, self.section.port, exc)
        self._notify(True)

    def _notify(self, faulted: bool) -> None:
        t_ms = self.clock()
        with self._lock:
            watchers = list(self._watchers)
        for on_fault in watchers:
            try:
                on_fault(t_ms, faulted)
            except Exception:
                log.exception("modbus fault watcher failed")

    # -- requests -----------------------------------------------------------------------------
    def _write(self, address: int, on: bool) -> None:
        response = self._client.write_coil(address, on, device_id=self.section.unit_id)
        if response.isError():
            raise ModbusFault(f"coil {address}: exception response {response}")

    def _read_inputs(self) -> list[tuple[int, bool]]:
        """Poll every subscribed input (lock held); return the changes (address, level)."""
        addresses = sorted(self._inputs)
        changes: list[tuple[int, bool]] = []
        if not addresses and self._coils:  # no inputs: a coil read is the heartbeat
            first_coil = min(self._coils)
            response = self._client.read_coils(first_coil, count=1, device_id=self.section.unit_id)
            if response.isError():
                raise ModbusFault(f"coil {first_coil}: {response}")
        while addresses:
            first = addresses[0]
            chunk = [a for a in addresses if a < first + MAX_BITS_PER_READ]
            addresses = addresses[len(chunk) :]
            count = chunk[-1] - first + 1
            response = self._client.read_discrete_inputs(
                first, count=count, device_id=self.section.unit_id
            )
            if response.isError():
                raise ModbusFault(f"discrete inputs {first}..{chunk[-1]}: {response}")
            for address in chunk:
                level = bool(response.bits[address - first])
                if self._levels.get(address, False) != level:
                    changes.append((address, level))
                self._levels[address] = level
        return changes

    def _report(self, changes: list[tuple[int, bool]]) -> None:
        if not changes:
            return
        t_ms = self.clock()
        with self._lock:
            targets = [(list(self._inputs[a]), level) for a, level in changes]
        for callbacks, level in targets:
            for on_change in callbacks:
                on_change(t_ms, level)

    def write_coil(self, address: int, on: bool) -> None:
        """Drive coil ``address``.

        Raises:
            ModbusFault: when the PLC is not connected, the request failed (the link is
                then lost and reconnects) or it answered with an exception response.
        """
        with self._lock:
            if not self.connected:
                raise ModbusFault(f"coil {address}: not connected ({self.last_error})")
            try:
                self._write(address, on)
                return
            except (ModbusException, OSError) as exc:
                error: BaseException = exc
        self._lost(error)
        raise ModbusFault(f"coil {address}: {error}") from error

    def read_coil(self, address: int) -> bool:
        """Read coil ``address`` back (function 1).

        Raises:
            ModbusFault: as :meth:`write_coil`.
        """
        with self._lock:
            if not self.connected:
                raise ModbusFault(f"coil {address}: not connected ({self.last_error})")
            try:
                response = self._client.read_coils(address, count=1, device_id=self.section.unit_id)
            except (ModbusException, OSError) as exc:
                error: BaseException = exc
            else:
                if response.isError():
                    raise ModbusFault(f"coil {address}: exception response {response}")
                return bool(response.bits[0])
        self._lost(error)
        raise ModbusFault(f"coil {address}: {error}") from error

    def level(self, address: int) -> bool:
        """Discrete input ``address`` as last polled."""
        return self._levels.get(address, False)

    def status(self) -> dict[str, object]:
        """JSON-able state of the connection."""
        return {
            "state": "ok" if self.connected else "failed",
            "host": self.section.host,
            "port": self.section.port,
            "unit_id": self.section.unit_id,
            "faults": self.faults,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        }


class ModbusDiverterGate:
    """A diverter gate on a PLC coil, off at start and off on close.

    Args:
        name: gate id (the lane name).
        coil: the coil's zero-based address.
        active_high: True when energising means coil on.
        link: the station's :class:`ModbusLink`.

    A gate write that fails never raises into the caller (the scheduler): the link is
    lost, its watchers are told and the lane's parcels go to quarantine.
    """

    def __init__(self, name: str, coil: int, active_high: bool, link: ModbusLink) -> None:
        self.name = name
        self.coil = coil
        self.active_high = active_high
        self.link = link
        self.fired = 0
        self.failed_writes = 0
        self._energised = False
        self._closed = False
        link.acquire()
        link.add_coil(coil)

    def _drive(self, energised: bool) -> None:
        self._energised = energised
        try:
            self.link.write_coil(self.coil, energised == self.active_high)
        except ModbusFault as exc:
            self.failed_writes += 1
            log.error("gate %s: coil %d not written: %s", self.name, self.coil, exc)

    def energise(self) -> None:
        """Divert."""
        self._drive(True)
        self.fired += 1

    def release(self) -> None:
        """Back to rest (no divert)."""
        self._drive(False)

    @property
    def energised(self) -> bool:
        """True while the gate is commanded to divert."""
        return self._energised

    def watch_faults(self, on_fault: FaultCallback) -> None:
        """Call ``on_fault(t_ms, faulted)`` when the gate's PLC is lost or back."""
        self.link.watch(on_fault)

    def self_test(self) -> dict[str, object]:
        """Connect, drive the coil off and read it back; never pulses the diverter.

        Returns ``{"ok": bool, "detail": str}``: not ok when the PLC does not answer or
        the coil does not read back off.
        """
        if not self.link.connect():
            return {"ok": False, "detail": f"PLC not reachable: {self.link.last_error}"}
        self.link.start()
        try:
            self.link.write_coil(self.coil, not self.active_high)
            level = self.link.read_coil(self.coil)
        except ModbusFault as exc:
            return {"ok": False, "detail": str(exc)}
        if level != (not self.active_high):
            return {"ok": False, "detail": f"coil {self.coil} reads {int(level)} after off"}
        return {"ok": True, "detail": f"coil {self.coil} off"}

    def close(self) -> None:
        """De-energise, then let go of the link (the last device closes it)."""
        if self._closed:
            return
        self._closed = True
        self.release()
        self.link.release()

    def status(self) -> dict[str, object]:
        """JSON-able state: ``failed`` while the PLC cannot be reached."""
        return {
            "state": "ok" if self.link.connected else "failed",
            "energised": self.energised,
            "fired": self.fired,
            "coil": self.coil,
        }


class ModbusInput:
    """A lane input (divert-confirm, lane-full) on a PLC discrete input, polled.

    Args:
        name: what it is, e.g. ``"restock.confirm"``.
        address: the discrete input's zero-based address.
        active_high: True when the input reads on while active.
        link: the station's :class:`ModbusLink`.
    """

    def __init__(self, name: str, address: int, active_high: bool, link: ModbusLink) -> None:
        self.name = name
        self.address = address
        self.active_high = active_high
        self.link = link
        self.edges = 0
        self._on_change: LevelCallback | None = None
        self._closed = False
        link.acquire()

    def start(self, on_change: LevelCallback) -> None:
        """Report every change as (t_ms, active) to ``on_change``."""
        self._on_change = on_change
        self.link.subscribe(self.address, self._changed)

    def _changed(self, t_ms: float, level: bool) -> None:
        self.edges += 1
        if self._on_change is not None:
            self._on_change(t_ms, level == self.active_high)

    @property
    def active(self) -> bool:
        """Current level as last polled: True when active."""
        return self.link.level(self.address) == self.active_high

    def close(self) -> None:
        """Let go of the link (the last device closes it)."""
        if not self._closed:
            self._closed = True
            self.link.release()

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        return {
            "state": "ok" if self.link.connected else "failed",
            "active": self.active,
            "edges": self.edges,
        }


class ModbusPhotoEye(ModbusInput):
    """The induct photo-eye on a PLC discrete input: (t_ms, blocked) at each polled change.

    Args:
        address: the discrete input's zero-based address.
        blocked_high: True when the input reads on while the beam is blocked.
        link: the station's :class:`ModbusLink`.
    """

    def __init__(self, address: int, blocked_high: bool, link: ModbusLink) -> None:
        super().__init__("photo_eye", address, blocked_high, link)

    def self_test(self) -> dict[str, object]:
        """Connect and read the input once: ``{"ok": bool, "detail": str}``."""
        if not self.link.connect():
            return {"ok": False, "detail": f"PLC not reachable: {self.link.last_error}"}
        return {"ok": True, "detail": f"discrete input {self.address}"}

    @property
    def blocked(self) -> bool:
        """The beam is blocked (as last polled)."""
        return self.active

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        return {
            "state": "ok" if self.link.connected else "failed",
            "blocked": self.blocked,
            "edges": self.edges,
        }
