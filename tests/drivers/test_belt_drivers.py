"""The belt model over the driver stacks: photo-eye pin, scanner pty, emulated MFRC522 with
tags on parcels, camera on a generated video; the real daemon in between (no network)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edge.daemon import StationDaemon
from edge.drivers.rfid import TagRead
from simulator.belt import Belt, GateSpot, PinIO
from simulator.harness import attach_rfid_emulator, station_config
from simulator.hw import fake_modules
from simulator.hw.camera import write_video
from simulator.scenario import Scenario, SimParcel

pytestmark = pytest.mark.realtime  # a real-time belt: run one at a time (Makefile)


def test_belt_shows_tags_and_labels_to_the_real_drivers(tmp_path: Path) -> None:
    chip = attach_rfid_emulator()
    master, slave = os.openpty()
    scenario = Scenario.model_validate(
        {
            "name": "drivers",
            "station": {
                "mqtt": {"port": 1},
                "belt": {
                    "speed_mm_s": 2000,
                    "scan_pos_mm": 300,
                    "scan_tol_mm": 150,  # 75 ms of slack for a loaded CI machine
                    "length_mm": 1600,
                },
                "lanes": [
                    {"name": "restock", "disposition": "restock", "pos_mm": 900, "gate_pin": 17}
                ],
            },
            "parcels": {"known": 0},
        }
    )
    video = write_video(tmp_path / "cam.avi", list(range(30)))
    cfg = station_config(scenario, tmp_path / "st", 1, os.ttyname(slave), str(video))
    daemon = StationDaemon(cfg)
    daemon.start()
    try:
        deadline = time.monotonic() + 10
        while daemon.devices.scanner.status()["state"] != "ok" and time.monotonic() < deadline:
            time.sleep(0.01)
        factory = daemon.devices.pin_factory
        belt = Belt(
            speed_mm_s=2000,
            length_mm=1600,
            scan_pos_mm=300,
            io=PinIO(factory.pin(4), True, {"restock": (factory.pin(17), True)}, chip),
            scanner_fd=master,
            gates=[GateSpot("restock", 900)],
            rfid_range_mm=150,  # tag in the field for 150 ms: several 20 ms polls
        )
        parcels = [
            SimParcel(1, "unknown", "RMA-X1", 300, 100, "quarantine", tag_uid="047DB1A2B3C4D5"),
            SimParcel(2, "unknown", "RMA-X2", 300, 900, "quarantine", tag_uid="DD17380A"),
            SimParcel(3, "no_read", None, 300, 1700, "quarantine"),
        ]
        outcomes = belt.run(parcels)
        deadline = time.monotonic() + 10
        while len(daemon.camera.photos) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        daemon.stop()
        os.close(master)
        os.close(slave)
        fake_modules.detach_spi(0, 0)
    assert outcomes == {1: "quarantine", 2: "quarantine", 3: "quarantine"}
    assert daemon.core.counters["inducted"] == 3
    reads = [(e.uid, e.episode) for e in daemon.rfid_events if isinstance(e, TagRead)]
    assert reads == [("047DB1A2B3C4D5", 1), ("DD17380A", 1)]
    assert [(d.reason.value, d.reads) for d in daemon.decisions] == [
        # the tag read by the real reader reaches the core with the label of its parcel
        ("unknown_rma", ("rfid:047DB1A2B3C4D5", "RMA-X1")),
        ("unknown_rma", ("rfid:DD17380A", "RMA-X2")),
        ("no_read", ()),
    ]
    assert [p.ok for p in daemon.camera.photos] == [True, True, True]
