"""The station status dict: every component under its key, the shape the gateway reads."""

from __future__ import annotations

from pathlib import Path

from edge.daemon import StationDaemon
from simulator.testing import station_config


def test_status_has_every_component_and_says_degraded_until_the_scanner_reads(
    tmp_path: Path, scanner_pty: str
) -> None:
    daemon = StationDaemon(station_config(tmp_path, scanner_pty, belt_run={"pin": 23}))
    try:
        status = daemon.status()
        assert list(status) == [
            "degraded",
            "devices",
            "capabilities",
            "core",
            "scanner",
            "rfid",
            "camera",
            "scale",
            "grader",
            "encoder",
            "lane_inputs",
            "outputs",
            "photo_eye",
            "gates",
            "scheduler",
            "alarms",
            "belt_running",
            "belt_holds",
            "estop_engaged",
            "resets",
            "clock",
            "rma_revision",
            "config_hash",
        ]
        assert status["scale"] is None  # no [scale]
        assert status["degraded"] is True  # the scanner is not reading yet
        assert list(status["devices"]) == [  # type: ignore[call-overload]
            "belt_run",
            "gate.recycle",
            "gate.restock",
            "photo_eye",
        ]
        assert (status["rfid"], status["camera"], status["grader"], status["encoder"]) == (
            None,
            None,
            None,
            None,
        )
        assert status["gates"] == {
            "restock": {"state": "ok", "energised": False, "fired": 0},
            "recycle": {"state": "ok", "energised": False, "fired": 0},
        }
        assert status["outputs"] == {"belt_run": {"on": False}}
        assert status["photo_eye"] == {
            "state": "ok",
            "blocked": False,
            "edges": 0,
            "timestamps": "mock",  # the mock factory's (see edge.drivers.gpiozero_io)
        }
        assert (status["alarms"], status["belt_running"], status["rma_revision"]) == ({}, True, 0)
        assert status["capabilities"] == ["induct", "lane:restock", "lane:recycle"]
    finally:
        daemon.stop()
