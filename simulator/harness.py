"""Runs a scenario against real processes and the real station daemon.

Broker and gateway run as real processes, the station daemon as a real child process
(:mod:`simulator.station_proc`) on simulated hardware, parcels on a SimPy belt in real or
accelerated time, faults on the scenario's timeline; then what happened is compared with
what should have, from the belt's view, the station's reports and the gateway's records.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import socket
import statistics
import subprocess  # starts the broker, gateway and station of a run  # nosec B404
import sys
import threading
import time
import tty
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import simpy

from edge.clock import ScaledClock
from edge.config import StationConfig
from simulator.belt import Belt, GateSpot, Passage
from simulator.hw import fake_modules
from simulator.hw.indicator import ToledoIndicator
from simulator.hw.mfrc522_emu import MFRC522Emulator
from simulator.hw.modbus_plc import ModbusPlc, PlcIO
from simulator.procs import GatewayProcess, MosquittoBroker
from simulator.scenario import (
    GRADE_DISPOSITION,
    PHYSICAL,
    Fault,
    PlannedReturn,
    Scenario,
    SimParcel,
    gtin_for,
    plan_parcels,
    plan_reads,
    plan_returns,
    product_gtin_for,
    tag_uid_for,
)
from simulator.station_proc import (
    StationProbe,
    physics_normal,
    physics_realtime,
    raise_all_threads,
    restore_threads,
)
from simulator.testing import wait_until
from simulator.vision.video import PhotoPlan, write_parcel_video, write_photo_video

log = logging.getLogger(__name__)

SITE_DEFAULT_STATION = "station1"
EYE_PIN = 4
RFID_RST_PIN = 25
CAMERA_FRAMES = 400  # 3 frames per parcel (flush 2 + 1): enough for the 60-parcel demo
SYNC_TIMEOUT_S = 60.0  # real seconds a station may take to catch up after an outage
LANE_AFFECTING = PHYSICAL | {"lane_full"}
LATE_LEAD_MS = 3000.0  # late RMAs: parcels inducted up to this long before the announcement
REPORT_GRACE_S = 1.0  # belt seconds from a parcel leaving the belt to its event at the latest


def attach_rfid_emulator() -> MFRC522Emulator:
    """An MFRC522 emulator on SPI0.0 (NRSTPD on GPIO25) under the real ``mfrc522`` library."""
    fake_modules.install()
    chip = MFRC522Emulator()
    fake_modules.attach_spi(0, 0, chip, rst_pin=RFID_RST_PIN)
    return chip


@dataclass
class ParcelResult:
    """One parcel's fate.

    ``affected_by``: faults whose window overlapped its way down the belt (such a parcel
    may end in quarantine instead of its lane); ``events``: events the gateway recorded
    for it; ``decision_ms``: from induct to the station's decision (virtual ms);
    ``photo``: what its camera photo showed (A, B, C or unreadable); ``grade``: the grade
    the gateway recorded for it (None: no event).
    """

    index: int
    label: str
    barcode: str | None
    expected_lane: str
    actual_lane: str | None
    station_lane: str | None
    reason: str | None
    events: int
    read: str = "ok"
    expected_reason: str | None = None
    affected_by: list[str] = field(default_factory=list)
    photo: str = "A"
    grade: str | None = None
    decision_ms: float | None = None
    induct_s: float | None = None
    exit_s: float | None = None
    case: str | None = None
    verified_units: int = 0
    wrongly_verified_units: int = 0

    @property
    def mis_sorted(self) -> bool:
        """True when it ended elsewhere than its lane (quarantine is fine under a fault)."""
        if self.actual_lane == self.expected_lane:
            return False
        if self.actual_lane == "removed":  # taken off the belt by hand after a jam
            return "jam" not in self.affected_by
        return not (self.affected_by and self.actual_lane == "quarantine")


@dataclass
class FaultResult:
    """One fault as it happened: its window (belt seconds) and how long resync took."""

    kind: str
    lane: str | None
    start_s: float
    end_s: float | None = None
    resync_s: float | None = None
    detail: str = ""


@dataclass
class Report:
    """The outcome of a run."""

    scenario: str
    parcels: list[ParcelResult] = field(default_factory=list)
    lane_counts: dict[str, int] = field(default_factory=dict)
    expected_lane_counts: dict[str, int] = field(default_factory=dict)
    mis_sorts: int = 0
    wrongly_restocked: int = 0
    events_lost: int = 0
    events_doubled: int = 0
    unreported_station_down: int = 0
    removed_by_hand: int = 0
    station_events: int = 0
    gateway_events: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    verified_units: int = 0
    wrongly_verified_units: int = 0
    faults: list[FaultResult] = field(default_factory=list)
    parcels_per_hour: float = 0.0
    mechanical_limit_per_hour: float = 0.0
    decision_ms: dict[str, float] = field(default_factory=dict)
    gate_lateness_ms: dict[str, float] = field(default_factory=dict)
    in_sync: bool = False
    time_mode: str = "realtime"
    rate: float = 1.0
    failures: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    status_url: str = ""

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        out = asdict(self)
        out["ok"] = self.ok
        return out


class _PtyScanner:
    """The scanner's serial line: a pseudo-terminal whose slave the daemon opens."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def station_config_data(
    scenario: Scenario,
    workdir: Path,
    mqtt_port: int,
    scanner_url: str,
    camera_source: str | None = None,
    scale_url: str | None = None,
) -> dict[str, Any]:
    """The station config sections for a run: the scenario's over simulation defaults.

    A scenario ``station.scale`` section gets the simulated indicator's pty as its ``url``
    (``scale_url``; a placeholder when only validating).
    """
    rate = scenario.rate
    data: dict[str, Any] = {
        "station": {"id": SITE_DEFAULT_STATION, "site": scenario.site, "data_dir": str(workdir)},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "status_interval_s": 1.0},
        "gpio": {"pin_factory": "mock"},
        "photo_eye": {"pin": EYE_PIN, "blocked_level": "high"},
        "scanner": {"url": scanner_url},
        # The reader waits in real time between polls: keep its virtual poll period.
        "rfid": {
            "backend": "mfrc522",
            "spi_bus": 0,
            "spi_device": 0,
            "rst_pin": RFID_RST_PIN,
            "poll_interval_ms": max(5.0, 20.0 / rate),
        },
    }
    if camera_source is not None:
        data["camera"] = {
            "backend": "opencv",
            "source": camera_source,
            "api": "ffmpeg",
            "timestamps": "read",
        }
    if "scale" in scenario.station:
        data["scale"] = {"url": scale_url or "/dev/null"}
    for section, values in scenario.station.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    return data


