"""DeviceBank: every device built by its backend name, self-tested, health, closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.drivers import registry
from edge.drivers.registry import BackendContext, IoSpec, UnknownBackend
from edge.station.devices import DeviceBank, DeviceHealth
from simulator.testing import station_config


def full_config(tmp_path: Path, scanner_url: str) -> object:
    lanes = [
        {
            "name": "restock",
            "disposition": "restock",
            "pos_mm": 1500,
            "gate_pin": 17,
            "confirm_pin": 24,
            "full_pin": 12,
        },
        {"name": "recycle", "disposition": "recycle", "pos_mm": 2300, "gate_pin": 22},
    ]
    return station_config(
        tmp_path,
        scanner_url,
        lanes=lanes,
        encoder={"pin_a": 20, "pin_b": 21, "mm_per_pulse": 2.5},
        belt_run={"pin": 23},
        stack_light={"green_pin": 5, "amber_pin": 6, "red_pin": 13},
    )


def test_every_configured_device_is_built_and_self_tested(tmp_path: Path, scanner_pty: str) -> None:
    bank = DeviceBank(full_config(tmp_path, scanner_pty))  # type: ignore[arg-type]
    try:
        assert {name: h.as_dict() for name, h in bank.health.items()} == {
            "gate.restock": {
                "state": "ok",
                "backend": "gpiozero",
                "detail": "GPIO17 off (level 0)",
            },
            "gate.recycle": {
                "state": "ok",
                "backend": "gpiozero",
                "detail": "GPIO22 off (level 0)",
            },
            "photo_eye": {"state": "ok", "backend": "gpiozero", "detail": "GPIO4, blocked=high"},
            "restock.confirm": {"state": "ok", "backend": "gpiozero", "detail": "started"},
            "restock.full": {"state": "ok", "backend": "gpiozero", "detail": "started"},
            "encoder": {"state": "ok", "backend": "gpiozero", "detail": "started"},
            "belt_run": {"state": "ok", "backend": "gpiozero", "detail": "started"},
            "stack_light.green": {"state": "ok", "backend": "gpiozero", "detail": "started"},
            "stack_light.amber": {"state": "ok", "backend": "gpiozero", "detail": "started"},
            "stack_light.red": {"state": "ok", "backend": "gpiozero", "detail": "started"},
        }
        assert list(bank.gates) == ["restock", "recycle"]
        assert list(bank.lane_inputs) == ["restock.confirm", "restock.full"]
        assert list(bank.outputs) == [
            "belt_run",
            "stack_light.green",
            "stack_light.amber",
            "stack_light.red",
        ]
        assert bank.broken_lanes() == frozenset()
        # the scanner is not started yet: no barcode capability
        assert bank.capabilities() == ["induct", "lane:restock", "lane:recycle"]
    finally:
        bank.stop_readers()
        bank.close()


def test_a_gate_that_cannot_be_driven_is_never_used_and_its_lane_is_broken(
    tmp_path: Path, scanner_pty: str
) -> None:
    config = station_config(tmp_path, scanner_pty, photo_eye={"pin": 41})
    lanes = [
        lane.model_copy(update={"gate_pin": 40}) if lane.name == "restock" else lane
        for lane in config.lanes
    ]
    bank = DeviceBank(config.model_copy(update={"lanes": tuple(lanes)}))
    try:
        assert bank.health["gate.restock"] == DeviceHealth(
            "failed", "gpiozero", "PinInvalidPin: 40 is not a valid pin name"
        )
        assert bank.health["photo_eye"].state == "failed"
        assert bank.photo_eye is None
        assert list(bank.gates) == ["recycle"]
        assert bank.broken_lanes() == frozenset({"restock"})
        assert bank.usable("photo_eye") is False and bank.usable("gate.recycle") is True
        assert bank.capabilities() == ["lane:recycle"]
    finally:
        bank.close()


def test_close_de_energises_the_gates_and_releases_every_pin(
    tmp_path: Path, scanner_pty: str
) -> None:
    bank = DeviceBank(full_config(tmp_path, scanner_pty))  # type: ignore[arg-type]
    pin = bank.pin_factory.pin
    bank.gates["restock"].energise()
    bank.outputs["belt_run"].set(True)
    assert (pin(17).state, pin(23).state) == (1, 1)
    bank.close()
    assert (pin(17).state, pin(23).state) == (0, 0)
    assert all(pin(n).function == "input" for n in (17, 22, 23, 4, 24, 12, 20, 21, 5, 6, 13))


class Relay:
    """A backend nobody here ships: a relay board output."""

    def __init__(self, spec: IoSpec) -> None:
        self.name = spec.name
        self.on = False

    def set(self, on: bool) -> None:
        self.on = on


def test_a_new_backend_is_added_by_registering_it(
    tmp_path: Path, scanner_pty: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))
    registry.register_backend("output", "relay-board", lambda spec, ctx: Relay(spec))
    assert registry.backends("output") == ("gpiozero", "relay-board")
    ctx = BackendContext(station_config(tmp_path, scanner_pty))
    out = registry.make_output(IoSpec("belt_run", "relay-board", 3), ctx)
    assert isinstance(out, Relay) and out.name == "belt_run"
    with pytest.raises(
        UnknownBackend, match=r"^no output backend 'modbus' \(registered: gpiozero, relay-board\)$"
    ):
        registry.make_output(IoSpec("belt_run", "modbus", 3), ctx)


def test_a_shared_resource_is_made_once_per_station(tmp_path: Path, scanner_pty: str) -> None:
    ctx = BackendContext(station_config(tmp_path, scanner_pty))
    made: list[int] = []
    first = ctx.shared("modbus:10.0.0.5", lambda: made.append(1) or object())
    assert ctx.shared("modbus:10.0.0.5", lambda: made.append(2) or object()) is first
    assert made == [1]
