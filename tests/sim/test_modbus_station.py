"""A whole station with its gate on a Modbus TCP PLC (issue 21): the belt model reads the
coil the station writes; an outage mid-run sends the parcels in flight to quarantine with a
reason, raises the alarm, and the station sorts again once the PLC is back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import simpy

from edge.config import StationConfig
from edge.daemon import StationDaemon
from protocol import ParcelEvent
from simulator.belt import Belt, GateSpot, PinIO
from simulator.harness import Run
from simulator.hw.modbus_plc import ModbusPlc, PlcIO
from simulator.scenario import SimParcel, load_scenario
from simulator.testing import (
    announcement,
    label_trusting_policy_payload,
    station_config_data,
    wait_until,
)

pytestmark = pytest.mark.realtime  # a real-time belt: run one at a time (Makefile)

REPO = Path(__file__).resolve().parents[2]
SPEED_MM_S, LENGTH_MM, SCAN_MM, GATE_MM, COIL = 2000, 2500, 400, 1500, 3
OUTAGE_MS, RESTORE_MS = 2000.0, 3000.0


def parcel(index: int, known: bool, at_ms: float, lane: str) -> SimParcel:
    code = f"RMA-{index:06d}" if known else f"RMA-9{index:05d}"
    return SimParcel(index, "known" if known else "unknown", code, 300, at_ms, lane)


def test_station_with_modbus_gates_sorts_and_rides_out_an_outage(tmp_path: Path) -> None:
    master, slave = os.openpty()
    plc = ModbusPlc(unit_id=1)
    plc.start()
    lane = {
        "name": "restock",
        "disposition": "restock",
        "pos_mm": GATE_MM,
        "backend": "modbus",
        "gate_coil": COIL,
    }
    data = station_config_data(
        tmp_path,
        os.ttyname(slave),
        belt={"speed_mm_s": SPEED_MM_S, "scan_pos_mm": SCAN_MM, "length_mm": LENGTH_MM},
        lanes=[lane],
        modbus={
            "host": "127.0.0.1",
            "port": plc.port,
            "poll_ms": 5,
            "reconnect_min_ms": 20,
            "reconnect_max_ms": 100,
        },
    )
    events: list[ParcelEvent] = []
    daemon = StationDaemon(
        StationConfig.model_validate(data), on_event=lambda e, _: events.append(e)
    )
    parcels = [
        parcel(1, True, 0, "restock"),
        parcel(2, False, 350, "quarantine"),
        parcel(3, True, 700, "restock"),
        parcel(4, True, 1500, "quarantine"),  # decided, its gate not yet open at the outage
        parcel(5, True, 2250, "quarantine"),  # decided during the outage
        parcel(6, True, 3500, "restock"),  # the PLC is back
        parcel(7, False, 3850, "quarantine"),
    ]
    for p in parcels:
        if p.label == "known":
            daemon.store.apply_announcement(announcement(str(p.barcode)))
    daemon.apply_policy(label_trusting_policy_payload())  # label-only parcels
    daemon.start()
    alarms_seen: list[set[str]] = []

    def outage(env: simpy.Environment) -> simpy.events.ProcessGenerator:
        yield env.timeout(OUTAGE_MS)
        plc.outage()
        wait_until(lambda: "gate_fault:restock" in daemon.alarms, what="the alarm")
        alarms_seen.append(set(daemon.alarms))
        yield env.timeout(RESTORE_MS - env.now)
        plc.restore()

    try:
        wait_until(lambda: daemon.devices.scanner.status()["state"] == "ok", what="scanner")
        pins = daemon.devices.pin_factory
        belt = Belt(
            speed_mm_s=SPEED_MM_S,
            length_mm=LENGTH_MM,
            scan_pos_mm=SCAN_MM,
            io=PlcIO(PinIO(pins.pin(4), True, {}), plc, {"restock": (COIL, True)}),
            scanner_fd=master,
            gates=[GateSpot("restock", GATE_MM)],
        )
        outcomes = belt.run(parcels, extra=lambda env: env.process(outage(env)))
        wait_until(lambda: len(events) == len(parcels), what="every parcel reported")
        wait_until(lambda: "gate_fault:restock" not in daemon.alarms, what="the alarm cleared")
    finally:
        daemon.stop()
        plc.stop()
        os.close(master)
        os.close(slave)
    assert outcomes == {p.index: p.expected_lane for p in parcels}  # 0 mis-sorts
    assert alarms_seen == [{"gate_fault:restock"}]
    by_code = {e.barcode: e for e in events}
    got = [
        (by_code[p.barcode].lane, by_code[p.barcode].reason, by_code[p.barcode].marks)
        for p in parcels
    ]
    assert got == [
        ("restock", "matched", ()),
        ("quarantine", "unknown_rma", ()),
        ("restock", "matched", ()),
        ("quarantine", "matched", ("gate_cancelled", "gate_fault")),
        ("quarantine", "gate_fault", ()),
        ("restock", "matched", ()),
        ("quarantine", "unknown_rma", ()),
    ]
    assert daemon.devices.gates["restock"].status()["fired"] == 3  # parcels 1, 3 and 6


@pytest.mark.e2e
@pytest.mark.broker
def test_modbus_scenario_end_to_end(tmp_path: Path) -> None:
    """simulator/scenarios/modbus.yaml: broker, gateway and station processes, the PLC here."""
    scenario = load_scenario(REPO / "simulator" / "scenarios" / "modbus.yaml")
    with Run(scenario, tmp_path) as run:
        report = run.execute()
        events = run.gateway_events()
        assert run.station is not None
        marks = {e["event_id"]: e["marks"] for e in run.station.reported_events()}
    assert report.ok, report.failures
    assert (report.mis_sorts, report.wrongly_restocked, report.events_lost) == (0, 0, 0)
    assert [(f.kind, f.end_s is not None) for f in report.faults] == [("modbus_outage", True)]
    quarantined = [r for r in report.parcels if r.label == "known" and r.actual_lane != "restock"]
    assert quarantined, "the outage caught no parcel in flight"
    for r in quarantined:
        assert (r.actual_lane, r.affected_by) == ("quarantine", ["modbus_outage"]), r
    by_barcode = {e["barcode"]: e for e in events}
    for r in quarantined:  # decided during the outage, or withdrawn in flight
        e = by_barcode.get(r.barcode or "")
        if e is None:
            # its event carries no barcode: on a loaded machine the scan reached the core
            # after its window (never evidence, as designed): quarantined for the read,
            # not restocked (seen once in a clean-clone run beside other load)
            assert r.reason in ("no_read", "ambiguous_read"), r
            continue
        assert e["reason"] == "gate_fault" or "gate_fault" in marks[e["event_id"]], e
    restocked = [r for r in report.parcels if r.actual_lane == "restock"]
    assert max(r.induct_s or 0 for r in restocked) > 8.0  # sorting again after the outage
