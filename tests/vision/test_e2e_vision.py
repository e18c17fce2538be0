"""The whole station grading by camera: broker, gateway and station as real processes.

The simulator's camera shows generated grade-A parcels; with ``belt.camera_pos_mm`` set the
station grades each photo and the core sorts on that grade. With an all-black camera
(field case C9) no photo is graded: the shipped policy has no grade without a photo, so
the parcels go to quarantine with ``unknown_grade``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from simulator import harness
from simulator.harness import Run
from simulator.hw.camera import BLACK, write_video
from simulator.scenario import load_scenario

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

SCENARIO = """
name: camera
site: site1
station:
  belt: {speed_mm_s: 1000, scan_pos_mm: 400, length_mm: 3000, camera_pos_mm: 0}
  lanes:
    - {name: restock, disposition: restock, pos_mm: 1400, gate_pin: 17}
    - {name: refurbish, disposition: refurbish, pos_mm: 1800, gate_pin: 27}
    - {name: recycle, disposition: recycle, pos_mm: 2200, gate_pin: 22}
parcels: {known: 2, unknown: 0, no_read: 0, length_mm: [200, 300], gap_mm: [600, 700], seed: 5}
expect:
  lanes: {LANES}
"""


def test_grade_a_photos_restock_and_the_gateway_serves_the_evidence(tmp_path: Path) -> None:
    path = tmp_path / "camera.yaml"
    path.write_text(SCENARIO.replace("{LANES}", "{restock: 2}"))
    with Run(load_scenario(path), tmp_path / "wd") as run:
        report = run.execute()
        events = run.gateway_events()
        assert run.http is not None and run.station is not None
        grader = run.station_status().health.components["grader"]
        photos = {e["photo"]["sha256"]: run.http.get(e["photo"]["url"]) for e in events}
        missing = run.http.get("/api/v1/photos/" + "0" * 64)
    assert report.ok, report.failures
    assert [(r.actual_lane, r.reason) for r in report.parcels] == [("restock", "matched")] * 2
    assert len(events) == 2
    for e in events:
        assert e["grade"] == "A" and e["grade_confidence"] > 0.5
        assert e["grade_explanation"].startswith("grade A: rect_fill")
        assert e["photo"]["content_type"] == "image/jpeg"
        assert e["photo"]["url"] == f"/api/v1/photos/{e['photo']['sha256']}"
    for sha, resp in photos.items():
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
        assert hashlib.sha256(resp.content).hexdigest() == sha
    assert missing.status_code == 404
    assert grader.state == "ok" and int(grader.values["graded"] or 0) >= 2


def test_c9_black_camera_grades_without_photo_by_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "write_parcel_video", lambda p, n: write_video(p, [BLACK] * n))
    path = tmp_path / "camera.yaml"
    path.write_text(SCENARIO.replace("{LANES}", "{quarantine: 2}"))
    with Run(load_scenario(path), tmp_path / "wd") as run:
        report = run.execute()
        events = run.gateway_events()
    # the planner expects known parcels in restock (reason matched): both "mis-sorted", by policy
    assert report.failures == [
        "2 parcel(s) mis-sorted",
        "reason differs from the expected one for parcels ['1: unknown_grade in quarantine, "
        "expected matched', '2: unknown_grade in quarantine, expected matched']",
    ]
    assert report.lane_counts == {"quarantine": 2}
    assert [(r.actual_lane, r.reason) for r in report.parcels] == [
        ("quarantine", "unknown_grade")
    ] * 2
    for e in events:
        assert e["photo"] is None
        assert e["grade"] == "no_photo"
        assert e["grade_explanation"] == "no valid photo: all_black"
