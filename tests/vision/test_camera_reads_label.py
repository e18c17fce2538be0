"""The label decoded from the parcel photo identifies the parcel when the scanner misses it.

Daemon on mock pins, not started: the photo of a generated parcel (simulator.vision) goes
through the real grader (zxing-cpp decodes the label) and the station's graded-photo path
(:class:`edge.station.camera.CameraStation`), by parcel id; the scan tunnel reads nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edge.config import StationConfig
from edge.daemon import StationDaemon
from edge.drivers.camera import Photo
from edge.sorter.model import Decision, OrphanRead
from edge.sorter.policy import GradingThresholds
from edge.vision.calibration import Calibration
from edge.vision.photos import PhotoStore
from edge.vision.worker import PhotoGrader
from protocol import RmaLine
from simulator.testing import (
    CHEAP_UNIT_CENTS,
    ManualClock,
    announcement,
    label_trusting_policy,
    station_config,
)
from simulator.vision.generator import ParcelSpec, render
from tests.vision.test_station_vision import T0


def config(tmp_path: Path, scanner_url: str) -> StationConfig:
    return station_config(
        tmp_path,
        scanner_url,
        station={"id": "st1", "site": "s1", "data_dir": str(tmp_path)},
        belt={"speed_mm_s": 1000, "scan_pos_mm": 400, "length_mm": 3000, "camera_pos_mm": 0},
        lanes=[{"name": "restock", "disposition": "restock", "pos_mm": 1500, "gate_pin": 17}],
    )


def graded_photo(tmp_path: Path, label: str) -> Any:
    grader = PhotoGrader(
        PhotoStore(tmp_path / "photos", retention_days=30),
        Calibration(1.0),
        GradingThresholds,
        lambda t: T0,
    )
    frame = render(ParcelSpec(label=label, seed=1))
    return grader.process(Photo(True, 10.0, 20.0, frame, tag=1))  # parcel 1


def run(tmp_path: Path, photo_at_ms: float) -> tuple[list[Any], StationDaemon]:
    master, slave = os.openpty()
    now = ManualClock()
    try:
        daemon = StationDaemon(config(tmp_path, os.ttyname(slave)), now)
        # a cheap line without identifiers: its label is trusted by an explicit rule
        cheap = RmaLine(line_no=1, sku="SKU-1", quantity=1, unit_value_cents=CHEAP_UNIT_CENTS)
        daemon.store.apply_announcement(announcement("RMA-000123", cheap))
        daemon.core.policy = label_trusting_policy()
        result = graded_photo(tmp_path, "RMA-000123")
        assert result.grading is not None
        assert result.grading.measures.barcodes == ("]C0RMA-000123",)
        core = daemon.core
        actions: list[Any] = core.on_photo_eye(0.0, True) + core.on_photo_eye(300.0, False)
        for t in range(305, 3000, 5):
            if t == photo_at_ms:
                now.set(float(t))
                actions += daemon.camera.graded(result)
            actions += core.advance(float(t))
        daemon.store.close()
        return actions, daemon
    finally:
        os.close(master)
        os.close(slave)


def test_scanner_no_read_label_read_by_the_camera_restocks(tmp_path: Path) -> None:
    actions, _ = run(tmp_path, 400)
    [d] = [a for a in actions if isinstance(a, Decision)]
    assert (d.lane.name, d.reason.value, d.rma_number) == ("restock", "matched", "RMA-000123")
    assert d.reads == ("camera:RMA-000123",)
    assert dict(d.inputs)["barcode_source"] == "camera"
    assert dict(d.inputs)["grade_source"] == "camera"


def test_photo_graded_after_the_decision_does_not_change_it(tmp_path: Path) -> None:
    actions, daemon = run(tmp_path, 1500)
    [d] = [a for a in actions if isinstance(a, Decision)]
    assert (d.lane.name, d.reason.value) == ("quarantine", "no_read")
    assert any(isinstance(a, OrphanRead) and a.code == "camera:RMA-000123" for a in actions)
    assert daemon.core.counters["orphan_reads"] >= 1
