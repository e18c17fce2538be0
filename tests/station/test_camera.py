"""CameraStation: a photo per inducted parcel (tagged with its id), grades back by id.

The unit tests give the station a recording camera (the device, faked at its interface)
and graded photos built from the grader's own result types; the last test runs the real
daemon on mock pins with the OpenCV camera reading a generated video.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.config import StationConfig
from edge.daemon import StationDaemon
from edge.drivers.camera import Photo
from edge.sorter import SorterCore
from edge.sorter.model import Decision, Inducted, OrphanRead
from edge.station.camera import GRADED_KEPT, CameraStation
from edge.vision.grading import Grading, Measures
from edge.vision.photos import PhotoFile
from edge.vision.worker import GradedPhoto
from protocol import PhotoUpload, decode
from simulator.hw.camera import write_video
from simulator.testing import (
    Directory,
    ManualClock,
    label_trusting_policy,
    line,
    rma,
    station_config,
    video_camera,
    wait_until,
)

DELAY_MS = 150.0
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class RecordingCamera:
    """A camera device that records its triggers (tag = the parcel id)."""

    def __init__(self) -> None:
        self.triggers: list[tuple[float, object]] = []

    def trigger(self, t_ms: float, tag: object = None) -> None:
        self.triggers.append((t_ms, tag))


def config(tmp_path: Path, *, camera_pos_mm: float | None = 0.0, upload: bool = True) -> Any:
    belt: dict[str, object] = {"speed_mm_s": 1000, "scan_pos_mm": 400, "length_mm": 3000}
    if camera_pos_mm is not None:
        belt["camera_pos_mm"] = camera_pos_mm
    return station_config(
        tmp_path,
        "/dev/null",
        belt=belt,
        camera={"backend": "opencv", "source": "x.avi", "trigger_delay_ms": DELAY_MS},
        vision={"upload": upload},
    )


def station(cfg: StationConfig, *rmas: Any) -> tuple[CameraStation, RecordingCamera, list[bytes]]:
    core = SorterCore(cfg.belt_config(), Directory(*rmas), label_trusting_policy())
    camera, sent = RecordingCamera(), list[bytes]()
    return CameraStation(cfg, core, camera, None, sent.append, lambda: 0.0), camera, sent  # type: ignore[arg-type]


def graded(
    parcel_id: int, grade: str = "A", barcodes: tuple[str, ...] = (), t_ms: float = 200.0
) -> GradedPhoto:
    grading = Grading(grade, 0.9, f"grade {grade}", Measures(True, barcodes=barcodes))
    return GradedPhoto(Photo(True, t_ms, t_ms + 2, None, tag=parcel_id), grading, None)


def feed_inducts(cam: CameraStation, actions: list[Any]) -> list[Any]:
    for a in actions:
        if isinstance(a, Inducted):
            cam.inducted(a.parcel_id, a.t_ms)
    return actions


def test_every_inducted_parcel_is_photographed_once_even_close_together(tmp_path: Path) -> None:
    cam, camera, _ = station(config(tmp_path))
    core = cam.core
    # parcel 1 bounces at its leading edge; parcel 2 follows 120 ms after parcel 1's edge
    for t, blocked in ((0.0, True), (1.0, False), (2.0, True), (100.0, False), (120.0, True)):
        feed_inducts(cam, core.on_photo_eye(t, blocked))
    feed_inducts(cam, core.on_photo_eye(220.0, False) + core.advance(300.0))
    assert camera.triggers == [(0.0 + DELAY_MS, 1), (120.0 + DELAY_MS, 2)]


def test_grades_and_camera_reads_reach_their_parcel_by_id(tmp_path: Path) -> None:
    cam, _, _ = station(config(tmp_path, camera_pos_mm=DELAY_MS), rma("RMA-1"), rma("RMA-2"))
    core = cam.core
    actions = core.on_photo_eye(0.0, True) + core.on_photo_eye(200.0, False)
    actions += cam.graded(graded(1, "A", ("RMA-1",), t_ms=150.0))
    actions += core.on_photo_eye(600.0, True) + core.on_photo_eye(800.0, False)
    actions += cam.graded(graded(2, "C", ("RMA-2",), t_ms=750.0))
    for t in range(805, 5000, 5):
        actions += core.advance(float(t))
    decisions = {d.parcel_id: d for d in actions if isinstance(d, Decision)}
    assert [(d.rma_number, d.reads, dict(d.inputs)["grade"]) for d in decisions.values()] == [
        ("RMA-1", ("camera:RMA-1",), "A"),
        ("RMA-2", ("camera:RMA-2",), "C"),
    ]
    assert (decisions[1].lane.name, decisions[2].lane.name) == ("restock", "recycle")
    assert core.counters["ambiguous_reads"] == 0


def test_a_grade_after_the_decision_is_an_orphan_and_changes_nothing(tmp_path: Path) -> None:
    cam, _, _ = station(config(tmp_path), rma("RMA-1"))
    core = cam.core
    actions = core.on_photo_eye(0.0, True) + core.on_photo_eye(200.0, False)
    for t in range(205, 1500, 5):
        actions += core.advance(float(t))
    late = cam.graded(graded(1, "A", ("RMA-1",), t_ms=1500.0))
    assert [d.reason.value for d in actions if isinstance(d, Decision)] == ["no_read"]
    assert late == [OrphanRead("camera:RMA-1", 1500.0), OrphanRead("grade:A", 1500.0)]


def test_an_invalid_photo_gives_the_policys_grade_without_photo(tmp_path: Path) -> None:
    cam, _, _ = station(config(tmp_path), rma("RMA-1"))
    core = cam.core
    actions = core.on_photo_eye(0.0, True) + core.on_photo_eye(200.0, False)
    actions += core.on_barcode(500.0, "RMA-1")
    black = GradedPhoto(Photo(False, 150.0, None, None, "all_black", tag=1), None, None)
    actions += cam.graded(black)
    for t in range(505, 1500, 5):
        actions += core.advance(float(t))
    [d] = [a for a in actions if isinstance(a, Decision)]
    assert (d.lane.name, d.reason.value, dict(d.inputs)["grade"]) == (
        "quarantine",
        "unknown_grade",
        "unknown",
    )
    assert cam.take(1) is black and cam.take(1) is None


def test_without_a_camera_position_the_photo_is_evidence_only(tmp_path: Path) -> None:
    cam, _, _ = station(config(tmp_path, camera_pos_mm=None), rma("RMA-1"))
    core = cam.core
    core.on_photo_eye(0.0, True)
    core.on_photo_eye(200.0, False)
    result = graded(1, "C", ("RMA-2",))
    assert cam.graded(result) == []
    assert core.counters["orphan_reads"] == 0  # nothing was fed to the core
    assert cam.take(1) is result


def test_stored_photos_are_uploaded_and_kept_boundedly_by_parcel(tmp_path: Path) -> None:
    cam, _, sent = station(config(tmp_path, camera_pos_mm=None))
    file = PhotoFile("cd" * 32, T0, 3, tmp_path / "p.jpg")
    with_file = GradedPhoto(Photo(True, 1.0, 2.0, None, tag=1), None, file, b"JPG")
    cam.graded(with_file)
    [upload] = [decode(p, PhotoUpload) for p in sent]
    assert (upload.station, upload.sha256, upload.jpeg_b64) == ("st1", "cd" * 32, "SlBH")
    for pid in range(2, GRADED_KEPT + 3):
        cam.graded(graded(pid))
    assert cam.take(1) is None and cam.take(2) is None  # the oldest went first
    assert cam.take(GRADED_KEPT + 2) is not None
    cam_no_upload, _, quiet = station(config(tmp_path, camera_pos_mm=None, upload=False))
    cam_no_upload.graded(with_file)
    assert quiet == []


def test_the_daemon_photographs_each_parcel_it_inducts_with_its_id(
    tmp_path: Path, scanner_pty: str
) -> None:
    video = write_video(tmp_path / "cam.avi", list(range(1, 40)))
    clock = ManualClock(0.0)
    cfg = station_config(
        tmp_path,
        scanner_pty,
        camera=video_camera(video, trigger_delay_ms=DELAY_MS),
    )
    daemon = StationDaemon(cfg, clock)
    eye = daemon.devices.pin_factory.pin(4)
    daemon.start()
    try:
        eye.drive_high()  # parcel 1 at 0 ms, bouncing once
        eye.drive_low()
        eye.drive_high()
        clock.set(10.0)
        wait_until(lambda: daemon.core.counters["inducted"] == 1, what="parcel 1 inducted")
        clock.set(100.0)
        eye.drive_low()
        clock.set(120.0)  # parcel 2, 120 ms behind parcel 1 (a 300 ms hold-off lost it)
        eye.drive_high()
        clock.set(130.0)
        wait_until(lambda: daemon.core.counters["inducted"] == 2, what="parcel 2 inducted")
        clock.set(1000.0)  # past both triggers: the camera takes both photos
        wait_until(lambda: len(daemon.camera.photos) == 2, timeout_s=20, what="two photos")
    finally:
        daemon.stop()
    assert [(p.tag, p.t_trigger_ms, p.ok) for p in daemon.camera.photos] == [
        (1, 0.0 + DELAY_MS, True),
        (2, 120.0 + DELAY_MS, True),
    ]


def test_the_photos_footprint_is_checked_against_the_catalogue_dimensions(tmp_path: Path) -> None:
    boxed = replace(line("SHOE"), length_mm=330, width_mm=210, height_mm=120)
    cam, _, _ = station(config(tmp_path, camera_pos_mm=DELAY_MS), rma("RMA-1", boxed))
    core = cam.core
    actions = core.on_photo_eye(0.0, True) + core.on_photo_eye(200.0, False)
    small = Grading("A", 0.9, "grade A", Measures(True, length_mm=150.0, width_mm=100.0))
    actions += cam.graded(GradedPhoto(Photo(True, 150.0, 152.0, None, tag=1), small, None))
    actions += core.on_barcode(500.0, "RMA-1")
    for t in range(505, 5000, 5):
        actions += core.advance(float(t))
    [d] = [a for a in actions if isinstance(a, Decision)]
    assert (d.lane.name, d.reason.value, dict(d.inputs)["size_check"]) == (
        "quarantine",
        "size_mismatch",
        "size_mismatch",
    )
    assert "footprint 150x100 mm cannot hold SHOE" in d.explanation
