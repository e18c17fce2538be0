"""The station's status: one JSON-able dict of every component, as the gateway reads it.

Its shape (the keys below) is what the status message carries (``StationStatus.details``),
what the status page shows and what ``/metrics`` reads; typing it is a later change.
"""

from __future__ import annotations

from typing import Any

from edge.scheduler import Scheduler
from edge.sorter import SorterCore
from edge.station.devices import DeviceBank
from edge.store import StationStore

__all__ = ["station_status"]


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
