"""The daemon on mock pins: gates are de-energised on stop (C7), whatever was commanded."""

from __future__ import annotations

import os
from pathlib import Path

from edge.config import StationConfig
from edge.daemon import StationDaemon
from simulator.testing import station_config

REPO = Path(__file__).resolve().parents[2]


def make_config(tmp_path: Path, scanner_url: str) -> StationConfig:
    return station_config(tmp_path, scanner_url)


def test_stop_de_energises_every_gate_of_either_polarity(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        daemon = StationDaemon(make_config(tmp_path, os.ttyname(slave)))
        pins = {n: daemon.devices.pin_factory.pin(p) for n, p in (("restock", 17), ("recycle", 22))}
        # off at start: active-high pin low, active-low pin high
        assert (pins["restock"].state, pins["recycle"].state) == (0, 1)
        daemon.start()
        daemon.devices.gates["restock"].energise()
        daemon.devices.gates["recycle"].energise()
        assert (pins["restock"].state, pins["recycle"].state) == (1, 0)
        daemon.stop()
        assert (pins["restock"].state, pins["recycle"].state) == (0, 1)
    finally:
        os.close(master)
        os.close(slave)
