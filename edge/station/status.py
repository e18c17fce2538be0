"""The station's status: a JSON-able dict of every component, and its typed wire form.

:func:`station_status` is the station's own view (the daemon, its commands and the
simulator read it); :func:`station_health` turns it into the bounded, typed
:class:`~protocol.StationHealth` the status message carries and the gateway reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge.scheduler import Scheduler
from edge.sorter import SorterCore
from edge.station.devices import DeviceBank
from edge.store import StationStore
from protocol import (
    ComponentStatus,
    CoreStatus,
    DeviceHealth,
    StationAlarm,
    StationHealth,
)
from protocol.messages import MAX_MAP_ENTRIES, MAX_NAME, MAX_TEXT, ClockStatus, Scalar

__all__ = ["station_health", "station_status"]

COMPONENTS = (
    "scanner",
    "rfid",
    "camera",
    "grader",
    "encoder",
    "photo_eye",
    "scheduler",
)
"""Components reported by name in :attr:`StationHealth.components`, besides each lane
input (``input.<name>``), output (``output.<name>``) and gate (``gate.<lane>``)."""


def station_status(
    devices: DeviceBank,
    core: SorterCore,
    scheduler: Scheduler,
    store: StationStore,
    *,
    grader: Any,
    alarms: dict[str, dict[str, object]],
    belt_running: bool,
    controls: dict[str, object] | None = None,
    clock: dict[str, object] | None = None,
) -> dict[str, object]:
    """JSON-able status of every component.

    Keys: ``degraded`` (a device failed, or the scanner / RFID / camera / scale is not ok),
    ``devices`` (self-test health by name, sorted), ``capabilities``, ``core``, ``scanner``,
    ``rfid``, ``camera``, ``scale``, ``grader``, ``encoder``, ``lane_inputs``, ``outputs``,
    ``photo_eye``, ``gates`` (None or ``{}`` for what is not configured), ``scheduler``,
    ``alarms`` (raised alarms by ``kind`` or ``kind:lane``), ``belt_running``,
    ``belt_holds`` (why the belt stands: ``jam``, ``pause``, ``estop``), ``estop_engaged``,
    ``resets`` (reset button presses), ``clock`` (system clock steps seen:
    :meth:`edge.clock.UtcClock.status`),
    ``rma_revision``, ``config_hash``.
    """
    scanner = devices.scanner.status()
    rfid = devices.rfid.status() if devices.rfid is not None else None
    camera = devices.camera.status() if devices.camera is not None else None
    scale = devices.scale.status() if devices.scale is not None else None
    devices_ok = all(h.state == "ok" for h in devices.health.values())
    drivers = (rfid, camera, scale)
    drivers_ok = all(st is None or st.get("state") in ("ok", "stopped") for st in drivers)
    return {
        "degraded": scanner.get("state") != "ok" or not devices_ok or not drivers_ok,
        "devices": {name: h.as_dict() for name, h in sorted(devices.health.items())},
        "capabilities": devices.capabilities(),
        "core": core.status(),
        "scanner": scanner,
        "rfid": rfid,
        "camera": camera,
        "scale": scale,
        "grader": grader.status() if grader is not None else None,
        "encoder": devices.encoder.status() if devices.encoder is not None else None,
        "lane_inputs": {name: d.status() for name, d in devices.lane_inputs.items()},
        "outputs": {name: out.status() for name, out in devices.outputs.items()},
        "photo_eye": devices.photo_eye.status() if devices.photo_eye is not None else None,
        "gates": {name: gate.status() for name, gate in devices.gates.items()},
        "scheduler": scheduler.status(),
        "alarms": dict(alarms),
        "belt_running": belt_running,
        "belt_holds": core.status()["holds"],
        **(controls or {"estop_engaged": False, "resets": 0}),
        "clock": clock,
        "rma_revision": store.rma_revision(),
        "config_hash": devices.config.config_hash,
    }


def _flat(values: Mapping[str, object], prefix: str = "") -> dict[str, Scalar | None]:
    """A component's nested status dict as bounded ``a.b`` -> scalar entries.

    Strings are cut to :data:`MAX_TEXT` characters, lists become their text, numbers out
    of range or not finite are dropped; at most :data:`MAX_MAP_ENTRIES` entries.
    """
    flat: dict[str, Scalar | None] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"[:128]
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{name}."))
        elif value is None or isinstance(value, bool):
            flat[name] = value
        elif isinstance(value, int):
            if abs(value) < 2**63:
                flat[name] = value
        elif isinstance(value, float):
            if abs(value) <= 1e15:  # False for NaN too
                flat[name] = value
        else:
            flat[name] = str(value)[:MAX_TEXT]
    return dict(list(flat.items())[:MAX_MAP_ENTRIES])


def _component(values: object) -> ComponentStatus:
    if not isinstance(values, Mapping):
        return ComponentStatus()
    state = values.get("state")
    rest = {k: v for k, v in values.items() if k != "state"}
    return ComponentStatus(
        state=str(state)[:MAX_NAME] if state is not None else None, values=_flat(rest)
    )


def station_health(status: Mapping[str, Any]) -> StationHealth:
    """The typed, bounded wire form of a :func:`station_status` dict.

    ``link`` is left None: the link adds its own. Names are cut to the protocol's bounds;
    a component that is not configured (None) is left out.
    """
    core = status.get("core") or {}
    components: dict[str, ComponentStatus] = {
        name: _component(status[name]) for name in COMPONENTS if status.get(name) is not None
    }
    for group, prefix in (("lane_inputs", "input"), ("outputs", "output"), ("gates", "gate")):
        for name, values in sorted((status.get(group) or {}).items()):
            components[f"{prefix}.{name}"[:MAX_NAME]] = _component(values)
    alarms = {
        str(key): StationAlarm(
            kind=str(key).partition(":")[0],
            lane=a.get("lane"),
            parcel_id=a.get("parcel_id"),
        )
        for key, a in (status.get("alarms") or {}).items()
    }
    return StationHealth(
        degraded=bool(status.get("degraded")),
        belt_running=status.get("belt_running"),
        devices={
            name: DeviceHealth(
                state=str(h.get("state")),
                backend=str(h.get("backend") or ""),
                detail=str(h.get("detail") or "")[:MAX_TEXT],
            )
            for name, h in status.get("devices", {}).items()
        },
        core=CoreStatus(
            on_belt=core.get("on_belt", 0),
            counters=dict(core.get("counters") or {}),
            lanes=dict(core.get("lanes") or {}),
            jammed=bool(core.get("jammed")),
            lanes_full=tuple(core.get("lanes_full") or ()),
            lanes_faulted=tuple(core.get("lanes_faulted") or ()),
            holds=tuple(status.get("belt_holds") or core.get("holds") or ()),
            policy_version=str(core.get("policy_version") or ""),
        ),
        alarms=dict(list(alarms.items())[:MAX_MAP_ENTRIES]),
        components=dict(list(components.items())[:MAX_MAP_ENTRIES]),
        estop_engaged=bool(status.get("estop_engaged")),
        resets=int(status.get("resets") or 0),
        clock=_clock(status.get("clock")),
    )


def _clock(clock: object) -> ClockStatus | None:
    """The status dict's ``clock`` (``{"steps", "last_step_s", ...}``) as the wire has it."""
    if not isinstance(clock, Mapping):
        return None
    return ClockStatus(
        steps=int(clock.get("steps") or 0), last_step_s=float(clock.get("last_step_s") or 0.0)
    )
