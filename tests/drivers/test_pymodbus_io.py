"""Gates and lane inputs on a PLC over Modbus TCP, against pymodbus's own server (issue 21)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.config import StationConfig
from edge.drivers.pymodbus_io import ModbusDiverterGate, ModbusInput, ModbusLink
from edge.station.devices import DeviceBank
from simulator.hw.modbus_plc import ModbusPlc, free_port
from simulator.testing import station_config_data, wait_until


def modbus_lanes(**restock: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": "restock",
            "disposition": "restock",
            "pos_mm": 1500,
            "backend": "modbus",
            "gate_coil": 3,
            "confirm_input": 8,
            "full_input": 9,
            **restock,
        },
        {"name": "recycle", "disposition": "recycle", "pos_mm": 2300, "gate_pin": 22},
    ]


def config(tmp_path: Path, scanner_pty: str, port: int, **restock: Any) -> StationConfig:
    data = station_config_data(
        tmp_path,
        scanner_pty,
        lanes=modbus_lanes(**restock),
        modbus={
            "host": "127.0.0.1",
            "port": port,
            "unit_id": 7,
            "poll_ms": 5,
            "reconnect_min_ms": 20,
            "reconnect_max_ms": 80,
        },
    )
    return StationConfig.model_validate(data)


@pytest.fixture
def plc() -> Iterator[ModbusPlc]:
    with ModbusPlc(unit_id=7) as p:
        yield p


@pytest.fixture
def bank(tmp_path: Path, scanner_pty: str, plc: ModbusPlc) -> Iterator[DeviceBank]:
    devices = DeviceBank(config(tmp_path, scanner_pty, plc.port))
    try:
        yield devices
    finally:
        devices.close()


def test_modbus_lanes_need_the_section_and_their_own_keys(tmp_path: Path) -> None:
    base = station_config_data(tmp_path, "/dev/null", lanes=modbus_lanes())
    with pytest.raises(ValueError, match=r"need a \[modbus\] section"):
        StationConfig.model_validate(base)
    with pytest.raises(ValueError, match="takes gate_coil, confirm_input, full_input"):
        StationConfig.model_validate(
            {**base, "lanes": modbus_lanes(gate_pin=5), "modbus": {"host": "plc"}}
        )
    with pytest.raises(ValueError, match="needs gate_coil"):
        StationConfig.model_validate(
            {**base, "lanes": modbus_lanes(gate_coil=None), "modbus": {"host": "plc"}}
        )
    with pytest.raises(ValueError, match="reconnect_max_ms must be at least"):
        StationConfig.model_validate(
            {**base, "modbus": {"host": "plc", "reconnect_min_ms": 500, "reconnect_max_ms": 100}}
        )
    cfg = StationConfig.model_validate({**base, "modbus": {"host": "plc"}})
    lane = cfg.lanes[0]
    assert (lane.gate_address, lane.confirm_address, lane.full_address) == (3, 8, 9)
    assert cfg.modbus is not None and (cfg.modbus.port, cfg.modbus.unit_id) == (502, 1)
    assert cfg.belt_config().lanes[0].confirm is True
    assert "lanes.restock.gate_pin" not in cfg.gpio_pins()


def test_gate_drives_its_coil_and_passes_its_self_test(bank: DeviceBank, plc: ModbusPlc) -> None:
    assert bank.health["gate.restock"].as_dict() == {
        "state": "ok",
        "backend": "modbus",
        "detail": "coil 3 off",
    }
    gate = bank.gates["restock"]
    assert isinstance(gate, ModbusDiverterGate)
    gate.energise()
    assert plc.coil(3) is True
    gate.release()
    assert plc.coil(3) is False
    assert gate.status() == {"state": "ok", "energised": False, "fired": 1, "coil": 3}


def test_active_low_gate_writes_the_inverse(
    tmp_path: Path, scanner_pty: str, plc: ModbusPlc
) -> None:
    devices = DeviceBank(config(tmp_path, scanner_pty, plc.port, active_high=False))
    try:
        assert plc.coil(3) is True  # de-energised = coil on for an active-low gate
        devices.gates["restock"].energise()
        assert plc.coil(3) is False
    finally:
        devices.close()
    assert plc.coil(3) is True  # closed: de-energised


def test_lane_inputs_report_the_plcs_discrete_inputs(bank: DeviceBank, plc: ModbusPlc) -> None:
    seen: list[tuple[str, bool]] = []
    for name, device in bank.lane_inputs.items():
        assert isinstance(device, ModbusInput)
        device.start(lambda t_ms, active, name=name: seen.append((name, active)))
    plc.set_input(9, True)
    wait_until(lambda: seen == [("restock.full", True)], what="lane full seen")
    plc.set_input(8, True)
    plc.set_input(9, False)
    wait_until(lambda: len(seen) == 3, what="two more changes")
    assert sorted(seen[1:]) == [("restock.confirm", True), ("restock.full", False)]
    assert bank.lane_inputs["restock.confirm"].status() == {
        "state": "ok",
        "active": True,
        "edges": 1,
    }


def test_an_outage_is_a_fault_then_the_link_reconnects_with_its_coils_off(
    bank: DeviceBank, plc: ModbusPlc
) -> None:
    gate = bank.gates["restock"]
    assert isinstance(gate, ModbusDiverterGate)
    faults: list[bool] = []
    gate.watch_faults(lambda t_ms, faulted: faults.append(faulted))
    gate.energise()
    assert plc.coil(3) is True
    plc.outage()  # the watchdog drops the coil; the link's next poll fails
    wait_until(lambda: faults == [True], what="the fault reported")
    assert plc.coil(3) is False
    assert gate.status()["state"] == "failed"
    gate.energise()  # while lost: not written, never raises into the scheduler
    assert gate.failed_writes == 1
    plc.set_coil(3, True)  # whatever the PLC holds, the station drives it off on reconnect
    plc.restore()
    wait_until(lambda: faults == [True, False], timeout_s=10, what="the link back")
    assert plc.coil(3) is False
    assert gate.link.status() | {"last_error": ""} == {
        "state": "ok",
        "host": "127.0.0.1",
        "port": plc.port,
        "unit_id": 7,
        "faults": 1,
        "reconnects": 1,
        "last_error": "",
    }
    gate.energise()
    assert plc.coil(3) is True


def test_no_plc_at_start_fails_the_gate_self_test(tmp_path: Path, scanner_pty: str) -> None:
    devices = DeviceBank(config(tmp_path, scanner_pty, free_port()))
    try:
        health = devices.health["gate.restock"]
        assert (health.state, health.backend) == ("failed", "modbus")
        assert health.detail.startswith("PLC not reachable")
        assert devices.broken_lanes() == frozenset({"restock"})
    finally:
        devices.close()


def test_reads_are_split_at_the_protocols_limit(plc: ModbusPlc) -> None:
    from edge.config import ModbusSection

    link = ModbusLink(ModbusSection(host="127.0.0.1", port=plc.port, unit_id=7))
    seen: list[tuple[float, bool]] = []
    link.subscribe(1, lambda t, level: seen.append((t, level)))
    link.subscribe(40, lambda t, level: seen.append((t, level)))
    try:
        assert link.connect()
        plc.set_input(40, True)
        wait_until(lambda: len(seen) == 1, what="input 40")
        assert link.level(40) is True and link.level(1) is False
    finally:
        link.close()


def test_photo_eye_on_a_discrete_input(tmp_path: Path, scanner_pty: str, plc: ModbusPlc) -> None:
    data = station_config_data(
        tmp_path,
        scanner_pty,
        photo_eye={"backend": "modbus", "discrete_input": 0},
        lanes=modbus_lanes(),
        modbus={"host": "127.0.0.1", "port": plc.port, "unit_id": 7, "poll_ms": 5},
    )
    cfg = StationConfig.model_validate(data)
    assert "photo_eye.pin" not in cfg.gpio_pins()
    devices = DeviceBank(cfg)
    try:
        assert devices.health["photo_eye"].as_dict() == {
            "state": "ok",
            "backend": "modbus",
            "detail": "discrete input 0",
        }
        edges: list[bool] = []
        assert devices.photo_eye is not None
        devices.photo_eye.start(lambda t_ms, blocked: edges.append(blocked))
        plc.set_input(0, True)
        wait_until(lambda: edges == [True], what="blocked")
        plc.set_input(0, False)
        wait_until(lambda: edges == [True, False], what="clear")
        assert devices.photo_eye.status() == {"state": "ok", "blocked": False, "edges": 2}
    finally:
        devices.close()
    with pytest.raises(
        ValueError, match="photo_eye: backend 'modbus' takes discrete_input, not pin"
    ):
        StationConfig.model_validate(
            {**data, "photo_eye": {"backend": "modbus", "discrete_input": 0, "pin": 4}}
        )
    with pytest.raises(ValueError, match="needs its own discrete input"):
        StationConfig.model_validate(
            {**data, "photo_eye": {"backend": "modbus", "discrete_input": 8}}
        )


def test_an_input_that_changed_during_an_outage_is_reported_on_reconnect(plc: ModbusPlc) -> None:
    from edge.config import ModbusSection

    section = ModbusSection(
        host="127.0.0.1",
        port=plc.port,
        unit_id=7,
        poll_ms=5,
        reconnect_min_ms=20,
        reconnect_max_ms=40,
    )
    link = ModbusLink(section)
    seen: list[bool] = []
    faults: list[bool] = []
    link.watch(lambda t, faulted: faults.append(faulted))
    link.subscribe(5, lambda t, level: seen.append(level))
    try:
        wait_until(lambda: link.connected, what="connected")
        plc.outage()
        wait_until(lambda: faults == [True], what="lost")
        plc.set_input(5, True)  # e.g. a lane filled while the station could not see it
        plc.restore()
        wait_until(lambda: faults == [True, False], timeout_s=10, what="back")
        wait_until(lambda: seen == [True], what="the change reported")
    finally:
        link.close()
