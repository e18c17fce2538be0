"""The label decoded from the parcel photo identifies the parcel when the scanner misses it.

Daemon on mock pins, not started: the photo of a generated parcel (simulator.vision) goes
through the real grader (zxing-cpp decodes the label) and the station's graded-photo path
(:class:`edge.station.camera.CameraStation`), by parcel id; the scan tunnel reads nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2

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

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "barcodes"


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


def test_a_real_product_barcode_photo_read_by_the_camera_verifies_the_unit(
    tmp_path: Path,
) -> None:
    """A phone photo of a real EAN-13 (zxing test material) stuck on a parcel, at 0.5 mm/px:
    the station's grader reads it off the photo, the camera feeds it to the core by parcel
    id, the classifier makes it the product's GTIN, and it verifies the RMA line that
    declares that GTIN (the scanner read only the RMA label)."""
    image = REAL / "ean13" / "zxing_ean13-3_01.png"
    text = image.with_suffix(".txt").read_text()
    photo = cv2.imread(str(image))
    frame = render(
        ParcelSpec(500, 380, label="RMA-000123", size=(1600, 1200), mm_per_px=0.5, seed=3)
    )
    h, w = photo.shape[:2]
    k = min(1.0, 300 / w, 300 / h)
    photo = cv2.resize(photo, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    x0 = (frame.shape[1] - photo.shape[1]) // 2
    frame[200 : 200 + photo.shape[0], x0 : x0 + photo.shape[1]] = photo
    grader = PhotoGrader(
        PhotoStore(tmp_path / "photos", retention_days=30),
        Calibration(0.5),
        GradingThresholds,
        lambda t: T0,
    )
    result = grader.process(Photo(True, 10.0, 20.0, frame, tag=1))
    assert result.grading is not None
    assert result.grading.measures.barcodes == ("]E0" + text,)
    master, slave = os.openpty()
    now = ManualClock()
    try:
        daemon = StationDaemon(config(tmp_path, os.ttyname(slave)), now)
        line = RmaLine(line_no=1, sku="BOOK-1", quantity=1, gtin="0" + text)
        daemon.store.apply_announcement(announcement("RMA-000123", line))
        core = daemon.core
        actions: list[Any] = core.on_photo_eye(0.0, True) + core.on_photo_eye(300.0, False)
        for t in range(305, 3000, 5):
            if t == 400:
                now.set(float(t))
                actions += core.on_barcode(float(t), "RMA-000123")  # the scanner: the label
                actions += daemon.camera.graded(result)
            actions += core.advance(float(t))
        daemon.store.close()
    finally:
        os.close(master)
        os.close(slave)
    [d] = [a for a in actions if isinstance(a, Decision)]
    assert (d.rma_number, d.reads) == ("RMA-000123", ("RMA-000123", f"camera:gs1:0{text}/"))
    inputs = dict(d.inputs)
    assert (inputs["identity"], inputs["verification"], inputs["grade_source"]) == (
        "matched",
        "verified",
        "camera",
    )
