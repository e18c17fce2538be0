"""The station daemon: wires drivers, the sorter core, the scheduler and the MQTT link.

``returns-edge --config station.toml`` runs it until SIGTERM / SIGINT. Gates are
de-energised before the process exits, whatever the way out (signal, error, normal stop).
``returns-edge check-config station.toml`` validates a config and prints a summary (exit 0)
or the errors (exit 2).

At start every configured device is self-tested. A device that fails leaves the station
running degraded and visible in ``status()["devices"]`` (e.g. no RFID: barcode only); a
gate that fails is never used: its lane is left out of the core's belt, so its parcels run
on to quarantine.

Threads: driver callbacks only stamp and enqueue; one reactor thread owns the core; the
scheduler thread fires gates; the link owns the network; the grader thread stores and
grades camera photos (``edge.vision``) off the sort path and hands the grade back to the
reactor, which feeds the core (``on_grade``, and the label barcodes it decoded as camera
reads, ``on_barcode(source="camera")``, when ``belt.camera_pos_mm`` places the camera)
and attaches the photo evidence to the parcel's event.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import uuid
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, cast

from edge.clock import clock_rate, monotonic_ms, utc_now
from edge.config import StationConfig
from edge.drivers.camera import Photo
from edge.drivers.framing import ScanFrame
from edge.drivers.rfid import TagRead, TagReadFailed
from edge.link import StationLink
from edge.metrics import StationMetrics
from edge.scheduler import Scheduler
from edge.sorter import Decision, GateCommand, ParcelExited, SorterCore
from edge.sorter.model import Action, Alarm, BadRead, BeltCommand, GateCancel, Inducted, OrphanRead
from edge.sorter.policy import Policy, policy_from_mapping
from edge.station.camera import CameraStation, make_grader
from edge.station.commands import StationCommands
from edge.station.devices import DeviceBank
from edge.station.events import build_parcel_event
from edge.station.gates import GateBank
from edge.station.status import station_status
from edge.store import StationStore
from protocol import (
    ParcelEvent,
    ProtocolError,
    decode,
    encode,
)
from protocol.policy import DispositionPolicy

if TYPE_CHECKING:
    from edge.vision.worker import GradedPhoto

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
        clock: monotonic ms time source (shared by drivers, core and scheduler); a
            :class:`edge.clock.ScaledClock` runs the station in accelerated time.
        scheduler: the gate scheduler (default: a :class:`Scheduler` on ``clock``).
        on_event: called on the reactor thread with each parcel event right after it was
            committed to the outbox (simulation and tests observe what the station reported).
    """

    def __init__(
        self,
        config: StationConfig,
        clock: Callable[[], float] = monotonic_ms,
        *,
        scheduler: Scheduler | None = None,
        on_event: Callable[[ParcelEvent, ParcelExited], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.on_event = on_event
        data_dir = config.station.data_dir
        self.store = StationStore(data_dir / f"{config.station.id}.db")
        self.scheduler = scheduler if scheduler is not None else Scheduler(clock)
        self.devices = DeviceBank(config, clock)
        self.gates = GateBank(self.devices.gates, self.scheduler, clock)
        self.core = SorterCore(
            config.belt_config(without_lanes=self.devices.broken_lanes()),
            self.store,
            self._cached_policy(),
        )
        grader = None
        if config.camera is not None and self.devices.camera is not None:
            grader = self.devices.try_build(
                "grader",
                "opencv",
                lambda: make_grader(config, lambda: self.core.policy.grading, self._to_utc),
            )
        self.camera = CameraStation(
            config,
            self.core,
            self.devices.camera if self.devices.usable("camera") else None,
            grader,
            lambda payload: self.link.publish_photo(payload),
            clock,
        )
        # Recent history for status and tests; bounded, the station runs for months.
        self.rfid_events: deque[TagRead | TagReadFailed] = deque(maxlen=1000)
        self.lane_input_events: deque[tuple[str, float, bool]] = deque(maxlen=1000)
        self.commands = StationCommands(
            config,
            self.gates,
            has_input=self.devices.lane_inputs.__contains__,
            parcels_on_belt=lambda: int(str(self.core.status()["on_belt"])),
            raise_alarm=lambda alarm: self._inputs.put(("alarm", self.clock(), alarm)),
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
            on_policy=self.apply_policy,
            command_handlers=self.commands.handlers(),
        )
        self._inputs: queue.Queue[tuple[str, float, object]] = queue.Queue()
        self._stop = threading.Event()
        self._reactor: threading.Thread | None = None
        self._stopped = False
        self._mono0 = clock()
        self._utc0 = utc_now()
        self.decisions: deque[Decision] = deque(maxlen=1000)
        self.alarms: dict[str, dict[str, object]] = {}
        self.belt_running = True
        self.metrics = StationMetrics(  # /metrics, served when --metrics-port is set
            config.station.id, lambda: {**self.status(), "link": self.link.status()}
        )

    # -- devices and self-test --------------------------------------------------------
    def _to_utc(self, t_ms: float) -> datetime:
        """UTC time of monotonic ``t_ms``."""
        return self._utc0 + timedelta(milliseconds=t_ms - self._mono0)

    def capabilities(self) -> list[str]:
        """What the station can do now (see :meth:`DeviceBank.capabilities`)."""
        return self.devices.capabilities()

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        """Start scheduler, reactor, drivers and link."""
        self.scheduler.start()
        self._reactor = threading.Thread(target=self._run, name="reactor", daemon=True)
        self._reactor.start()
        if self.devices.photo_eye is not None:
            self.devices.photo_eye.start(self._on_eye_edge)
        self.devices.scanner.start(lambda frame: self._inputs.put(("scan", frame.t_ms, frame)))
        if self.devices.rfid is not None and self.devices.usable("rfid"):
            self.devices.rfid.start(lambda ev: self._inputs.put(("rfid", ev.t_ms, ev)))
        self.camera.start(
            lambda p: self._inputs.put(("photo", p.t_trigger_ms, p)),
            lambda r: self._inputs.put(("graded", r.photo.t_trigger_ms, r)),
        )
        for name, device in self.devices.lane_inputs.items():
            device.start(functools.partial(self._on_lane_input, name))
        self.link.start()
        if "belt_run" in self.devices.outputs:
            self.devices.outputs["belt_run"].set(True)
        self.update_stack_light()
        log.info("station %s started", self.config.station.id)

    def _on_lane_input(self, name: str, t_ms: float, active: bool) -> None:
        lane, kind = name.rsplit(".", 1)
        if kind == "confirm" and active:
            self.gates.confirmed(lane, t_ms)  # a gate test waits for it on another thread
        self._inputs.put(("lane_input", t_ms, (name, active)))

    def _on_eye_edge(self, t_ms: float, blocked: bool) -> None:
        """Photo-eye raw edge (driver thread): enqueue for the core, which debounces it."""
        self._inputs.put(("eye", t_ms, blocked))

    def alive(self) -> bool:
        """True while the reactor and the gate scheduler threads run (the watchdog's test)."""
        threads = (self._reactor, getattr(self.scheduler, "_thread", None))
        return not self._stopped and all(t is not None and t.is_alive() for t in threads)

    def update_stack_light(self) -> None:
        """Green: sorting, all devices ok. Amber: degraded. Red: cannot sort (no induct)."""
        lamps = {
            name: out
            for name, out in self.devices.outputs.items()
            if name.startswith("stack_light")
        }
        if not lamps:
            return
        degraded = bool(self.status()["degraded"])
        fatal = self._stopped or not self.belt_running or "induct" not in self.capabilities()
        wanted = {
            "stack_light.green": not fatal and not degraded,
            "stack_light.amber": not fatal and degraded,
            "stack_light.red": fatal,
        }
        for name, out in lamps.items():
            out.set(wanted.get(name, False))

    def stop(self) -> None:
        """Stop safely: gates de-energised first, then drivers, threads and link."""
        if self._stopped:
            return
        self._stopped = True
        self.gates.release_all()
        if "belt_run" in self.devices.outputs:
            self.devices.outputs["belt_run"].set(False)
        self.scheduler.stop()
        self.gates.release_all()  # a close that raced the scheduler's last firing
        self._stop.set()
        if self._reactor is not None:
            self._reactor.join(timeout=2)
        self.devices.stop_readers()
        self.camera.stop()
        self.link.stop()
        self.devices.close()
        self.store.close()
        log.info("station %s stopped", self.config.station.id)

    # -- status ---------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        """JSON-able status of every component (:func:`edge.station.status.station_status`)."""
        return station_status(
            self.devices,
            self.core,
            self.scheduler,
            self.store,
            grader=self.camera.grader,
            alarms=self.alarms,
            belt_running=self.belt_running,
        )

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
        if kind == "alarm" and isinstance(payload, Alarm):
            return [payload, *core.advance(self.clock())]
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

    # -- reactor --------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            wake = self.core.next_wakeup_ms()
            rate = clock_rate(self.clock)
            timeout = (
                0.05 if wake is None else max(0.0, min(0.05, (wake - self.clock()) / 1e3 / rate))
            )
            try:
                kind, t_ms, payload = self._inputs.get(timeout=timeout)
            except queue.Empty:
                kind, t_ms, payload = "tick", self.clock(), None
            try:
                if kind == "eye":
                    actions = self.core.on_photo_eye(t_ms, bool(payload))
                elif kind == "scan" and isinstance(payload, ScanFrame):
                    actions = self.core.on_barcode(t_ms, payload.code, payload.symbology)
                elif kind == "rfid" and isinstance(payload, TagRead | TagReadFailed):
                    actions = self._feed_rfid(t_ms, payload)
                elif kind == "photo" and isinstance(payload, Photo):
                    self.camera.photo(payload)
                    actions = self.core.advance(self.clock())
                elif kind == "graded":
                    actions = self.camera.graded(cast("GradedPhoto", payload))
                elif kind == "lane_input" and isinstance(payload, tuple):
                    actions = self._feed_lane_input(t_ms, payload[0], bool(payload[1]))
                else:
                    actions = self._dispatch(kind, t_ms, payload)
                for action in actions:
                    self._handle(action)
            except Exception:
                log.exception("reactor failed on %s input", kind)

    # -- driver-side plumbing for core inputs that arrive with issue 3 ----------------
    def _feed_rfid(self, t_ms: float, event: TagRead | TagReadFailed) -> list[Any]:
        """An RFID read (canonical UID) or a failed read, on the reactor thread.

        A failed read is kept for status only: the core decides by its own deadline
        (``rfid_timeout`` when the tag was required).
        """
        self.rfid_events.append(event)
        if isinstance(event, TagRead):
            return list(self.core.on_rfid(t_ms, event.uid))
        return list(self.core.advance(t_ms))

    def _feed_lane_input(self, t_ms: float, name: str, active: bool) -> list[Any]:
        """Divert-confirm / lane-full raw edge (``"<lane>.confirm"``, ``"<lane>.full"``)."""
        self.lane_input_events.append((name, t_ms, active))
        lane, kind = name.rsplit(".", 1)
        if kind == "confirm":
            if active:
                return list(self.core.on_divert_confirm(t_ms, lane))
            return list(self.core.advance(t_ms))
        return list(self.core.on_lane_full(t_ms, lane, active))

    def _handle(self, action: object) -> None:
        if isinstance(action, Inducted):
            self.camera.inducted(action.parcel_id, action.t_ms)
        elif isinstance(action, GateCommand):
            self.gates.schedule(action)
        elif isinstance(action, GateCancel):
            self.gates.cancel(action.parcel_id, action.gate)
        elif isinstance(action, BeltCommand):
            self.belt_running = action.run
            if "belt_run" in self.devices.outputs:
                self.devices.outputs["belt_run"].set(action.run)
            self.update_stack_light()
            log.warning("belt %s (%s)", "run" if action.run else "STOP", action.reason)
            self.link.request_status()
        elif isinstance(action, Alarm):
            key = action.kind if action.lane is None else f"{action.kind}:{action.lane}"
            if action.active:
                self.alarms[key] = {"parcel_id": action.parcel_id, "lane": action.lane}
                log.error("alarm %s raised (parcel %s)", key, action.parcel_id)
            else:
                self.alarms.pop(key, None)
                log.info("alarm %s cleared", key)
            self.link.request_status()  # the status page shows it now, not at the interval
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
            graded = self.camera.take(action.decision.parcel_id)
            event = build_parcel_event(
                action, self.config.station.id, self._to_utc, graded, event_id=uuid.uuid4().hex
            )
            self.link.publish_event(encode(event))
            d = action.decision
            self.metrics.parcel_exited(
                action.final_lane.name, d.reason.value, d.decided_at_ms - action.inducted_at_ms
            )
            if self.on_event is not None:
                self.on_event(event, action)
        elif isinstance(action, OrphanRead):
            log.warning("read %r matches no parcel in the scan tunnel", action.code)