def station_config(
    scenario: Scenario,
    workdir: Path,
    mqtt_port: int,
    scanner_url: str,
    camera_source: str | None = None,
) -> StationConfig:
    """The validated station config for a run (see :func:`station_config_data`).

    The defaults include the MFRC522 reader on SPI0.0 (the emulator the run attaches there)
    and, with ``camera_source``, an OpenCV camera reading that generated video file.
    """
    return StationConfig.model_validate(
        station_config_data(scenario, workdir, mqtt_port, scanner_url, camera_source)
    )


class StationDown(RuntimeError):
    """The station process is not running."""


class StationProcess:
    """The real station daemon in a child process (:mod:`simulator.station_proc`).

    Implements :class:`simulator.belt.StationIO` for the belt; ``kill()`` is SIGKILL.
    Its data folder (SQLite RMA cache and outbox) outlives each process.

    Args:
        config: the station config sections (JSON-able).
        workdir: where its config and log go.
        clock: the shared virtual clock (rate and origin passed to the child).
    """

    def __init__(self, config: dict[str, Any], workdir: Path, clock: ScaledClock) -> None:
        self.config = config
        self.workdir = Path(workdir)
        self.clock = clock
        self.proc: subprocess.Popen[bytes] | None = None
        self.events: list[dict[str, Any]] = []
        self.starts = 0
        self._cmd: socket.socket | None = None
        self._reader: Any = None
        self._lock = threading.Lock()
        self._events_lock = threading.Lock()

    def start(self, timeout_s: float = 60.0) -> None:
        """Start a station process and wait until it serves commands."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "station.json"
        cfg.write_text(json.dumps(self.config), encoding="utf-8")
        parent_cmd, child_cmd = socket.socketpair()
        parent_evt, child_evt = socket.socketpair()
        log_file = (self.workdir / "station.log").open("ab")
        self.proc = subprocess.Popen(  # a fixed argv of our own executables, no shell  # nosec B603
            [
                sys.executable,
                "-m",
                "simulator.station_proc",
                str(cfg),
                repr(self.clock.rate),
                str(self.clock.origin_ns),
                str(child_cmd.fileno()),
                str(child_evt.fileno()),
            ],
            pass_fds=(child_cmd.fileno(), child_evt.fileno()),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        child_cmd.close()
        child_evt.close()
        log_file.close()
        self.starts += 1
        threading.Thread(target=self._collect, args=(parent_evt,), daemon=True).start()
        parent_cmd.settimeout(timeout_s)
        reader = parent_cmd.makefile("rb")
        line = reader.readline()
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError(f"station did not start; see {self.workdir / 'station.log'}")
        parent_cmd.settimeout(30.0)
        with self._lock:
            self._cmd, self._reader = parent_cmd, reader

    def _collect(self, sock: socket.socket) -> None:
        with sock, sock.makefile("rb") as lines:
            for raw in lines:
                with self._events_lock:
                    self.events.append(json.loads(raw))

    def reported_events(self) -> list[dict[str, Any]]:
        """Every event any incarnation of the station reported as committed."""
        with self._events_lock:
            return list(self.events)

    @property
    def running(self) -> bool:
        """True while a station process is up."""
        return self.proc is not None and self.proc.poll() is None and self._cmd is not None

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one command; returns the reply.

        Raises:
            StationDown: when no station process answers.
        """
        with self._lock:
            if self._cmd is None:
                raise StationDown("station is down")
            try:
                self._cmd.sendall((json.dumps({"op": op, **args}) + "\n").encode())
                line = self._reader.readline()
            except OSError as exc:
                raise StationDown(str(exc)) from exc
            if not line:
                raise StationDown("station closed its command socket")
            reply: dict[str, Any] = json.loads(line)
            if "error" in reply:
                raise RuntimeError(f"station: {reply['error']}")
            return reply

    # -- StationIO ---------------------------------------------------------------------
    def eye(self, blocked: bool, t_ms: float | None = None) -> None:
        """Drive the photo-eye pin as of ``t_ms`` (nothing sees it while the station is down)."""
        with contextlib.suppress(StationDown):
            self.call("eye", blocked=blocked, t_ms=t_ms)

    def tag(self, uid: str, present: bool) -> None:
        """A tag in or out of the reader's field."""
        with contextlib.suppress(StationDown):
            self.call("tag", uid=uid, present=present)

    def gate_energised(self, lane: str, t_ms: float | None = None) -> bool:
        """The gate output at ``t_ms``; a dead process energises nothing (fail-safe)."""
        try:
            return bool(self.call("gate", lane=lane, t_ms=t_ms)["energised"])
        except StationDown:
            return False

    def belt_run(self) -> bool:
        """The belt motor output; a dead station's contactor drops: the belt stops."""
        try:
            return bool(self.call("belt_run")["on"])
        except StationDown:
            return not self.config.get("belt_run")

    # -- lifecycle -------------------------------------------------------------------
    def _drop(self) -> None:
        with self._lock:
            if self._cmd is not None:
                with contextlib.suppress(OSError):
                    self._cmd.close()
            self._cmd = self._reader = None

    def kill(self) -> None:
        """SIGKILL the station process (a crash: nothing runs its clean-up)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._drop()

    def stop(self) -> None:
        """A clean stop: gates released, link closed, then the process exits."""
        if self.proc is None or self.proc.poll() is not None:
            self._drop()
            return
        with contextlib.suppress(StationDown, RuntimeError):
            self.call("stop")
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._drop()


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)

    def at(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))], 2)

    return {
        "n": len(s),
        "mean": round(statistics.fmean(s), 2),
        "p50": at(0.5),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": round(s[-1], 2),
    }


class Run:
    """A scenario run with its processes; use as a context manager.

    Args:
        scenario: the scenario.
        workdir: folder for databases, logs and configs of this run.
    """

    def __init__(self, scenario: Scenario, workdir: Path) -> None:
        self.scenario = scenario
        self.workdir = Path(workdir)
        self.clock = ScaledClock(scenario.rate)
        self.broker = MosquittoBroker(self.workdir / "broker")
        self.gateway: GatewayProcess | None = None
        self.station: StationProcess | None = None
        self.scanner = _PtyScanner()
        # the checkweigher's indicator, when the scenario's station has a [scale]
        self.indicator = ToledoIndicator(period_s=0.01) if "scale" in scenario.station else None
        self.http: httpx.Client | None = None
        self.run_tag = uuid.uuid4().hex[:6].upper()
        self.rmas_created = 0
        self._gates_down: dict[str, int] = {}  # lane -> active power-cut / stuck faults
        self._fault_results: list[FaultResult] = []
        self._fault_threads: list[threading.Thread] = []
        self._belt_t0_ms = 0.0
        self._belt: Belt | None = None
        self._jam_parcel: dict[int, int] = {}  # id(fault) -> parcel stuck at the eye
        self._jam_cleared: dict[int, threading.Event] | None = None
        # lanes with backend "modbus": their gates are coils of a PLC this process serves
        self.plc: ModbusPlc | None = None

    def __enter__(self) -> Run:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def lanes(self) -> list[dict[str, Any]]:
        """The scenario's lane sections."""
        return list(self.scenario.station.get("lanes", []))

    def check_station_config(self) -> StationConfig:
        """The scenario's station config, validated before any process starts.

        Raises:
            pydantic.ValidationError: naming the station key that is wrong.
        """
        return StationConfig.model_validate(
            station_config_data(self.scenario, self.workdir / "station", 1, self.scanner.path)
        )

    def start(self) -> None:
        """Start broker, gateway and station; wait until the station is online.

        Raises:
            pydantic.ValidationError: the scenario's station section is invalid (checked
                before anything starts).
            RuntimeError, TimeoutError: a process did not come up.
        """
        self.check_station_config()
        self.broker.start()
        self.gateway = GatewayProcess(
            self.workdir / "gateway", self.broker.port, self.scenario.site
        )
        self.gateway.start()
        self.http = httpx.Client(
            base_url=self.gateway.url, timeout=10, headers={"X-API-Key": self.gateway.api_key}
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.scenario.photos is None:  # grade-A parcels without labels
            video = write_parcel_video(self.workdir / "camera.avi", CAMERA_FRAMES)
        else:  # each parcel's own photo, its label the run's RMA number
            video = write_photo_video(
                self.workdir / "camera.avi",
                [_photo_plan(p) for p in self.plan()],
                seed=self.scenario.parcels.seed,
            )
        scale_url = None
        if self.indicator is not None:
            self.indicator.start()
            scale_url = self.indicator.path
        data = station_config_data(
            self.scenario,
            self.workdir / "station",
            self.broker.port,
            self.scanner.path,
            str(video),
            scale_url,
        )
        if "modbus" in data:  # the scenario's PLC, on a free port of this process
            modbus = dict(data["modbus"])
            self.plc = ModbusPlc(unit_id=int(modbus.get("unit_id", 1)))
            self.plc.start()
            data["modbus"] = {**modbus, "host": "127.0.0.1", "port": self.plc.port}
        StationConfig.model_validate(data)  # fail here, not in the child
        self.station = StationProcess(data, self.workdir / "station", self.clock)
        self.station.start()
        wait_until(
            self._station_online,
            timeout_s=30,
            what="the station to be online at the gateway",
            poll_s=0.05,
        )

    def stop(self) -> None:
        """Stop station, gateway and broker."""
        for t in self._fault_threads:
            t.join(timeout=60)
        if self.station is not None:
            self.station.stop()
        if self.plc is not None:
            self.plc.stop()
        if self.http is not None:
            self.http.close()
        if self.gateway is not None:
            self.gateway.stop()
        self.broker.stop()
        self.scanner.close()
        if self.indicator is not None:
            self.indicator.close()

    def _station_online(self) -> bool:
        assert self.http is not None
        try:
            items = self.http.get("/api/v1/stations").json()["stations"]
        except httpx.HTTPError:
            return False
        return any(s["id"] == SITE_DEFAULT_STATION and s["state"] == "online" for s in items)

    def plan(self) -> list[SimParcel]:
        """The run's parcels (:func:`simulator.scenario.plan_parcels`), in induct order.

        Known parcels end in the restock lane; with the scenario's ``photos``, in the lane
        of their photo's grade. Deterministic in the scenario and the run's RMA numbers.
        """
        return plan_run(self.scenario, self.run_tag)

    def rma_numbers(self, count: int) -> list[str]:
        """The RMA numbers of this run (created or not yet)."""
        return rma_numbers(self.run_tag, count)

    def create_rma(self, index: int, rfid_uid: str | None = None) -> str:
        """Create RMA number ``index`` (1-based) through the gateway API; returns its number."""
        assert self.http is not None
        number = f"RMA-{self.run_tag}{index:05d}"
        skus = self.scenario.parcels.skus
        line: dict[str, Any] = {
            "sku": skus[(index - 1) % len(skus)] if skus else f"SKU-{index % 7:03d}",
            "quantity": 1,
            "gtin": product_gtin_for(index),  # what its parcel shows beside the label
        }
        if rfid_uid is not None:
            line["rfid_uid"] = rfid_uid
        if self.scenario.photos is not None:  # the product's GTIN, on the photo's label
            line["gtin"] = gtin_for(index)
        body = {
            "number": number,
            "order_ref": f"ORD-{self.run_tag}-{index:05d}",
            "reason": "changed_mind",
            "resolution": "refund",
            "lines": [line],
        }
        resp = self.http.post("/api/v1/rmas", json=body)
        if resp.status_code != 201:
            raise RuntimeError(f"creating {number} failed: {resp.status_code} {resp.text}")
        self.rmas_created += 1
        return number

    def create_returns(self, planned: list[PlannedReturn]) -> None:
        """The catalogue weights of the return cases' SKUs, then their RMAs (gateway API)."""
        assert self.http is not None
        weights = {ln.sku: ln.weight_g for r in planned for ln in r.case.lines if ln.weight_g}
        for sku, grams in sorted(weights.items()):
            resp = self.http.put(f"/api/v1/catalogue/{sku}", json={"weight_g": grams})
            if resp.status_code not in (200, 201):
                raise RuntimeError(f"catalogue {sku} failed: {resp.status_code} {resp.text}")
        for k, r in enumerate(planned, start=1):
            lines = [{key: v for key, v in ln.items() if v is not None} for ln in r.lines]
            body = {
                "number": r.number,
                "order_ref": f"ORD-R{self.run_tag}-{k:04d}",
                "reason": "changed_mind",
                "resolution": "refund",
                "lines": lines,
            }
            resp = self.http.post("/api/v1/rmas", json=body)
            if resp.status_code != 201:
                raise RuntimeError(f"creating {r.number} failed: {resp.status_code} {resp.text}")
            self.rmas_created += 1

    def create_rmas(self, count: int) -> list[str]:
        """Create ``count`` RMAs through the gateway API; returns their numbers."""
        return [self.create_rma(i) for i in range(1, count + 1)]

    def station_status(self) -> StationProbe:
        """The station process's status (RMA cache, outbox, lateness, typed health)."""
        assert self.station is not None
        return StationProbe.model_validate(self.station.call("status"))

    def wait_station_synced(self, count: int, timeout_s: float = SYNC_TIMEOUT_S) -> None:
        """Wait until the station's cache holds ``count`` RMAs."""

        def synced() -> bool:
            try:
                return self.station_status().rma_count >= count
            except StationDown:
                return False

        wait_until(
            synced, timeout_s=timeout_s, what=f"{count} RMAs in the station's cache", poll_s=0.05
        )

    def _in_sync(self) -> bool:
        try:
            st = self.station_status()
        except StationDown:
            return False
        return (
            st.rma_count >= self.rmas_created
            and st.outbox == 0
            and st.health.link is not None
            and st.health.link.connected
        )

    def gateway_events(self) -> list[dict[str, Any]]:
        """Every parcel event the gateway recorded for the station."""
        assert self.http is not None
        resp = self.http.get(
            "/api/v1/events", params={"station": SITE_DEFAULT_STATION, "limit": 10_000}
        )
        resp.raise_for_status()
        return list(resp.json()["events"])

    # -- faults -------------------------------------------------------------------------
    def _belt_s(self) -> float:
        return round((self.clock() - self._belt_t0_ms) / 1000.0, 3)

    def _sleep_virtual(self, seconds: float) -> None:
        time.sleep(seconds / self.scenario.rate)

    def _resync(self, result: FaultResult) -> None:
        try:
            wait_until(
                self._in_sync, timeout_s=SYNC_TIMEOUT_S, what="the station to catch up", poll_s=0.05
            )
            result.resync_s = round(self._belt_s() - (result.end_s or 0.0), 3)
        except TimeoutError:
            result.detail += " not back in sync"

    def _fault_action(self, fault: Fault, late: list[tuple[int, str | None]]) -> None:
        assert self.station is not None and self.gateway is not None
        result = FaultResult(fault.kind, fault.lane, self._belt_s())
        self._fault_results.append(result)
        kind = fault.kind
        if kind == "broker_outage":
            self.broker.stop()
            self._sleep_virtual(fault.duration_s)
            self.broker.start()
            result.end_s = self._belt_s()
            self._resync(result)
        elif kind == "gateway_outage":
            self.gateway.stop()
            self._sleep_virtual(fault.duration_s)
            self.gateway.start()
            result.end_s = self._belt_s()
            self._resync(result)
        elif kind == "station_kill":
            with contextlib.suppress(StationDown):
                depth = self.station_status().outbox
                result.detail = f"killed with {depth} event(s) in its outbox"
            self.station.kill()
            self._sleep_virtual(fault.duration_s)
            self.station.start()
            result.end_s = self._belt_s()  # sorting again from here
            self._resync(result)
        elif kind in ("gate_power_cut", "gate_stuck"):
            lanes = [fault.lane] if fault.lane else [str(lane["name"]) for lane in self.lanes]
            for lane in lanes:
                self._gates_down[lane] = self._gates_down.get(lane, 0) + 1
            self._sleep_virtual(fault.duration_s)
            for lane in lanes:
                self._gates_down[lane] -= 1
            result.end_s = self._belt_s()
        elif kind == "modbus_outage":  # the plant network drops; the PLC's watchdog acts
            assert self.plc is not None, "modbus_outage needs lanes with backend modbus"
            self.plc.outage()
            self._sleep_virtual(fault.duration_s)
            self.plc.restore()
            result.end_s = self._belt_s()
        elif kind == "lane_full":
            self.station.call("lane_full", lane=fault.lane, full=True)
            self._sleep_virtual(fault.duration_s)
            self.station.call("lane_full", lane=fault.lane, full=False)
            result.end_s = self._belt_s()
        elif kind == "late_rma":
            for index, uid in late:
                self.create_rma(index, uid)
            self.wait_station_synced(self.rmas_created)
            result.end_s = self._belt_s()
            result.detail = f"{len(late)} RMA(s) announced late"
        elif kind == "jam":
            # the parcel stuck at the eye is taken off at at_s + duration_s (a SimPy
            # process of the timeline); then the operator presses resume
            assert self._jam_cleared is not None
            self._jam_cleared[id(fault)].wait(timeout=SYNC_TIMEOUT_S * 2)
            if fault.resume == "harness":  # else a lead resumes from the status page
                self.station.call("resume")
            result.end_s = self._belt_s()
            result.detail = f"parcel {self._jam_parcel.get(id(fault))} stuck at the eye"
        elif kind == "camera_failure":
            self.station.call("camera_fail")
            result.end_s = result.start_s
        elif kind == "clock_skew":
            self.station.call("skew", seconds=fault.skew_s)
            result.end_s = result.start_s
            result.detail = f"UTC clock {fault.skew_s:+} s"

    def _timeline(
        self, env: simpy.Environment, late: dict[int, list[tuple[int, str | None]]]
    ) -> None:
        def fire(i: int, fault: Fault) -> simpy.events.ProcessGenerator:
            yield env.timeout(fault.at_s * 1000.0)
            t = threading.Thread(
                target=self._fault_action, args=(fault, late.get(i, [])), daemon=True
            )
            t.start()
            self._fault_threads.append(t)

        def clear(fault: Fault, index: int) -> simpy.events.ProcessGenerator:
            yield env.timeout((fault.at_s + fault.duration_s) * 1000.0)
            assert self._belt is not None and self._jam_cleared is not None
            self._belt.removed[index].succeed()
            self._jam_cleared[id(fault)].set()

        for i, fault in enumerate(self.scenario.faults):
            env.process(fire(i, fault))
            if fault.kind == "jam":
                env.process(clear(fault, self._jam_parcel[id(fault)]))

    # -- the run ------------------------------------------------------------------------
    def execute(
        self,
        on_progress: Callable[[str], None] = lambda _: None,
        on_parcel: Callable[[int, int], None] = lambda done, total: None,
    ) -> Report:
        """Create the RMAs, run the parcels and the faults, collect and check the results."""
        assert self.station is not None and self.gateway is not None
        sc = self.scenario
        started = time.monotonic()
        lanes = self.lanes
        belt_cfg = sc.station.get("belt", {})
        speed = float(belt_cfg.get("speed_mm_s", 1000.0))
        codes = self.rma_numbers(sc.parcels.known)
        parcels = self.plan()
        read_plan = plan_reads(sc.reads, sc.parcels.known, sc.parcels.seed)
        uids: dict[int, str | None] = {
            k + 1: tag_uid_for(self.run_tag, k + 1) if r in ("rfid", "rfid_mismatch") else None
            for k, r in enumerate(read_plan)
        }
        # late RMAs: the first known parcels inducted from LATE_LEAD_MS before each late_rma
        # fault: on the belt, some past the scanner, when their RMA is announced
        late: dict[int, list[tuple[int, str | None]]] = {}
        late_numbers: set[str] = set()
        for i, fault in enumerate(sc.faults):
            if fault.kind != "late_rma":
                continue
            picked = [
                p
                for p in parcels
                if p.label == "known"
                and p.induct_at_ms >= fault.at_s * 1000.0 - LATE_LEAD_MS
                and p.barcode not in late_numbers
            ][: fault.count]
            for p in picked:
                assert p.barcode is not None
                late_numbers.add(p.barcode)
            late[i] = [(codes.index(str(p.barcode)) + 1, None) for p in picked]
            late[i] = [(k, uids[k]) for k, _ in late[i]]
        on_progress(f"creating {sc.parcels.known - len(late_numbers)} RMAs through the API")
        for k, number in enumerate(codes, start=1):
            if number not in late_numbers:
                self.create_rma(k, uids[k])
        if sc.returns is not None:
            after = max((p.induct_at_ms for p in parcels), default=None)
            start_ms = sc.parcels.start_ms if after is None else after + 2000.0
            returned, planned = plan_returns(
                sc.returns, sc.parcels, speed, self.run_tag, len(parcels) + 1, start_ms
            )
            parcels += returned
            on_progress(f"creating {len(planned)} return RMAs and their catalogue")
            self.create_returns(planned)
        self.wait_station_synced(self.rmas_created)
        gates = [GateSpot(str(lane["name"]), float(lane["pos_mm"])) for lane in lanes]
        done = [0]

        def exited(_: Passage) -> None:
            done[0] += 1
            on_parcel(done[0], len(parcels))

        belt = Belt(
            speed_mm_s=speed,
            length_mm=float(belt_cfg.get("length_mm", 3000.0)),
            scan_pos_mm=float(belt_cfg.get("scan_pos_mm", 400.0)),
            io=self._io(),
            scanner_fd=self.scanner.master,
            gates=gates,
            rate=sc.rate,
            clock=self.clock,
            gate_works=lambda lane: self._gates_down.get(lane, 0) == 0,
            on_exit=exited,
            **self._checkweigher(),
        )
        self._belt = belt
        self._jam_cleared = {}
        for fault in sc.faults:
            if fault.kind == "jam":
                stuck = next(p.index for p in parcels if p.induct_at_ms >= fault.at_s * 1000.0)
                self._jam_parcel[id(fault)] = stuck
                self._jam_cleared[id(fault)] = threading.Event()
                belt.stuck.add(stuck)
                belt.follow_motor = True
        on_progress(
            f"running {len(parcels)} parcels and {len(sc.faults)} fault(s) "
            f"({sc.time.mode}, x{sc.rate:g})"
        )
        self._belt_t0_ms = self.clock()
        before = raise_all_threads()  # the belt thread is the "physics"; it shares the GIL
        physics = physics_realtime()  # ... and is not delayed by the load put on the station
        try:
            belt.run(parcels, extra=lambda env: self._timeline(env, late))
        finally:
            restore_threads(before)
            physics_normal(physics)
        for t in self._fault_threads:
            t.join(timeout=SYNC_TIMEOUT_S * 2)
        on_progress("waiting for the station to catch up and the gateway to record every event")
        with contextlib.suppress(TimeoutError):
            wait_until(
                self._in_sync, timeout_s=SYNC_TIMEOUT_S, what="the station in sync", poll_s=0.05
            )
        in_sync = self._in_sync()

        def all_recorded() -> bool:
            assert self.station is not None
            ids = {e["event_id"] for e in self.gateway_events()}
            return all(e["event_id"] in ids for e in self.station.reported_events())

        with contextlib.suppress(TimeoutError, httpx.HTTPError):
            wait_until(all_recorded, timeout_s=30, what="events at the gateway", poll_s=0.05)
        status = self.station_status() if self.station.running else None
        report = self._report(
            parcels,
            belt.passages,
            self.station.reported_events(),
            self.gateway_events(),
            status,
            late_numbers,
        )
        report.in_sync = in_sync
        if not in_sync:
            report.failures.append("station not back in sync with the gateway at the end")
        report.faults = list(self._fault_results)
        for f in report.faults:
            if "not back in sync" in f.detail:
                report.failures.append(f"{f.kind} at {f.start_s} s: station not back in sync")
        report.duration_s = round(time.monotonic() - started, 1)
        report.status_url = self.gateway.url + "/"
        return report

    def _checkweigher(self) -> dict[str, Any]:
        """The belt's checkweigher: platform (start, end) mm and the indicator's load."""
        scale = self.scenario.station.get("scale")
        if self.indicator is None or not isinstance(scale, dict):
            return {}
        indicator = self.indicator
        half = float(scale.get("platform_mm", 500.0)) / 2
        pos = float(scale["pos_mm"])

        def weigh(grams: float, stable: bool) -> None:
            indicator.set_load(grams, stable=stable)

        return {"platform_mm": (pos - half, pos + half), "weigh": weigh}

    def _io(self) -> Any:
        """What the belt touches: the station process, and the PLC's coils for Modbus gates."""
        assert self.station is not None
        if self.plc is None:
            return self.station
        coils = {
            str(lane["name"]): (int(lane["gate_coil"]), bool(lane.get("active_high", True)))
            for lane in self.lanes
            if lane.get("backend") == "modbus"
        }
        return PlcIO(self.station, self.plc, coils)

    def _windows(self, kinds: set[str]) -> list[tuple[str, str | None, float, float]]:
        out = []
        for f in self._fault_results:
            if f.kind in kinds:
                end = f.end_s if f.end_s is not None else float("inf")
                out.append((f.kind, f.lane, f.start_s, end))
        return out

    def _report(
        self,
        parcels: list[SimParcel],
        passages: dict[int, Passage],
        reported: list[dict[str, Any]],
        events: list[dict[str, Any]],
        status: StationProbe | None,
        late_numbers: set[str],
    ) -> Report:
        sc = self.scenario
        report = Report(sc.name, time_mode=sc.time.mode, rate=sc.rate)
        report.station_events = len(reported)
        report.gateway_events = len(events)
        t0 = self._belt_t0_ms
        # station reports -> parcels, by induct time (one virtual clock for belt and station)
        inducts = sorted(
            (p.induct_clock_ms, i) for i, p in passages.items() if p.induct_clock_ms is not None
        )
        spacing = [b[0] - a[0] for a, b in itertools.pairwise(inducts)]
        tol = max(20.0, min(spacing, default=1000.0) / 2)
        owner: dict[str, int] = {}
        station_by_parcel: dict[int, dict[str, Any]] = {}
        for ev in reported:
            best = min(inducts, key=lambda x: abs(x[0] - ev["inducted_at_ms"]), default=None)
            if best is not None and abs(best[0] - ev["inducted_at_ms"]) <= tol:
                owner[ev["event_id"]] = best[1]
                station_by_parcel.setdefault(best[1], ev)
        by_barcode = {p.barcode: p.index for p in parcels if p.barcode is not None}
        gw_by_parcel: dict[int, list[dict[str, Any]]] = {}
        unattributed = 0
        for ev in events:
            idx = owner.get(ev["event_id"])
            if idx is None:  # committed just before a crash, never reported to us
                idx = by_barcode.get(str(ev.get("barcode")))
            if idx is None:
                unattributed += 1
                continue
            gw_by_parcel.setdefault(idx, []).append(ev)
        lane_windows = self._windows(LANE_AFFECTING)
        down_windows = self._windows({"station_kill"})
        late_windows = self._windows({"late_rma"})
        decision_ms: list[float] = []
        for p in parcels:
            passage = passages.get(p.index, Passage(p.index))
            a = ((passage.induct_clock_ms or t0) - t0) / 1000.0
            b = ((passage.exit_clock_ms or float("inf")) - t0) / 1000.0
            affected = [
                kind
                for kind, lane, s, e in lane_windows
                if s <= b + (REPORT_GRACE_S if kind == "station_kill" else 0.0)
                and a <= e
                and (lane is None or lane == p.expected_lane)
            ]
            if p.barcode in late_numbers:
                affected += ["late_rma" for _, _, s, e in late_windows if a <= e]
            st = station_by_parcel.get(p.index)
            gw = gw_by_parcel.get(p.index, [])
            first = gw[0] if gw else (st or {})
            verified, wrong = _verified_units(p, st)
            if st is not None:
                decision_ms.append(st["decided_at_ms"] - st["inducted_at_ms"])
            report.parcels.append(
                ParcelResult(
                    index=p.index,
                    label=p.label,
                    barcode=p.barcode,
                    expected_lane=p.expected_lane,
                    actual_lane=passage.lane,
                    station_lane=first.get("lane"),
                    reason=first.get("reason"),
                    events=len(gw),
                    read=p.read,
                    expected_reason=p.expected_reason,
                    photo=p.photo,
                    grade=gw[0].get("grade") if gw else None,
                    affected_by=sorted(set(affected)),
                    decision_ms=(
                        round(st["decided_at_ms"] - st["inducted_at_ms"], 2) if st else None
                    ),
                    induct_s=round(a, 3) if passage.induct_clock_ms else None,
                    exit_s=round(b, 3) if passage.exit_clock_ms else None,
                    case=p.case,
                    verified_units=verified,
                    wrongly_verified_units=wrong,
                )
            )
        rs = report.parcels
        report.lane_counts = dict(Counter(r.actual_lane or "lost" for r in rs))
        report.expected_lane_counts = dict(Counter(p.expected_lane for p in parcels))
        report.mis_sorts = sum(r.mis_sorted for r in rs)
        report.verified_units = sum(r.verified_units for r in rs)
        report.wrongly_verified_units = sum(r.wrongly_verified_units for r in rs)
        restock = {str(lane["name"]) for lane in self.lanes if lane.get("disposition") == "restock"}
        report.wrongly_restocked = sum(
            r.actual_lane in restock and r.expected_lane != r.actual_lane for r in rs
        )
        gw_ids = [e["event_id"] for e in events]
        lost_ids = {e["event_id"] for e in reported} - set(gw_ids)

        def station_down(r: ParcelResult) -> bool:
            passage = passages.get(r.index, Passage(r.index))
            a = ((passage.induct_clock_ms or t0) - t0) / 1000.0
            # the station reports a parcel once its gate closed: a little after the belt
            # saw it leave; killed in between, the event never existed (not lost)
            b = ((passage.exit_clock_ms or float("inf")) - t0) / 1000.0 + REPORT_GRACE_S
            return any(s <= b and a <= e for _, _, s, e in down_windows)

        unreported = [r for r in rs if r.events == 0 and station_down(r)]
        report.unreported_station_down = len(unreported)
        # taken off the belt after a jam without reaching the eye: the station never saw it
        unseen = [r for r in rs if r.actual_lane == "removed" and r.events == 0]
        report.removed_by_hand = sum(r.actual_lane == "removed" for r in rs)
        report.events_lost = len(lost_ids) + sum(
            r.events == 0 and not station_down(r) and r not in unseen for r in rs
        )
        report.events_doubled = sum(max(0, r.events - 1) for r in rs) + (
            len(gw_ids) - len(set(gw_ids))
        )
        reasons: Counter[str] = Counter()
        for r in rs:
            if r.actual_lane == "quarantine":
                reasons[r.reason or ("station_down" if r in unreported else "none")] += 1
        report.quarantine_reasons = dict(sorted(reasons.items()))
        inducted = [p.induct_clock_ms for p in passages.values() if p.induct_clock_ms]
        exits = [p.exit_clock_ms for p in passages.values() if p.exit_clock_ms]
        if len(inducted) > 1:
            span_ms = max(inducted) - min(inducted)
            report.parcels_per_hour = round((len(inducted) - 1) * 3_600_000.0 / span_ms, 1)
        belt = sc.station.get("belt", {})
        lo_len = sc.parcels.length_mm[0]
        lo_gap = sc.parcels.gap_mm[0]
        report.mechanical_limit_per_hour = round(
            float(belt.get("speed_mm_s", 1000.0)) * 3600.0 / (lo_len + lo_gap), 1
        )
        report.decision_ms = _pct(decision_ms)
        report.gate_lateness_ms = _pct(list(status.lateness_ms) if status is not None else [])
        f = report.failures
        if report.mis_sorts > sc.expect.mis_sorts:
            f.append(f"{report.mis_sorts} parcel(s) mis-sorted")
        if report.wrongly_restocked:
            f.append(f"{report.wrongly_restocked} parcel(s) restocked that should not have been")
        if report.wrongly_verified_units:
            wrong_at = [r.index for r in rs if r.wrongly_verified_units]
            f.append(
                f"{report.wrongly_verified_units} unit(s) reported verified that the box does "
                f"not hold (parcels {wrong_at})"
            )
        want = sc.expect.verified_units
        if want is not None and report.verified_units != want:
            f.append(f"{report.verified_units} verified unit(s) != expected {want}")
        if report.events_lost:
            f.append(f"{report.events_lost} parcel event(s) did not reach the gateway")
        if report.events_doubled:
            f.append(f"{report.events_doubled} parcel event(s) recorded twice")
        if unattributed:
            f.append(f"{unattributed} event(s) at the gateway for parcels never inducted")
        if len(exits) != len(parcels):
            f.append(f"{len(parcels) - len(exits)} parcel(s) never left the belt")
        if reasons.get("none"):
            f.append(f"{reasons['none']} quarantined parcel(s) without a reason")
        disagree = [
            r.index
            for r in rs
            if r.station_lane and r.station_lane != r.actual_lane and not r.affected_by
        ]
        if disagree:
            f.append(f"station reported another lane than the belt saw: {disagree}")
        wrong_reason = [
            f"{r.index}: {r.reason} in {r.actual_lane}, expected {r.expected_reason}"
            for r in rs
            if not r.affected_by and r.reason is not None and r.reason != r.expected_reason
        ]
        if wrong_reason:
            # which reason it got says why (e.g. ambiguous_read: a read's timing was uncertain)
            f.append(f"reason differs from the expected one for parcels {wrong_reason}")
        expect = sc.expect
        if expect.lanes is not None and expect.lanes != report.lane_counts:
            f.append(f"lane counts {report.lane_counts} != expected {expect.lanes}")
        if (
            expect.quarantine_reasons is not None
            and expect.quarantine_reasons != report.quarantine_reasons
        ):
            f.append(
                f"quarantine reasons {report.quarantine_reasons} != "
                f"expected {expect.quarantine_reasons}"
            )
        if (
            expect.min_parcels_per_hour is not None
            and report.parcels_per_hour < expect.min_parcels_per_hour
        ):
            f.append(
                f"{report.parcels_per_hour} parcels/h < expected {expect.min_parcels_per_hour}"
            )
        return report


def _verified_units(p: SimParcel, event: dict[str, Any] | None) -> tuple[int, int]:
    """(units the station reported verified for parcel ``p``, those the box does not hold).

    A verified unit is wrong when it is another RMA's than the goods in the box, or of a
    line the box does not carry (``SimParcel.carries``).
    """
    if event is None:
        return 0, 0
    units = [u for u in event.get("units", ()) if u.get("verified")]
    wrong = [
        u for u in units if event.get("rma_number") != p.rma or u.get("line_no") not in p.carries
    ]
    return len(units), len(wrong)


def rma_numbers(run_tag: str, count: int) -> list[str]:
    """The RMA numbers 1..``count`` of a run: ``RMA-<run_tag><n:05d>``."""
    return [f"RMA-{run_tag}{i:05d}" for i in range(1, count + 1)]


def plan_run(scenario: Scenario, run_tag: str) -> list[SimParcel]:
    """The parcels of a run of ``scenario`` whose RMA numbers carry ``run_tag``.

    See :meth:`Run.plan`; the RMA numbers are :func:`rma_numbers`.
    """
    by_disposition: dict[str, str] = {}
    for lane in scenario.station.get("lanes", []):
        by_disposition.setdefault(str(lane.get("disposition")), str(lane["name"]))
    restock = by_disposition.get("restock", "quarantine")
    grade_lanes = {
        g: by_disposition[d] for g, d in GRADE_DISPOSITION.items() if d in by_disposition
    }
    speed = float(scenario.station.get("belt", {}).get("speed_mm_s", 1000.0))
    codes = rma_numbers(run_tag, scenario.parcels.known)
    return plan_parcels(
        scenario.parcels,
        speed,
        codes,
        restock,
        run_tag,
        scenario.reads,
        scenario.photos,
        grade_lanes,
    )


def planned_lanes(scenario: Scenario) -> dict[str, int]:
    """How many parcels of ``scenario`` must end in each lane (no fault counted)."""
    return dict(Counter(p.expected_lane for p in plan_run(scenario, "PLAN")))


def _photo_plan(parcel: SimParcel) -> PhotoPlan:
    """What a parcel's photo shows: its grade, and its label unless the label does not read."""
    if parcel.barcode is None or parcel.read in ("no_read", "garbled"):
        return parcel.photo, None, None
    return parcel.photo, parcel.barcode, parcel.gtin


@contextlib.contextmanager
def scenario_run(scenario: Scenario, workdir: Path) -> Iterator[Run]:
    """Context manager form of :class:`Run`."""
    with Run(scenario, workdir) as run:
        yield run
