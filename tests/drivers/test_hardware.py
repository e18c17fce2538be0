"""The installer's hardware package: every shipped config and pin map loads and agrees."""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import SPI_PINS, load_config

HW = Path(__file__).resolve().parents[2] / "hardware"
PINMAPS = sorted(HW.glob("pinmap-*.toml"))
CONFIG_OF = {
    "pinmap-pi4.toml": "station.example.toml",
    "pinmap-pi5.toml": "station.pi5.example.toml",
}


def test_pin_maps_for_pi4_and_pi5_are_shipped() -> None:
    assert [p.name for p in PINMAPS] == ["pinmap-pi4.toml", "pinmap-pi5.toml"]


@pytest.mark.parametrize("path", PINMAPS, ids=lambda p: p.name)
def test_pin_map_opens_with_wiring_and_matches_its_station_config(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# Wiring")
    pinmap = tomllib.loads(text)
    pins = list(pinmap["inputs"].values()) + list(pinmap["outputs"].values())
    pins.append(pinmap["spi"]["rst"])
    assert len(pins) == len(set(pins)), "a pin is used twice"
    assert all(0 <= p <= 27 for p in pins)
    assert not set(pins) & set(SPI_PINS[pinmap["spi"]["bus"]])
    cfg = load_config(HW / CONFIG_OF[path.name])
    assert cfg.gpio.pin_factory == pinmap["pin_factory"]
    assert sorted(cfg.gpio_pins().values()) == sorted(pins)
    assert cfg.rfid is not None
    assert (cfg.rfid.spi_bus, cfg.rfid.spi_device, cfg.rfid.rst_pin) == (
        pinmap["spi"]["bus"],
        pinmap["spi"]["device"],
        pinmap["spi"]["rst"],
    )
    gates = {f"gate_{lane.name}": lane.gate_pin for lane in cfg.lanes}
    assert gates == {k: v for k, v in pinmap["outputs"].items() if k.startswith("gate_")}


@pytest.mark.parametrize("path", sorted(HW.glob("station*.toml")), ids=lambda p: p.name)
def test_check_config_accepts_every_shipped_config(path: Path) -> None:
    assert main(["check-config", str(path)]) == 0


def test_systemd_unit_restarts_and_has_a_watchdog() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((HW / "returns-edge.service").read_text())
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "always"
    assert service["KillSignal"] == "SIGTERM"
    assert "check-config" in service["ExecStartPre"]
    assert service["ExecStart"].endswith("--metrics-port 9108")
    assert "time-sync.target" in unit["Unit"]["After"].split()
    assert "time-sync.target" in unit["Unit"]["Wants"].split()


def test_udev_rule_gives_a_stable_name_and_keeps_modem_manager_off() -> None:
    rules = [
        line
        for line in (HW / "99-returns-scanner.rules").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert len(rules) == 2
    assert ['SYMLINK+="returns-scanner"' in r for r in rules] == [True, False]
    assert ['SYMLINK+="returns-scale"' in r for r in rules] == [False, True]
    for rule in rules:
        assert 'ENV{ID_MM_DEVICE_IGNORE}="1"' in rule
        assert 'SUBSYSTEM=="tty"' in rule


def test_install_guide_bom_and_wiring_are_shipped() -> None:
    readme = (HW / "README.md").read_text()
    for part in ("MFRC522", "flyback", "24 V DC supply", "Gate driver", "photo-eye", "Camera"):
        assert part.lower() in readme.lower()
    assert "check-config" in (HW / "INSTALL.md").read_text()
    assert "GPIO17" in (HW / "wiring.md").read_text()


def test_systemd_unit_lets_the_gate_scheduler_run_real_time() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((HW / "returns-edge.service").read_text())
    service = unit["Service"]
    assert (service["CPUSchedulingPolicy"], service["CPUSchedulingPriority"]) == ("fifo", "10")
    assert service["CPUSchedulingResetOnFork"] == "yes"  # only the scheduler thread stays RT
    assert service["AmbientCapabilities"] == "CAP_SYS_NICE"
