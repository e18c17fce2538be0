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
from edge.sorter.model import Action, Alarm, BadRead, BeltCommand, GateCancel, OrphanRead
from edge.sorter.policy import Policy, policy_from_mapping
from edge.store import StationStore
from protocol import ParcelEvent, ProtocolError, decode, encode
from protocol.policy import DispositionPolicy

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
        self.core = SorterCore(config.belt_config(), self.store, self._cached_policy())
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
            keepalive_s=config.mqtt.keepalive_s,
            status_interval_s=config.mqtt.status_interval_s,
            username=config.mqtt.username,
            password=config.mqtt.password,
        )
        self._inputs: queue.Queue[tuple[str, float, object]] = queue.Queue()
        self._stop = threading.Event()
        self._reactor: threading.Thread | None = None
        self._stopped = False
        self._mono0 = clock()
        self._utc0 = utc_now()
        self.decisions: list[Decision] = []
        self.alarms: dict[str, dict[str, object]] = {}
        self.belt_running = True
        self._cancelled: set[int] = set()
        self._holds: dict[str, set[int]] = {}
        self._holds_lock = threading.Lock()

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
            "alarms": dict(self.alarms),
            "belt_running": self.belt_running,
            "rma_revision": self.store.rma_revision(),
            "config_hash": self.config.config_hash,
        }

    # -- inputs beyond photo-eye and scanner -----------------------------------------
    def submit(self, kind: str, payload: object, t_ms: float | None = None) -> None:
        """Queue an input for the core (thread-safe; driver callbacks and commands).

        ``kind``: ``rfid`` (UID str), ``grade`` ((grade, confidence, parcel_id | None)),
        ``confirm`` (lane name), ``lane_full`` ((lane name, bool)), ``encoder`` (count),
        ``resume`` (None: the operator's resume command after a jam). The RFID reader,
        camera, confirm / lane-full inputs and the belt-run output are wired by the driver
        work; until then they are fed through this method.
        """
        self._inputs.put((kind, self.clock() if t_ms is None else t_ms, payload))

    def _dispatch(self, kind: str, t_ms: float, payload: object) -> list[Action]:
        core = self.core
        if kind == "rfid" and isinstance(payload, str):
            return core.on_rfid(t_ms, payload)
        if kind == "grade" and isinstance(payload, tuple):
            grade, confidence, parcel_id = payload
            return core.on_grade(t_ms, str(grade), float(confidence), parcel_id)
        if kind == "confirm" and isinstance(payload, str):
            return core.on_divert_confirm(t_ms, payload)
        if kind == "lane_full" and isinstance(payload, tuple):
            return core.on_lane_full(t_ms, str(payload[0]), bool(payload[1]))
        if kind == "encoder" and isinstance(payload, int):
            return core.on_encoder(t_ms, payload)
        if kind == "resume":
            return core.on_resume(t_ms)
        if kind == "policy" and isinstance(payload, Policy):
            core.policy = payload
            log.info("disposition policy %s applied", payload.version)
        return core.advance(self.clock())

    def _cached_policy(self) -> Policy | None:
        """The policy last pushed by the gateway, from the store; None: the default."""
        payload = self.store.load_policy()
        if payload is None:
            return None
        try:
            return policy_from_mapping(decode(payload, DispositionPolicy).model_dump())
        except (ProtocolError, ValueError):
            log.exception("cached disposition policy is invalid; using the default")
            return None

    def apply_policy(self, payload: bytes | str) -> str:
        """Validate, cache and apply a disposition policy pushed by the gateway.

        Thread-safe: the core switches policy on the reactor thread, before its next
        input; parcels already decided keep their decision. Returns the policy version.

        Raises:
            ProtocolError: when the payload is not a valid ``DispositionPolicy``.
            ValueError: when the table breaks a fail-safe rule (see ``edge.sorter.policy``).
        """
        message = decode(payload, DispositionPolicy)
        policy = policy_from_mapping(message.model_dump())
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        self.store.save_policy(policy.version, text)
        self._inputs.put(("policy", self.clock(), policy))
        return policy.version

    def _fire(self, command: GateCommand, energise: bool) -> None:
        """Hold / unhold ``command.gate`` for its parcel; energised while any hold is on."""
        gate = self.gates[command.gate]
        with self._holds_lock:
            holds = self._holds.setdefault(command.gate, set())
            if energise and command.parcel_id not in self._cancelled:
                holds.add(command.parcel_id)
                gate.energise()
            elif not energise:
                holds.discard(command.parcel_id)
                if not holds:
                    gate.release()

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
                    actions = self.core.on_barcode(t_ms, payload.code, payload.symbology)
                else:
                    actions = self._dispatch(kind, t_ms, payload)
                for action in actions:
                    self._handle(action)
            except Exception:
                log.exception("reactor failed on %s input", kind)

    def _handle(self, action: object) -> None:
        if isinstance(action, GateCommand):
            self.scheduler.call_at(action.open_at_ms, lambda: self._fire(action, True))
            self.scheduler.call_at(action.close_at_ms, lambda: self._fire(action, False))
        elif isinstance(action, GateCancel):
            with self._holds_lock:
                self._cancelled.add(action.parcel_id)
                holds = self._holds.setdefault(action.gate, set())
                holds.discard(action.parcel_id)
                if not holds:
                    self.gates[action.gate].release()
            log.warning("gate %s withdrawn for parcel %d", action.gate, action.parcel_id)
        elif isinstance(action, BeltCommand):
            # The belt-run output is a stub until the drivers work adds it.
            self.belt_running = action.run
            log.warning("belt %s (%s)", "run" if action.run else "STOP", action.reason)
        elif isinstance(action, Alarm):
            key = action.kind if action.lane is None else f"{action.kind}:{action.lane}"
            if action.active:
                self.alarms[key] = {"parcel_id": action.parcel_id, "lane": action.lane}
                log.error("alarm %s raised (parcel %s)", key, action.parcel_id)
            else:
                self.alarms.pop(key, None)
                log.info("alarm %s cleared", key)
        elif isinstance(action, BadRead):
            log.warning("bad %s read %r: %s", action.source, action.value, action.error)
        elif isinstance(action, Decision):
            self.decisions.append(action)
            log.info(
                "parcel %d -> %s (%s) %s",
                action.parcel_id,
                action.lane.name,
                action.reason,
                action.explanation,
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
            lane=exited.final_lane.name,
            disposition=exited.final_lane.disposition.value,
            reason=d.reason.value,
            diverted=exited.final_lane.gate is not None,
            marks=tuple(m.value for m in exited.marks),
            policy_version=d.policy_version or None,
            explanation=d.explanation[:1000] or None,
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
