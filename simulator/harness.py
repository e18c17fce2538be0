"""Runs a scenario against real processes and the real station daemon.

Broker and gateway run as real processes, the station daemon on simulated hardware, parcels
on a real-time belt; then what happened is compared with what should have, from the belt's
view and from the gateway's records.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import tty
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from edge.config import StationConfig
from edge.daemon import StationDaemon
from simulator.belt import Belt, GatePin
from simulator.hw import fake_modules
from simulator.hw.mfrc522_emu import MFRC522Emulator
from simulator.procs import GatewayProcess, MosquittoBroker
from simulator.scenario import Scenario, SimParcel, plan_parcels
from simulator.vision.video import write_parcel_video

log = logging.getLogger(__name__)

SITE_DEFAULT_STATION = "station1"
EYE_PIN = 4
RFID_RST_PIN = 25
CAMERA_FRAMES = 400  # 3 frames per parcel (flush 2 + 1): enough for the 60-parcel demo


def attach_rfid_emulator() -> MFRC522Emulator:
    """An MFRC522 emulator on SPI0.0 (NRSTPD on GPIO25) under the real ``mfrc522`` library."""
    fake_modules.install()
    chip = MFRC522Emulator()
    fake_modules.attach_spi(0, 0, chip, rst_pin=RFID_RST_PIN)
    return chip


@dataclass
class ParcelResult:
    """One parcel's fate."""

    index: int
    label: str
    barcode: str | None
    expected_lane: str
    actual_lane: str | None
    station_lane: str | None
    reason: str | None
    events: int

    @property
    def mis_sorted(self) -> bool:
        """True when the parcel did not end in the lane it should have."""
        return self.actual_lane != self.expected_lane


@dataclass
class Report:
    """The outcome of a run."""

    scenario: str
    parcels: list[ParcelResult] = field(default_factory=list)
    lane_counts: dict[str, int] = field(default_factory=dict)
    expected_lane_counts: dict[str, int] = field(default_factory=dict)
    mis_sorts: int = 0
    events_lost: int = 0
    events_doubled: int = 0
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


def station_config(
    scenario: Scenario,
    workdir: Path,
    mqtt_port: int,
    scanner_url: str,
    camera_source: str | None = None,
) -> StationConfig:
    """The station config for a run: the scenario's sections over simulation defaults.

    The defaults include the MFRC522 reader on SPI0.0 (the emulator the run attaches there)
    and, with ``camera_source``, an OpenCV camera reading that generated video file.
    """
    data: dict[str, Any] = {
        "station": {"id": SITE_DEFAULT_STATION, "site": scenario.site, "data_dir": str(workdir)},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "status_interval_s": 1.0},
        "gpio": {"pin_factory": "mock"},
        "photo_eye": {"pin": EYE_PIN, "blocked_level": "high"},
        "scanner": {"url": scanner_url},
        "rfid": {"backend": "mfrc522", "spi_bus": 0, "spi_device": 0, "rst_pin": RFID_RST_PIN},
    }
    if camera_source is not None:
        data["camera"] = {
            "backend": "opencv",
            "source": camera_source,
            "api": "ffmpeg",
            "timestamps": "read",
        }
    for section, values in scenario.station.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    return StationConfig.model_validate(data)


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")


