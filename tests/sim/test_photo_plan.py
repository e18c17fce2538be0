"""Photos a scenario plans for the camera: grades, labels, lanes, and the video itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.sorter.grading import GradingThresholds
from edge.vision.calibration import Calibration
from edge.vision.grading import grade_frame
from protocol.codes import CodeClass, classify
from simulator.harness import plan_run, planned_lanes
from simulator.scenario import (
    PhotoMix,
    ScenarioError,
    gtin_for,
    load_scenario,
    plan_photos,
)
from simulator.vision.video import FRAMES_PER_PARCEL, _read, write_photo_video

SCENARIOS = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"


def test_photo_grades_are_planned_in_exact_counts() -> None:
    plan = plan_photos(PhotoMix(grade_b_rate=0.24, grade_c_rate=0.2, unreadable_rate=0.1), 50, 7)
    assert {g: plan.count(g) for g in ("A", "B", "C", "unreadable")} == {
        "A": 23,
        "B": 12,
        "C": 10,
        "unreadable": 5,
    }
    assert plan_photos(None, 3, 7) == ["A", "A", "A"]


def test_the_demo_fills_all_four_lanes_and_its_lines_declare_the_gtin_on_the_label() -> None:
    demo = load_scenario(SCENARIOS / "demo.yaml")
    assert planned_lanes(demo) == {"restock": 23, "refurbish": 12, "recycle": 10, "quarantine": 15}
    assert demo.expect.lanes == planned_lanes(demo)
    parcels = plan_run(demo, "ABC123")
    unreadable = [p for p in parcels if p.photo == "unreadable"]
    assert {(p.expected_lane, p.expected_reason) for p in unreadable} == {
        ("quarantine", "unknown_grade")
    }
    known = [p for p in parcels if p.label == "known"]
    assert [p.gtin for p in known] == [gtin_for(int(str(p.barcode)[-5:])) for p in known]
    assert all(p.gtin is None for p in parcels if p.label != "known")


def test_gtin_for_gives_valid_gtin_14s() -> None:
    assert gtin_for(1) == "09506000000107"
    c = classify("]C101" + gtin_for(12345))  # the check digit verified by the classifier
    assert (c.code_class, c.gtin) == (CodeClass.GS1, "09506001234501")


@pytest.mark.parametrize(
    ("photos", "why"),
    [
        ("{grade_b_rate: 0.5}", "camera_pos_mm"),
        ("{grade_b_rate: 0.6, grade_c_rate: 0.6}", "must be <= 1"),
    ],
)
def test_photos_need_a_camera_and_sane_rates(tmp_path: Path, photos: str, why: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nstation:\n  belt: {speed_mm_s: 1000, scan_pos_mm: 400}\n"
        "  lanes: [{name: refurbish, disposition: refurbish, pos_mm: 1500, gate_pin: 27}]\n"
        f"parcels: {{known: 4}}\nphotos: {photos}\n"
    )
    with pytest.raises(ScenarioError, match=why):
        load_scenario(path)


def test_photos_need_a_lane_for_each_grade(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nstation:\n  belt: {speed_mm_s: 1000, scan_pos_mm: 400, camera_pos_mm: 0}\n"
        "  lanes: [{name: restock, disposition: restock, pos_mm: 1500, gate_pin: 17}]\n"
        "parcels: {known: 4}\nphotos: {grade_c_rate: 0.5}\n"
    )
    with pytest.raises(ScenarioError, match="grade C parcels need a lane of disposition 'recycle'"):
        load_scenario(path)


def test_the_video_shows_each_parcel_as_planned_where_the_camera_takes_its_photo(
    tmp_path: Path,
) -> None:
    photos = [
        ("A", "RMA-ABC12300001", gtin_for(1)),
        ("B", "RMA-ABC12300002", gtin_for(2)),
        ("C", "RMA-ABC12300003", gtin_for(3)),
        ("unreadable", "RMA-ABC12300004", gtin_for(4)),
        ("A", None, None),
    ]
    frames = _read(write_photo_video(tmp_path / "camera.avi", photos, seed=3))
    assert len(frames) == 1 + FRAMES_PER_PARCEL * (len(photos) + 1)
    seen = []
    for k in range(1, len(photos) + 1):
        g = grade_frame(frames[FRAMES_PER_PARCEL * k], Calibration(1.0), GradingThresholds())
        seen.append((g.grade, g.measures.barcodes))
    assert seen == [
        ("A", ("]C0RMA-ABC12300001", "]C10109506000000107")),
        ("B", ("]C0RMA-ABC12300002", "]C10109506000000206")),
        ("C", ("]C0RMA-ABC12300003", "]C10109506000000305")),
        ("unknown", ("]C0RMA-ABC12300004", "]C10109506000000404")),
        ("A", ()),
    ]
