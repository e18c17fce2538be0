"""The station as a child process: the real daemon on simulated pins, driven over a socket.

``python -m simulator.station_proc CONFIG.json RATE ORIGIN_NS CMD_FD EVT_FD`` runs the real
:class:`~edge.daemon.StationDaemon` (config from JSON, the station TOML's sections) on
gpiozero ``MockFactory`` pins, with an MFRC522 emulator on the fake SPI bus, on a
:class:`~edge.clock.ScaledClock` (``RATE``; ``ORIGIN_NS`` shared with the parent so both
see one virtual time). The belt in the parent process reaches the lowest hardware layer
through the command socket (one JSON object per line, one reply line each):

* ``{"op": "eye", "blocked": true, "t_ms": 1234.5}``: the induct photo-eye's pin, driven
  as of ``t_ms`` (the belt's physical edge time, station ms; now when null) through
  :class:`simulator.hw.pins.TimedMockPin` (``GPIOZERO_MOCK_PIN_CLASS=timed`` by default);
* ``{"op": "tag", "uid": "04A1...", "present": true}``: a tag in or out of the reader's field;
* ``{"op": "gate", "lane": "restock", "t_ms": 1234.5}`` -> ``{"energised": bool}``: a gate
  output's level at ``t_ms`` (when the parcel physically reached it; now when null);
* ``{"op": "lane_full", "lane": "restock", "full": true}``: the lane-full input;
* ``{"op": "skew", "seconds": 3600}``: the station's system clock is stepped, as NTP does
  (the station detects the step; records follow it, timing is monotonic);
* ``{"op": "camera_fail"}``: the camera stops delivering frames;
* ``{"op": "belt_run"}`` -> ``{"on": bool}``: the belt motor output (True when none);
* ``{"op": "resume"}``: the operator's resume after a jam;
* ``{"op": "status"}`` -> :class:`StationProbe`: RMA count, revision, outbox depth,
  scheduler lateness, and the typed health the station publishes (``StationHealth``);
* ``{"op": "stop"}``: a clean stop (gates released), then exit 0.

Every parcel event, once committed to the outbox, is written to the event socket as
``{"event_id", "parcel_id", "inducted_at_ms", "decided_at_ms", "lane", "reason"}``.
SIGKILL of this process is the station crash of the fault scenarios: its SQLite outbox and
RMA cache survive in the data folder for the restarted one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from pydantic import BaseModel, ConfigDict, Field

from edge.clock import ScaledClock
from edge.config import StationConfig
from edge.daemon import StationDaemon
from edge.scheduler import tune_runtime
from edge.sorter import ParcelExited
from edge.station.inputs import LaneInput, Resume
from edge.station.status import station_health
from protocol import ParcelEvent, StationHealth
from simulator.hw import fake_modules
from simulator.hw.mfrc522_emu import MFRC522Emulator, VirtualTag
from simulator.hw.pins import TimedMockPin, ticks_of
from simulator.testing import SteppableWall

RFID_RST_PIN = 25
STATION_NICE = -5  # a real station owns its Pi; here it shares a loaded machine
log = logging.getLogger(__name__)


class StationProbe(BaseModel):
    """What the ``status`` op answers: the station's store and its typed health.

    ``rma_count`` / ``rma_revision``: the RMA cache; ``outbox``: events not yet
    acknowledged by the broker; ``lateness_ms``: each fired gate's lateness, ms;
    ``health``: what its status message carries (the link included).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rma_count: int = Field(ge=0)
    rma_revision: int = Field(ge=0)
    outbox: int = Field(ge=0)
    lateness_ms: tuple[float, ...] = ()
    health: StationHealth


def raise_priority(nice: int = STATION_NICE) -> int | None:
    """Lower the nice value of this process (Linux: the calling thread, and what it starts).

    The simulated "wires" (pin edges, gate levels) are stamped when the processes get the
    CPU; on a shared, loaded machine a higher priority keeps that close to a real station
    with its own CPU. Returns the previous value, or None when not permitted.
    """
    try:
        before = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, min(before, nice))
    except (PermissionError, OSError):
        return None
    return before


def raise_all_threads(nice: int = STATION_NICE) -> dict[int, int]:
    """Lower the nice value of every thread of this process now (Linux: per thread).

    For the belt's process while the parcels run: its threads share one GIL, so a
    low-priority thread preempted while holding it (the event collector, a fault timer)
    would stall the belt thread's edges and scanner writes too. Returns ``{thread id:
    previous nice}`` of the threads changed, for :func:`restore_threads`.
    """
    before: dict[int, int] = {}
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return before
    for tid in tids:
        try:
            was = os.getpriority(os.PRIO_PROCESS, tid)
            if was > nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
                before[tid] = was
        except OSError:
            continue  # gone, or not permitted
    return before


def restore_threads(before: dict[int, int]) -> None:
    """Give the threads :func:`raise_all_threads` changed their nice value back."""
    for tid, was in before.items():
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, was)


PHYSICS_PRIORITY = 40
"""SCHED_FIFO priority of the belt thread (below the station's gate timer, 50)."""


