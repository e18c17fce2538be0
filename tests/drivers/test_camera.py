"""Camera (C9): OpenCV's real capture code on a generated video file; fresh frames only."""

from __future__ import annotations

import threading
from pathlib import Path

from edge.drivers.camera import Camera, FrameJudge, Photo
from edge.drivers.opencv_camera import OpencvCamera
from simulator.hw.camera import BLACK, scene, write_video
from tests.cases import field_case


def camera(path: Path, **kw: object) -> OpencvCamera:
    args: dict[str, object] = {"api": "ffmpeg", "flush_frames": 0, "max_attempts": 3}
    args.update(kw)
    return OpencvCamera(str(path), **args)  # type: ignore[arg-type]


def test_frame_judge_exact_reasons() -> None:
    judge = FrameJudge(black_level=8, frozen_diff=0.5)
    a, b = scene(1), scene(2)
    assert judge.judge(a, 100.0, 100.0, None) is None
    assert judge.judge(a, 99.0, 100.0, None) == "before_trigger"
    assert judge.judge(a * 0, 100.0, 100.0, None) == "all_black"
    assert judge.judge(a, 100.0, 100.0, a.copy()) == "same_as_previous"
    assert judge.judge(b, 100.0, 100.0, a) is None
    assert judge.judge(None, None, 100.0, a) == "read_failed"


def test_buffered_frames_are_flushed_and_the_photo_is_fresh(tmp_path: Path) -> None:
    cam = camera(write_video(tmp_path / "v.avi", [0, 1, 2, 3, 4, 5]), flush_frames=2)
    assert isinstance(cam, Camera)
    photo = cam.capture(0.0, tag=7)
    assert (photo.ok, photo.t_frame_ms, photo.rejected, photo.tag) == (True, 200.0, (), 7)
    assert photo.frame.shape == (64, 96, 3)
    cam.stop()


def test_c9_frame_taken_before_the_trigger_is_invalid(tmp_path: Path) -> None:
    cases = field_case("C9_camera")
    assert cases[1] == {"frames": ["timestamp_before_trigger"], "expect": "photo_invalid"}
    path = write_video(tmp_path / "v.avi", list(range(10)))
    late = camera(path, max_attempts=2).capture(250.0)
    assert (late.ok, late.reason, late.rejected, late.frame) == (
        False,
        "before_trigger",
        ("before_trigger",),
        None,
    )
    patient = camera(path, max_attempts=5).capture(250.0)
    assert (patient.ok, patient.t_frame_ms) == (True, 300.0)
    assert patient.rejected == ("before_trigger",) * 3


def test_c9_same_frame_twice_is_invalid(tmp_path: Path) -> None:
    assert field_case("C9_camera")[0]["expect"] == "photo_invalid"
    cam = camera(write_video(tmp_path / "v.avi", [4] * 8))
    first = cam.capture(0.0)
    assert first.ok is True
    again = cam.capture(0.0)
    assert (again.ok, again.reason, again.rejected) == (
        False,
        "same_as_previous",
        ("same_as_previous", "same_as_previous"),
    )
    assert cam.status()["rejects"] == {"same_as_previous": 3}


def test_c9_all_black_is_invalid_and_repeated_failure_reopens(tmp_path: Path) -> None:
    assert field_case("C9_camera")[2]["expect"] == "photo_invalid"
    cam = camera(write_video(tmp_path / "v.avi", [BLACK] * 6 + [1]), reopen_after_failures=2)
    photos: list[Photo] = [cam.capture(0.0), cam.capture(0.0)]
    assert [(p.ok, p.reason) for p in photos] == [(False, "all_black"), (False, "all_black")]
    st = cam.status()
    assert (st["reopens"], st["opens"], st["invalid_photos"], st["state"]) == (1, 2, 2, "degraded")
    assert st["last_error"] == "invalid photo: all_black"
    # reopened: the file starts again from its first frame
    assert cam.capture(0.0).rejected == ("all_black", "all_black")


def test_missing_device_fails_self_test_and_capture_is_invalid(tmp_path: Path) -> None:
    cam = camera(tmp_path / "absent.avi")
    result = cam.self_test()
    assert result["ok"] is False and "cannot open camera" in str(result["detail"])
    assert cam.status()["state"] == "failed"
    photo = cam.capture(10.0)
    assert (photo.ok, photo.reason) == (False, "read_failed")


def test_worker_thread_delivers_triggered_photos(tmp_path: Path) -> None:
    cam = camera(write_video(tmp_path / "v.avi", [1, 2, 3, 4]), timestamps="read")
    assert cam.self_test()["ok"] is True
    got: list[Photo] = []
    done = threading.Event()
    cam.start(lambda p: (got.append(p), done.set()))
    cam.trigger(cam.clock(), tag="parcel-1")
    assert done.wait(10)
    cam.stop()
    assert [(p.ok, p.tag, p.rejected) for p in got] == [(True, "parcel-1", ())]
    assert cam.status()["state"] == "stopped"