class Run:
    """A scenario run with its processes; use as a context manager.

    Args:
        scenario: the scenario.
        workdir: folder for databases, logs and configs of this run.
    """

    def __init__(self, scenario: Scenario, workdir: Path) -> None:
        self.scenario = scenario
        self.workdir = Path(workdir)
        self.broker = MosquittoBroker(self.workdir / "broker")
        self.gateway: GatewayProcess | None = None
        self.daemon: StationDaemon | None = None
        self.scanner = _PtyScanner()
        self.rfid = attach_rfid_emulator()
        self.http: httpx.Client | None = None
        self.run_tag = uuid.uuid4().hex[:6].upper()

    def __enter__(self) -> Run:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start broker, gateway and station; wait until the station is online."""
        self.broker.start()
        self.gateway = GatewayProcess(
            self.workdir / "gateway", self.broker.port, self.scenario.site
        )
        self.gateway.start()
        self.http = httpx.Client(
            base_url=self.gateway.url, timeout=10, headers={"X-API-Key": self.gateway.api_key}
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        video = write_parcel_video(self.workdir / "camera.avi", CAMERA_FRAMES)  # grade-A parcels
        cfg = station_config(
            self.scenario, self.workdir / "station", self.broker.port, self.scanner.path, str(video)
        )
        self.daemon = StationDaemon(cfg)
        self.daemon.start()
        _wait(self._station_online, 30, "the station to be online at the gateway")

    def stop(self) -> None:
        """Stop station, gateway and broker."""
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None
        if self.http is not None:
            self.http.close()
        if self.gateway is not None:
            self.gateway.stop()
        self.broker.stop()
        self.scanner.close()
        fake_modules.detach_spi(0, 0)

    def _station_online(self) -> bool:
        assert self.http is not None
        items = self.http.get("/api/v1/stations").json()["stations"]
        return any(s["id"] == SITE_DEFAULT_STATION and s["state"] == "online" for s in items)

    def create_rmas(self, count: int) -> list[str]:
        """Create ``count`` RMAs through the gateway API; returns their numbers."""
        assert self.http is not None
        numbers = []
        for i in range(1, count + 1):
            number = f"RMA-{self.run_tag}{i:05d}"
            body = {
                "number": number,
                "order_ref": f"ORD-{self.run_tag}-{i:05d}",
                "reason": "changed_mind",
                "resolution": "refund",
                "lines": [{"sku": f"SKU-{i % 7:03d}", "quantity": 1}],
            }
            resp = self.http.post("/api/v1/rmas", json=body)
            if resp.status_code != 201:
                raise RuntimeError(f"creating {number} failed: {resp.status_code} {resp.text}")
            numbers.append(number)
        return numbers

    def wait_station_synced(self, count: int, timeout_s: float = 30) -> None:
        """Wait until the station's cache holds ``count`` RMAs."""
        assert self.daemon is not None
        daemon = self.daemon
        _wait(lambda: daemon.store.rma_count() >= count, timeout_s, f"{count} RMAs in the cache")

    def belt(self) -> Belt:
        """The belt model wired to the daemon's mock pins and the scanner pty."""
        assert self.daemon is not None
        cfg = self.daemon.config
        factory = self.daemon.pin_factory
        gates = [
            GatePin(lane.name, lane.pos_mm, factory.pin(lane.gate_pin), lane.active_high)
            for lane in cfg.lanes
        ]
        return Belt(
            speed_mm_s=cfg.belt.speed_mm_s,
            length_mm=cfg.belt.length_mm,
            scan_pos_mm=cfg.belt.scan_pos_mm,
            eye_pin=factory.pin(cfg.photo_eye.pin),
            eye_blocked_high=cfg.photo_eye.blocked_level == "high",
            scanner_fd=self.scanner.master,
            gates=gates,
            rfid=self.rfid,
        )

    def gateway_events(self) -> list[dict[str, Any]]:
        """Every parcel event the gateway recorded for the station."""
        assert self.http is not None
        resp = self.http.get(
            "/api/v1/events", params={"station": SITE_DEFAULT_STATION, "limit": 10_000}
        )
        resp.raise_for_status()
        return list(resp.json()["events"])

    def execute(self, on_progress: Callable[[str], None] = lambda _: None) -> Report:
        """Create the RMAs, run the parcels, collect and check the results."""
        assert self.daemon is not None and self.gateway is not None
        sc = self.scenario
        started = time.monotonic()
        on_progress(f"creating {sc.parcels.known} RMAs through the gateway API")
        codes = self.create_rmas(sc.parcels.known)
        self.wait_station_synced(len(codes))
        cfg = self.daemon.config
        restock = next(
            (lane.name for lane in cfg.lanes if lane.disposition == "restock"), "quarantine"
        )
        parcels = plan_parcels(sc.parcels, cfg.belt.speed_mm_s, codes, restock, self.run_tag)
        on_progress(f"running {len(parcels)} parcels on the belt")
        outcomes = self.belt().run(parcels)
        on_progress("waiting for the gateway to record every event")
        with contextlib.suppress(TimeoutError):
            _wait(lambda: len(self.gateway_events()) >= len(parcels), 20, "events at the gateway")
        report = self._report(parcels, outcomes, self.gateway_events())
        report.duration_s = round(time.monotonic() - started, 1)
        report.status_url = self.gateway.url + "/"
        return report

    def _report(
        self, parcels: list[SimParcel], outcomes: dict[int, str], events: list[dict[str, Any]]
    ) -> Report:
        by_parcel: dict[int, list[dict[str, Any]]] = {}
        for ev in events:
            by_parcel.setdefault(int(ev["parcel_id"]), []).append(ev)
        report = Report(self.scenario.name)
        for p in parcels:
            evs = by_parcel.get(p.index, [])
            first = evs[0] if evs else {}
            report.parcels.append(
                ParcelResult(
                    index=p.index,
                    label=p.label,
                    barcode=p.barcode,
                    expected_lane=p.expected_lane,
                    actual_lane=outcomes.get(p.index),
                    station_lane=first.get("lane"),
                    reason=first.get("reason"),
                    events=len(evs),
                )
            )
        report.lane_counts = dict(Counter(r.actual_lane or "lost" for r in report.parcels))
        report.expected_lane_counts = dict(Counter(p.expected_lane for p in parcels))
        report.mis_sorts = sum(r.mis_sorted for r in report.parcels)
        report.events_lost = sum(r.events == 0 for r in report.parcels)
        report.events_doubled = sum(max(0, r.events - 1) for r in report.parcels)
        extra = len(events) - sum(r.events for r in report.parcels)
        if report.mis_sorts:
            report.failures.append(f"{report.mis_sorts} parcel(s) mis-sorted")
        if report.events_lost:
            report.failures.append(
                f"{report.events_lost} parcel event(s) did not reach the gateway"
            )
        if report.events_doubled:
            report.failures.append(f"{report.events_doubled} parcel event(s) recorded twice")
        if extra:
            report.failures.append(f"{extra} event(s) at the gateway for parcels never inducted")
        disagree = [
            r.index for r in report.parcels if r.station_lane and r.station_lane != r.actual_lane
        ]
        if disagree:
            report.failures.append(f"station reported another lane than the belt saw: {disagree}")
        expect = self.scenario.expect
        if expect.lanes is not None and expect.lanes != report.lane_counts:
            report.failures.append(f"lane counts {report.lane_counts} != expected {expect.lanes}")
        return report


@contextlib.contextmanager
def scenario_run(scenario: Scenario, workdir: Path) -> Iterator[Run]:
    """Context manager form of :class:`Run`."""
    with Run(scenario, workdir) as run:
        yield run