def physics_realtime(priority: int = PHYSICS_PRIORITY) -> bool:
    """Run the calling thread (the belt model) at SCHED_FIFO when allowed; True if so.

    The belt is the physical world: its edges and scanner writes must happen on time
    whatever load a test puts on the station beside it (a real scanner is not slowed by
    the station's CPU). Not allowed (no CAP_SYS_NICE): it stays as it was.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        return False
    return True


def physics_normal(was_realtime: bool) -> None:
    """Undo :func:`physics_realtime` (back to normal scheduling)."""
    if was_realtime:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


class _Station:
    def __init__(self, config: StationConfig, clock: ScaledClock, events: socket.socket) -> None:
        fake_modules.install()
        self.chip = MFRC522Emulator()
        rst = config.rfid.rst_pin if config.rfid is not None else RFID_RST_PIN
        fake_modules.attach_spi(0, 0, self.chip, rst_pin=rst)
        self.tags: dict[str, VirtualTag] = {}
        self._events = events
        self._lock = threading.Lock()
        self.daemon = StationDaemon(config, clock, on_event=self._on_event)
        self.wall = SteppableWall()  # the station's system clock (the clock_skew fault)
        self.daemon.utc.set_wall(self.wall)
        self.pins = {
            lane.name: (self.daemon.devices.pin_factory.pin(lane.gate_address), lane.active_high)
            for lane in config.lanes
            if lane.backend == "gpiozero"
        }
        eye = config.photo_eye
        self.eye = self.daemon.devices.pin_factory.pin(eye.address)  # GPIO eyes only here
        self.eye_high = eye.blocked_level == "high"

    def _on_event(self, event: ParcelEvent, exited: ParcelExited) -> None:
        line = {
            "event_id": event.event_id,
            "parcel_id": event.parcel_id,
            "inducted_at_ms": exited.inducted_at_ms,
            "decided_at_ms": exited.decision.decided_at_ms,
            "lane": event.lane,
            "reason": event.reason,
            "rma_number": event.rma_number,
            "units": [u.model_dump(mode="json") for u in event.units],
            "marks": list(event.marks),
        }
        with self._lock:
            self._events.sendall((json.dumps(line) + "\n").encode())

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd.get("op")
        d = self.daemon
        if op == "eye":
            high = bool(cmd["blocked"]) == self.eye_high
            t_ms = cmd.get("t_ms")
            if isinstance(t_ms, int | float) and isinstance(self.eye, TimedMockPin):
                factory = d.devices.pin_factory
                self.eye.drive_at(high, ticks_of(float(t_ms), d.clock, factory.ticks()))
            elif high:
                self.eye.drive_high()
            else:
                self.eye.drive_low()
        elif op == "gate":
            pin, active_high = self.pins[cmd["lane"]]
            t_ms = cmd.get("t_ms")
            if isinstance(t_ms, int | float) and isinstance(pin, TimedMockPin):
                ticks = ticks_of(float(t_ms), d.clock, d.devices.pin_factory.ticks())
                return {"energised": pin.level_at(ticks) == active_high}
            return {"energised": bool(pin.state) == active_high}
        elif op == "tag":
            uid = str(cmd["uid"])
            if cmd["present"]:
                self.tags[uid] = self.chip.place(VirtualTag(bytes.fromhex(uid), sak=0x00))
            elif uid in self.tags:
                self.chip.remove(self.tags.pop(uid))
        elif op == "lane_full":
            d.submit(LaneInput(d.clock(), str(cmd["lane"]), "full", bool(cmd["full"])))
        elif op == "skew":
            self.wall.step(float(cmd["seconds"]))  # NTP steps the system clock
        elif op == "belt_run":
            out = d.devices.outputs.get("belt_run")
            return {"on": True if out is None else bool(out.on)}
        elif op == "resume":
            d.submit(Resume(d.clock()))
        elif op == "camera_fail":
            if d.devices.camera is not None:
                d.devices.camera.stop()
        elif op == "status":
            health = station_health(d.status()).model_copy(update={"link": d.link.link_status()})
            return StationProbe(
                rma_count=d.store.rma_count(),
                rma_revision=d.store.rma_revision(),
                outbox=d.store.outbox_depth(),
                lateness_ms=tuple(d.scheduler.lateness_ms),
                health=health,
            ).model_dump(mode="json")
        elif op == "metrics":
            return {"text": generate_latest(d.metrics.registry).decode()}
        elif op == "stop":
            return {"stopping": True}
        else:
            return {"error": f"unknown op {op!r}"}
        return {"ok": True}


def main(argv: list[str]) -> int:
    """Run the station until the command socket closes or says stop."""
    cfg_path, rate, origin_ns, cmd_fd, evt_fd = argv
    logging.basicConfig(
        level=os.environ.get("RETURNS_SIM_STATION_LOG", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    raise_priority()  # before any thread starts: they inherit it
    os.environ.setdefault("GPIOZERO_MOCK_PIN_CLASS", "timed")  # pins with edge times
    config = StationConfig.model_validate(json.loads(Path(cfg_path).read_text()))
    clock = ScaledClock(float(rate), int(origin_ns))
    cmd = socket.socket(fileno=int(cmd_fd))
    events = socket.socket(fileno=int(evt_fd))
    station = _Station(config, clock, events)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        station.daemon.gates.release_all()
        stop.set()
        cmd.shutdown(socket.SHUT_RDWR)

    signal.signal(signal.SIGTERM, on_signal)
    station.daemon.start()
    tune_runtime()  # as the real station does after start (edge.cli)
    reader = cmd.makefile("rb")
    try:
        cmd.sendall(b'{"ready": true}\n')
        for raw in reader:
            request = json.loads(raw)
            try:
                reply = station.handle(request)
            except Exception as exc:  # report, keep serving
                log.exception("command %s failed", request)
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            cmd.sendall((json.dumps(reply) + "\n").encode())
            if request.get("op") == "stop" or stop.is_set():
                break
    except OSError:
        pass
    finally:
        station.daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
