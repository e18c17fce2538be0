"""Vision at the station: the grader thread, C9 photos, evidence, retention, policy data."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import ConfigError, StationConfig, VisionSection
from edge.drivers.camera import Photo
from edge.drivers.opencv_camera import OpencvCamera
from edge.sorter.grading import grading_to_mapping
from edge.sorter.policy import (
    GradingThresholds,
    Policy,
    default_policy,
    policy_from_mapping,
    policy_to_mapping,
)
from edge.vision.calibration import Calibration
from edge.vision.photos import PhotoStore
from edge.vision.worker import PhotoGrader
from gateway.services.photos import PhotoStore as GatewayPhotoStore
from protocol import PhotoUpload, ProtocolError
from protocol.policy import DispositionPolicy
from protocol.policy import GradingThresholds as WireThresholds
from simulator.hw.camera import BLACK, write_video
from simulator.vision.generator import ParcelSpec, render
from tests.cases import field_case

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DAY_S = 86_400


def grader(tmp_path: Path) -> PhotoGrader:
    return PhotoGrader(
        PhotoStore(tmp_path / "photos", retention_days=30),
        Calibration(1.0),
        GradingThresholds,
        lambda t_ms: T0,
    )


def test_valid_photo_is_stored_with_its_hash_and_graded(tmp_path: Path) -> None:
    g = grader(tmp_path)
    frame = render(ParcelSpec(damage="dent", seed=4))
    result = g.process(Photo(True, 100.0, 120.0, frame, tag=100.0))
    assert result.grading is not None and result.grading.measured_grade == "B"
    assert result.grading.grade in ("B", "unknown")
    assert result.file is not None and result.jpeg is not None
    assert result.file.sha256 == hashlib.sha256(result.jpeg).hexdigest()
    assert result.file.path.read_bytes() == result.jpeg
    assert (result.file.taken_at, result.file.size) == (T0, len(result.jpeg))
    decoded = cv2.imdecode(np.frombuffer(result.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == frame.shape


@pytest.mark.parametrize("reason", ["before_trigger", "all_black", "same_as_previous"])
def test_c9_invalid_photo_is_never_graded_nor_kept(tmp_path: Path, reason: str) -> None:
    g = grader(tmp_path)
    result = g.process(Photo(False, 100.0, None, None, reason, (reason,), tag=100.0))  # type: ignore[arg-type]
    assert (result.grading, result.file, result.jpeg) == (None, None, None)
    assert g.counters == {"graded": 0, "no_photo": 1, "errors": 0}
    assert list((tmp_path / "photos").iterdir()) == []


def test_c9_black_and_frozen_frames_from_the_real_capture_are_not_graded(tmp_path: Path) -> None:
    assert [c["expect"] for c in field_case("C9_camera")] == ["photo_invalid"] * 3
    g = grader(tmp_path)
    black = OpencvCamera(
        str(write_video(tmp_path / "b.avi", [BLACK] * 6)), api="ffmpeg", flush_frames=0
    )
    frozen = OpencvCamera(
        str(write_video(tmp_path / "f.avi", [3] * 8)), api="ffmpeg", flush_frames=0
    )
    assert frozen.capture(0.0).ok  # the first frame is fresh; the same one again is stale
    for photo in (black.capture(0.0), frozen.capture(0.0)):
        assert not photo.ok and photo.frame is None
        assert g.process(photo).grading is None
    black.stop()
    frozen.stop()


def test_grader_thread_delivers_results_in_order(tmp_path: Path) -> None:
    g = grader(tmp_path)
    got: list[object] = []
    g.start(got.append)
    g.submit(Photo(True, 1.0, 2.0, render(ParcelSpec(seed=1)), tag=1.0))
    g.submit(Photo(False, 3.0, None, None, "all_black", tag=3.0))
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    g.stop()
    grades = [(r.photo.tag, r.grading.grade if r.grading else None) for r in got]  # type: ignore[attr-defined]
    assert grades == [(1.0, "A"), (3.0, None)]
    assert g.status()["graded"] == 1 and g.status()["no_photo"] == 1


def test_station_retention_deletes_photos_older_than_n_days(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path, retention_days=30)
    old, _ = store.save(render(ParcelSpec(seed=1)), T0)
    new, _ = store.save(render(ParcelSpec(seed=2)), T0)
    now = time.time()
    os.utime(old.path, (now - 31 * DAY_S, now - 31 * DAY_S))
    os.utime(new.path, (now - 29 * DAY_S, now - 29 * DAY_S))
    assert store.purge(now) == 1
    assert not old.path.exists() and new.path.exists()
    assert store.purge(now + 2 * DAY_S) == 1


def _upload(jpeg: bytes, sha: str | None = None) -> PhotoUpload:
    return PhotoUpload(
        station="station1",
        sha256=sha or hashlib.sha256(jpeg).hexdigest(),
        taken_at=T0,
        jpeg_b64=base64.b64encode(jpeg).decode(),
    )


def test_gateway_stores_once_checks_the_hash_and_purges(tmp_path: Path) -> None:
    _ok, buf = cv2.imencode(".jpg", render(ParcelSpec(seed=3)))
    jpeg = buf.tobytes()
    store = GatewayPhotoStore(tmp_path, retention_days=365)
    up = _upload(jpeg)
    assert store.store(up) is True and store.store(up) is False
    path = store.path(up.sha256)
    assert path is not None and path.read_bytes() == jpeg
    assert store.path("0" * 64) is None and store.path("../etc/passwd") is None
    with pytest.raises(ProtocolError, match="hash does not match"):
        store.store(_upload(jpeg, "0" * 64))
    with pytest.raises(ProtocolError, match="not a JPEG"):
        store.store(_upload(b"GIF89a-not-jpeg"))
    now = time.time()
    assert store.purge(now + 364 * DAY_S) == 0
    assert store.purge(now + 366 * DAY_S) == 1 and store.path(up.sha256) is None


def test_grading_thresholds_and_grade_without_photo_are_policy_data() -> None:
    wire = DispositionPolicy(
        version="p-7",
        rules=[{"disposition": "restock", "reason": "matched", "grades": ["A"]}],  # type: ignore[list-item]
        grade_without_photo="C",
        grading=WireThresholds(min_rect_fill_a=0.99, max_dark_fraction_b=0.02),
    )
    policy = policy_from_mapping(wire.model_dump())
    assert policy.grade_without_photo == "C"
    assert policy.grading == GradingThresholds(min_rect_fill_a=0.99, max_dark_fraction_b=0.02)
    assert policy_from_mapping(policy_to_mapping(policy)) == policy
    # the wire defaults are the station's defaults, curves included, both ways
    assert (
        policy_from_mapping({**wire.model_dump(), "grading": WireThresholds().model_dump()}).grading
        == GradingThresholds()
    )
    assert (
        WireThresholds.model_validate(grading_to_mapping(GradingThresholds())) == WireThresholds()
    )
    # a pushed policy's grading is bounded and checked at the boundary
    with pytest.raises(ValueError, match="unknown key"):
        policy_from_mapping({**policy_to_mapping(policy), "grading": {"min_rect_fill": 0.9}})
    with pytest.raises(ValueError, match="increasing"):
        policy_from_mapping(
            {
                **policy_to_mapping(policy),
                "grading": {
                    "calibration": [
                        {"backend": "measures", "grade": "A", "points": [[0.9, 0.5], [0.5, 0.6]]}
                    ]
                },
            }
        )
    assert default_policy().grade_without_photo is None  # no photo: unknown -> quarantine
    with pytest.raises(ValueError, match="grade without photo"):
        Policy("x", default_policy().rules, grade_without_photo="Z")
    with pytest.raises(ValueError, match="ordered"):
        GradingThresholds(min_rect_fill_a=0.9, min_rect_fill_b=0.95)


def test_vision_config_section(tmp_path: Path) -> None:
    base = {
        "station": {"id": "s1", "site": "site1"},
        "photo_eye": {"pin": 4},
        "scanner": {"url": "loop://"},
        "belt": {"speed_mm_s": 1000, "scan_pos_mm": 400, "length_mm": 3000},
        "lanes": [{"name": "restock", "disposition": "restock", "pos_mm": 1400, "gate_pin": 17}],
    }
    assert StationConfig.model_validate(base).vision == VisionSection()
    cfg = StationConfig.model_validate({**base, "vision": {"retention_days": 7, "mm_per_px": 0.5}})
    assert (cfg.vision.retention_days, cfg.vision.mm_per_px) == (7, 0.5)
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[station]\nid = "s1"\nsite = "site1"\n[photo_eye]\npin = 4\n[scanner]\nurl = "x"\n'
        "[belt]\nspeed_mm_s = 1000\nscan_pos_mm = 400\nlength_mm = 3000\n"
        '[[lanes]]\nname = "restock"\ndisposition = "restock"\npos_mm = 1400\ngate_pin = 17\n'
        "[vision]\nretention_dayz = 3\n"
    )
    from edge.config import load_config

    with pytest.raises(ConfigError, match="retention_dayz"):
        load_config(toml)
