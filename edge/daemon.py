"""The station daemon: wires the devices, the sorter core, the gates and the MQTT link.

The homes it wires (:mod:`edge.station`): :class:`~edge.station.devices.DeviceBank`
builds, self-tests and closes every device through the driver registry;
:class:`~edge.station.gates.GateBank` is the only code that energises a gate;
:class:`~edge.station.camera.CameraStation` photographs each inducted parcel and brings its
grade back by parcel id; :func:`~edge.station.events.build_parcel_event` makes the parcel
event; :class:`~edge.station.commands.StationCommands` runs the gateway's commands;
:func:`~edge.station.status.station_status` assembles the status. The command line is
:mod:`edge.cli` (``returns-edge``).

A device that fails its self-test leaves the station running degraded and visible in
``status()["devices"]`` (e.g. no RFID: barcode only); a gate that fails is never used: its
lane is left out of the core's belt, so its parcels run on to quarantine.

Threads: driver callbacks only stamp and :meth:`StationDaemon.submit` typed inputs
(:mod:`edge.station.inputs`; lane inputs, gate-link faults, encoder samples, reset and
E-stop, which stops gates and belt at once: :mod:`edge.station.controls`); the
checkweigher's readings go through a :class:`~edge.drivers.scale.WeighingDetector` on its
reader thread, and each weighing is an input like a scan; one reactor thread owns the core,
feeds it each input with one ``match`` and carries out the actions it returns; the
scheduler thread fires gates (through the GateBank); the link owns the network and runs
commands; the grader thread grades photos off the sort path.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections import deque
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, assert_never

from edge.clock import UtcClock, clock_rate, monotonic_ms
from edge.config import StationConfig
from edge.drivers.camera import Photo
from edge.drivers.framing import ScanFrame
from edge.drivers.rfid import TagRead, TagReadFailed
from edge.drivers.scale import Weighing
from edge.link import StationLink
from edge.metrics import StationMetrics
from edge.scheduler import Scheduler
from edge.sorter import Decision, GateCommand, ParcelExited, SorterCore
from edge.sorter.model import Action, Alarm, BadRead, BeltCommand, GateCancel, Inducted, OrphanRead
from edge.station.camera import camera_station
from edge.station.commands import StationCommands
from edge.station.controls import PhysicalControls
from edge.station.devices import DeviceBank
from edge.station.events import build_parcel_event
from edge.station.gates import GateBank
from edge.station.inputs import (
    ApplyPolicy,
    BeltHold,
    EncoderCount,
    EyeEdge,
    GateLate,
    Grade,
    LaneInput,
    PhotoGraded,
    RaiseAlarm,
    Resume,
    StationInput,
    Tick,
)
from edge.station.policy import cached_policy, parse_policy
from edge.station.status import station_health, station_status
from edge.store import StationStore
from protocol import ParcelEvent, encode

__all__ = ["StationDaemon", "software_version"]

log = logging.getLogger(__name__)

HISTORY = 1000  # recent decisions, RFID events and lane inputs kept for status and tests


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
        scheduler: the gate scheduler (default: a :class:`Scheduler` on ``clock`` at the
            belt's real-time priority and CPU, see :meth:`GateBank.for_station`).
        on_event: called on the reactor thread with each parcel event right after it was
            committed to the outbox (simulation and tests observe what the station reported).

    Attributes:
        devices, gates, controls, camera, commands, core, link, store, scheduler, metrics:
            the station's parts. ``utc``: the UTC time of monotonic times (for records).
        decisions / rfid_events / lane_input_events: recent history (bounded).
        alarms: raised alarms by ``kind`` or ``kind:lane``. belt_running: the belt's state.
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
        self.utc = UtcClock(clock)
        self.decisions: deque[Decision] = deque(maxlen=HISTORY)
        self.rfid_events: deque[TagRead | TagReadFailed] = deque(maxlen=HISTORY)
        self.lane_input_events: deque[LaneInput] = deque(maxlen=HISTORY)
        self.alarms: dict[str, dict[str, object]] = {}
        self.belt_running = True
        self._inputs: queue.Queue[StationInput] = queue.Queue()
        self._stop = threading.Event()
        self._reactor: threading.Thread | None = None
        self._stopped = False
        self.store = StationStore(config.station.data_dir / f"{config.station.id}.db")
        self.devices = DeviceBank(config, clock)
        self.gates = GateBank.for_station(
            self.devices.gates, config.belt, clock, self.submit, scheduler
        )
        self.scheduler = self.gates.scheduler
        self.controls = PhysicalControls(self.devices, self.gates, self.submit, clock)
        self.core = SorterCore(self.devices.belt_config(), self.store, cached_policy(self.store))
        self.camera = camera_station(
            config,
            self.core,
            self.devices,
            self.utc.to_utc,
            lambda payload: self.link.publish_photo(payload),
            clock,
        )
        self.commands = StationCommands(
            config,
            self.gates,
            has_input=self.devices.lane_inputs.__contains__,
            parcels_on_belt=lambda: int(str(self.core.status()["on_belt"])),
            raise_alarm=lambda alarm: self.submit(RaiseAlarm(alarm)),
            clock=clock,
            submit=self.submit,
            estop_engaged=lambda: self.controls.estop_engaged,
            load_policy=lambda: cached_policy(self.store),
        )
        self.link = StationLink.for_station(
            config,
            self.store,
            software_version=software_version(),
            status_provider=lambda: station_health(self.status()),
            on_policy=self.apply_policy,
            command_handlers=self.commands.handlers(),
        )
        self.metrics = StationMetrics(  # /metrics, served when --metrics-port is set
            config.station.id, lambda: {**self.status(), "link": self.link.status()}
        )
        if self.scheduler.on_fired is None:
            self.scheduler.on_fired = self.metrics.gate_fired
        self.opcua: Any = None  # edge.opcua.StationOpcuaServer while [opcua] is configured

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start scheduler, reactor, drivers and link; the belt runs (unless E-stopped)."""
        self.scheduler.start()
        self._reactor = threading.Thread(target=self._run, name="reactor", daemon=True)
        self._reactor.start()
        devices, submit = self.devices, self.submit
        if devices.photo_eye is not None:
            devices.photo_eye.start(lambda t_ms, blocked: submit(EyeEdge(t_ms, blocked)))
        devices.scanner.start(submit)
        if devices.rfid is not None and devices.usable("rfid"):
            devices.rfid.start(submit)
        self.camera.start(submit, lambda result: submit(PhotoGraded(result)))
        devices.start_scale(submit)
        self.controls.start()
        self.link.start()
        if self.config.opcua is not None:  # the plant's SCADA (asyncua: the opcua extra)
            from edge.opcua import serve_opcua

            self.opcua = serve_opcua(self, self.config.opcua)
        self.controls.drive_belt(True)  # not while the E-stop is engaged
        self.update_stack_light()
        log.info("station %s started", self.config.station.id)

    def stop(self) -> None:
        """Stop safely: gates de-energised first, then drivers, threads and link."""
        if self._stopped:
            return
        self._stopped = True
        self.gates.release_all()
        self.devices.set_output("belt_run", False)
        self.scheduler.stop()
        self.gates.release_all()  # a close that raced the scheduler's last firing
        self._stop.set()
        self.controls.stop()
        if self._reactor is not None:
            self._reactor.join(timeout=2)
        self.devices.stop_readers()
        self.camera.stop()
        if self.opcua is not None:
            self.opcua.stop()
        self.link.stop()
        self.devices.close()
        self.store.close()
        log.info("station %s stopped", self.config.station.id)

    def alive(self) -> bool:
        """True while the reactor and the gate scheduler threads run (the watchdog's test)."""
        reactor = self._reactor is not None and self._reactor.is_alive()
        return not self._stopped and reactor and self.scheduler.alive()

    # -- state ----------------------------------------------------------------------------
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
            controls=self.controls.status(),
            clock=self.utc.status(),
        )

    def update_stack_light(self) -> None:
        """Green: sorting, all devices ok. Amber: degraded. Red: cannot sort (no induct)."""
        if not any(name.startswith("stack_light.") for name in self.devices.outputs):
            return
        induct = "induct" in self.devices.capabilities()
        fatal = self._stopped or not self.belt_running or not induct
        self.devices.set_stack_light(fatal=fatal, degraded=bool(self.status()["degraded"]))

    # -- inputs ---------------------------------------------------------------------------
    def submit(self, item: StationInput) -> None:
        """Queue an input for the core (thread-safe)."""
        self._inputs.put(item)

    def apply_policy(self, payload: bytes | str) -> str:
        """Validate, cache and apply a disposition policy pushed by the gateway.

        Thread-safe (the reactor switches before its next input; decided parcels keep
        theirs). Returns the policy version.

        Raises:
            ProtocolError: when the payload is not a valid ``DispositionPolicy``.
            ValueError: when the table breaks a fail-safe rule (see ``edge.sorter.policy``).
        """
        policy, text = parse_policy(payload)
        self.store.save_policy(policy.version, text)
        self.submit(ApplyPolicy(policy))
        return policy.version

    # -- reactor --------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            wake = self.core.next_wakeup_ms()
            rate = clock_rate(self.clock)
            timeout = (
                0.05 if wake is None else max(0.0, min(0.05, (wake - self.clock()) / 1e3 / rate))
            )
            try:
                item: StationInput = self._inputs.get(timeout=timeout)
            except queue.Empty:
                item = Tick()
            try:
                for action in self.feed(item):
                    self.execute(action)
            except Exception:
                log.exception("reactor failed on %s", type(item).__name__)

    def feed(self, item: StationInput) -> list[Action]:
        """Hand one input to the core (reactor thread); returns the core's actions."""
        core = self.core
        match item:
            case EyeEdge(t_ms, blocked):
                return core.on_photo_eye(t_ms, blocked)
            case ScanFrame(code=code, symbology=symbology, t_ms=t_ms):
                return core.on_barcode(
                    t_ms, code, symbology, latency_ms=item.latency_ms, late=item.late
                )
            case TagRead(uid=uid, t_ms=t_ms, duration_ms=duration_ms):
                self.rfid_events.append(item)  # the tag answered within the poll
                return core.on_rfid(t_ms + duration_ms, uid, latency_ms=duration_ms)
            case TagReadFailed(t_ms=t_ms):  # kept for status; the core decides by its deadline
                self.rfid_events.append(item)
                return core.advance(t_ms)
            case Photo():
                self.camera.photo(item)
                return core.advance(self.clock())
            case Weighing(t_ms=t_ms, t_end_ms=t_end_ms, weight_g=grams, problem=problem):
                return core.on_weighing(t_ms, t_end_ms, grams, problem)
            case PhotoGraded(result):
                return self.camera.graded(result)
            case Grade(t_ms, grade, confidence, parcel_id):
                return core.on_grade(t_ms, grade, confidence, parcel_id)
            case LaneInput(t_ms, lane, kind, active):
                self.lane_input_events.append(item)
                if kind == "full":
                    return core.on_lane_full(t_ms, lane, active)
                if kind == "fault":
                    return core.on_gate_fault(t_ms, lane, active)
                return core.on_divert_confirm(t_ms, lane) if active else core.advance(t_ms)
            case EncoderCount(t_ms, count):
                return core.on_encoder(t_ms, count)
            case GateLate(t_ms, parcel_id, _, late_ms):
                return core.on_gate_late(t_ms, parcel_id, late_ms)
            case Resume(t_ms):
                return core.on_resume(t_ms)
            case BeltHold(t_ms, reason, active):
                return core.hold(t_ms, reason) if active else core.release(t_ms, reason)
            case ApplyPolicy(policy):
                core.policy = policy
                log.info("disposition policy %s applied", policy.version)
                return core.advance(self.clock())
            case RaiseAlarm(alarm):
                return [alarm, *core.advance(self.clock())]
            case Tick():
                return core.advance(self.clock())
            case _:
                assert_never(item)

    def execute(self, action: Action) -> None:
        """Carry out one of the core's actions (reactor thread)."""
        match action:
            case Inducted(parcel_id, t_ms):
                self.camera.inducted(parcel_id, t_ms)
            case GateCommand():
                self.gates.schedule(action)
            case GateCancel(parcel_id, gate):
                self.gates.cancel(parcel_id, gate)
            case BeltCommand(run, _, reason):
                self.belt_running = self.controls.drive_belt(run)
                self.update_stack_light()
                log.warning("belt %s (%s)", "run" if self.belt_running else "STOP", reason)
                self.link.request_status()
            case Alarm():
                self._alarm(action)
            case BadRead(source, value, _, error):
                log.warning("bad %s read %r: %s", source, value, error)
            case Decision():
                self.decisions.append(action)
                log.info(
                    "parcel %d -> %s (%s) %s",
                    action.parcel_id,
                    action.lane.name,
                    action.reason,
                    action.explanation,
                    extra={"parcel_id": action.parcel_id, "rma": action.rma_number},
                )
            case ParcelExited():
                self._report(action)
            case OrphanRead(code):
                log.warning("read %r matches no parcel in the scan tunnel", code)
            case _:
                assert_never(action)

    def _alarm(self, alarm: Alarm) -> None:  # raised / cleared; shown by the status page now
        key = alarm.kind if alarm.lane is None else f"{alarm.kind}:{alarm.lane}"
        if alarm.active:
            self.alarms[key] = {"parcel_id": alarm.parcel_id, "lane": alarm.lane}
            log.error("alarm %s raised (parcel %s)", key, alarm.parcel_id)
        else:
            self.alarms.pop(key, None)
            log.info("alarm %s cleared", key)
        self.link.request_status()

    def _report(self, exited: ParcelExited) -> None:
        """The parcel left the belt: its event into the outbox, metrics, the observer.

        The RMA units the parcel claimed are written as receipts in the outbox row's
        transaction (``StationLink.publish_event``), so a restart, SIGKILL included, never
        claims them again.
        """
        d = exited.decision
        event = build_parcel_event(
            exited,
            self.config.station.id,
            self.utc.to_utc,
            self.camera.take(d.parcel_id),
            event_id=uuid.uuid4().hex,
        )
        self.link.publish_event(encode(event), d.rma_number, exited.units)
        self.metrics.parcel_exited(
            exited.final_lane.name, d.reason.value, d.decided_at_ms - exited.inducted_at_ms
        )
        if self.on_event is not None:
            self.on_event(event, exited)
