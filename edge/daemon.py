"""The station daemon: wires drivers, the sorter core, the scheduler and the MQTT link.

``returns-edge --config station.toml`` runs it until SIGTERM / SIGINT. Gates are
de-energised before the process exits, whatever the way out (signal, error, normal stop).

Threads: driver callbacks only stamp and enqueue; one reactor thread owns the core; the
scheduler thread fires gates; the link owns the network.
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from types import FrameType

from edge.clock import monotonic_ms, utc_now
from edge.config import ConfigError, StationConfig, load_config
from edge.drivers.framing import ScanFrame
from edge.drivers.gpiozero_io import GpiozeroDiverterGate, GpiozeroPhotoEye, make_pin_factory
from edge.drivers.pyserial_scanner import PySerialScanner
from edge.link import StationLink
from edge.scheduler import Scheduler
from edge.sorter import Decision, GateCommand, ParcelExited, SorterCore
from edge.sorter.model import OrphanRead
from edge.store import StationStore
from protocol import ParcelEvent, encode

log = logging.getLogger(__name__)


def software_version() -> str:
    """Installed package version of returns-sorter."""
    try:
        return version("returns-sorter")
    except PackageNotFoundError:
        return "0+unknown"


class StationDaemon:
    """One returns station.

    Args:
        config: the validated station config.
        clock: monotonic ms time source (shared by drivers, core and scheduler).
    """

    def __init__(self, config: StationConfig, clock: Callable[[], float] = monotonic_ms) -> None:
        self.config = config
        self.clock = clock
        data_dir = config.station.data_dir
        self.store = StationStore(data_dir / f"{config.station.id}.db")
        self.core = SorterCore(config.belt_config(), self.store)
        self.scheduler = Scheduler(clock)
        self.pin_factory = make_pin_factory(config.gpio.pin_factory)
        self.gates = {
            lane.name: GpiozeroDiverterGate(
                lane.name, lane.gate_pin, lane.active_high, self.pin_factory
            )
            for lane in config.lanes
        }
        self.photo_eye = GpiozeroPhotoEye(
            config.photo_eye.pin, config.photo_eye.blocked_level, self.pin_factory, clock
        )
        sc = config.scanner
        self.scanner = PySerialScanner(
            sc.url,
            baudrate=sc.baudrate,
            suffix=sc.suffix,
            inter_byte_timeout_ms=sc.inter_byte_timeout_ms,
            clock=clock,
        )
        self.link = StationLink(
            site=config.station.site,
            station=config.station.id,
            host=config.mqtt.host,
            port=config.mqtt.port,
            store=self.store,
            status_provider=self.status,
            software_version=software_version(),
            config_hash=config.config_hash,
            keepalive_s=config.mqtt.keepalive_s,
            status_interval_s=config.mqtt.status_interval_s,
            username=config.mqtt.username,
            password=config.mqtt.password,
            tls_ca=str(config.mqtt.tls_ca) if config.mqtt.tls_ca else None,
            tls_cert=str(config.mqtt.tls_cert) if config.mqtt.tls_cert else None,
            tls_key=str(config.mqtt.tls_key) if config.mqtt.tls_key else None,
        )
        self._inputs: queue.Queue[tuple[str, float, object]] = queue.Queue()
        self._stop = threading.Event()
        self._reactor: threading.Thread | None = None
        self._stopped = False
        self._mono0 = clock()
        self._utc0 = utc_now()
        self.decisions: list[Decision] = []

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        """Start scheduler, reactor, drivers and link."""
        self.scheduler.start()
        self._reactor = threading.Thread(target=self._run, name="reactor", daemon=True)
        self._reactor.start()
        self.photo_eye.start(lambda t, blocked: self._inputs.put(("eye", t, blocked)))
        self.scanner.start(lambda frame: self._inputs.put(("scan", frame.t_ms, frame)))
        self.link.start()
        log.info("station %s started", self.config.station.id)

    def stop(self) -> None:
        """Stop safely: gates de-energised first, then drivers, threads and link."""
        if self._stopped:
            return
        self._stopped = True
        self.release_all_gates()
        self.scheduler.stop()
        self.release_all_gates()  # a close that raced the scheduler's last firing
        self._stop.set()
        if self._reactor is not None:
            self._reactor.join(timeout=2)
        self.scanner.stop()
        self.link.stop()
        for gate in self.gates.values():
            gate.close()
        self.photo_eye.close()
        self.store.close()
        log.info("station %s stopped", self.config.station.id)

    def release_all_gates(self) -> None:
        """De-energise every gate (fail safe: parcels run on to quarantine)."""
        for gate in self.gates.values():
            try:
                gate.release()
            except Exception:
                log.exception("could not release gate %s", gate.name)

    # -- status ---------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        """JSON-able status of every component."""
        scanner = self.scanner.status()
        return {
            "degraded": scanner.get("state") != "ok",
            "core": self.core.status(),
            "scanner": scanner,
            "photo_eye": self.photo_eye.status(),
            "gates": {name: gate.status() for name, gate in self.gates.items()},
            "scheduler": self.scheduler.status(),
            "rma_revision": self.store.rma_revision(),
            "config_hash": self.config.config_hash,
        }

    # -- reactor --------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            wake = self.core.next_wakeup_ms()
            timeout = 0.05 if wake is None else max(0.0, min(0.05, (wake - self.clock()) / 1e3))
            try:
                kind, t_ms, payload = self._inputs.get(timeout=timeout)
            except queue.Empty:
                kind, t_ms, payload = "tick", self.clock(), None
            try:
                if kind == "eye":
                    actions = self.core.on_photo_eye(t_ms, bool(payload))
                elif kind == "scan" and isinstance(payload, ScanFrame):
                    actions = self.core.on_barcode(t_ms, payload.code)
                else:
                    actions = self.core.advance(self.clock())
                for action in actions:
                    self._handle(action)
            except Exception:
                log.exception("reactor failed on %s input", kind)

    def _handle(self, action: object) -> None:
        if isinstance(action, GateCommand):
            gate = self.gates[action.gate]
            self.scheduler.call_at(action.open_at_ms, gate.energise)
            self.scheduler.call_at(action.close_at_ms, gate.release)
        elif isinstance(action, Decision):
            self.decisions.append(action)
            log.info(
                "parcel %d -> %s (%s)",
                action.parcel_id,
                action.lane.name,
                action.reason,
                extra={"parcel_id": action.parcel_id, "rma": action.rma_number},
            )
        elif isinstance(action, ParcelExited):
            self.link.publish_event(encode(self._event(action)))
        elif isinstance(action, OrphanRead):
            log.warning("read %r matches no parcel in the scan tunnel", action.code)

    def _event(self, exited: ParcelExited) -> ParcelEvent:
        d = exited.decision
        inducted = self._utc0 + timedelta(milliseconds=exited.inducted_at_ms - self._mono0)
        return ParcelEvent(
            event_id=uuid.uuid4().hex,
            station=self.config.station.id,
            parcel_id=d.parcel_id,
            inducted_at=inducted,
            length_mm=round(exited.length_mm, 1),
            barcode=d.reads[0] if d.reads else None,
            rma_number=d.rma_number,
            lane=d.lane.name,
            disposition=d.disposition.value,
            reason=d.reason.value,
            diverted=d.lane.gate is not None,
        )


def main(argv: list[str] | None = None) -> int:
    """Console entry ``returns-edge --config station.toml``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="returns-edge", description=__doc__)
    parser.add_argument("--config", required=True, help="station TOML file")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"returns-edge: {exc}", file=sys.stderr)
        return 2
    daemon = StationDaemon(config)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        daemon.release_all_gates()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        daemon.start()
        while not stop.wait(0.5):
            pass
    finally:
        daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
