"""Site tuning: split, threshold search, confidence calibration, the site command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.sorter.grading import ConfidenceCurve, GradingThresholds
from edge.sorter.policy import default_policy, policy_from_mapping
from edge.vision.calibration import Calibration
from edge.vision.grading import Grading, Measures
from edge.vision.site import capture_belt, main
from edge.vision.tuning import Labelled, fit_calibration, reliability, split
from protocol.policy import DispositionPolicy
from simulator.vision.generator import random_spec, render, render_empty


def _m(rect_fill: float) -> Measures:
    return Measures(True, length_mm=300, width_mm=200, rect_fill=rect_fill, solidity=0.995)


def test_split_is_per_grade_and_stable() -> None:
    items = [Labelled(f"p{i}.jpg", "ABC"[i % 3], _m(0.99)) for i in range(30)]
    tune, test = split(items, 0.3)
    assert len(test) == 9 and len(tune) == 21
    assert sorted(x.grade for x in test) == ["A"] * 3 + ["B"] * 3 + ["C"] * 3
    more = [*items, Labelled("zz.jpg", "A", _m(0.99))]
    assert {x.name for x in split(more, 0.3)[1]} >= {x.name for x in test if x.grade != "A"}


def test_calibration_is_monotone_and_capped() -> None:
    # rect_fill decides: high fill right as A, low fill wrong half the time
    items = []
    for i in range(40):
        fill = 0.99 + 0.0002 * i
        items.append(Labelled(f"a{i}", "A" if i >= 10 or i % 2 else "B", _m(fill)))
    curves = fit_calibration(items, GradingThresholds())
    [a] = [c for c in curves if c.grade == "A" and c.backend == "measures"]
    ys = [y for _, y in a.points]
    assert ys == sorted(ys)
    assert ys[-1] <= 41 / 42 + 1e-4
    assert a(0.5) < a(1.0)


def test_reliability_counts_per_grade() -> None:
    g = lambda grade, conf: Grading(grade, conf, "", Measures(True))  # noqa: E731
    rows = [("A", g("A", 0.9)), ("B", g("A", 0.9)), ("C", g("C", 0.6))]
    r = reliability(rows)
    assert r["A"]["n"] == 2 and r["A"]["precision"] == 0.5 and r["A"]["ece"] == pytest.approx(0.4)
    assert r["C"] == {"n": 1, "precision": 1.0, "mean_confidence": 0.6, "ece": 0.4}


def test_a_curve_refuses_points_out_of_order() -> None:
    with pytest.raises(ValueError, match="increasing"):
        ConfidenceCurve("measures", "A", ((0.6, 0.5), (0.5, 0.9)))
    with pytest.raises(ValueError, match="unknown grade"):
        ConfidenceCurve("measures", "D", ((0.5, 0.5),))


def _labelled_folder(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(77)
    rows = [["file", "grade"]]
    for i in range(count):
        spec = random_spec(rng, i, conditions=False)
        cv2.imwrite(str(folder / f"p{i:03d}.jpg"), render(spec), [cv2.IMWRITE_JPEG_QUALITY, 90])
        rows.append([f"p{i:03d}.jpg", spec.grade])
    rows.append(["not-yet.jpg", ""])  # not labelled yet: skipped
    with (folder / "labels.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_site_tune_writes_a_policy_the_gateway_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _labelled_folder(tmp_path / "photos", 30)
    Calibration(1.0).save(tmp_path / "cal.json")
    out = tmp_path / "tuned.json"
    code = main(
        [
            "tune",
            "--photos",
            str(tmp_path / "photos"),
            "--calibration",
            str(tmp_path / "cal.json"),
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert "30 labelled photos; held-out part (9)" in text
    assert (
        "with the current policy default-1" in text
        and "with the tuned policy default-1-tuned" in text
    )
    data = json.loads(out.read_text())
    wire = DispositionPolicy.model_validate(data)  # what PUT /api/v1/policy validates
    assert wire.version == "default-1-tuned"
    tuned = policy_from_mapping(data)
    assert tuned.rules == default_policy().rules
    assert any(c.backend == "measures" for c in tuned.grading.calibration)
    assert code in (0, 1) and (code == 1) == ("NOT SAFE" in text)
    assert main(["report", "--photos", str(tmp_path / "photos"), "--policy", str(out)]) == 0
    assert "with policy default-1-tuned" in capsys.readouterr().out


def test_site_tune_needs_every_grade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "A").mkdir()
    cv2.imwrite(str(tmp_path / "A" / "a.jpg"), render(random_spec(np.random.default_rng(1), 0)))
    assert main(["tune", "--photos", str(tmp_path), "--out", str(tmp_path / "o.json")]) == 2
    assert "no labelled photo of grade(s)" in capsys.readouterr().err


class _Camera:
    def __init__(self, frames: list[object]) -> None:
        self.frames = frames

    def capture(self, t_ms: float, tag: object = None) -> object:
        from edge.drivers.camera import Photo

        frame = self.frames.pop(0)
        return Photo(
            frame is not None, t_ms, t_ms, frame, None if frame is not None else "all_black"
        )


def test_capture_belt_keeps_valid_frames_only(tmp_path: Path) -> None:
    spec = random_spec(np.random.default_rng(3), 0)
    frames = [render_empty(spec, seed=i) if i % 2 else None for i in range(8)]
    files = capture_belt(_Camera(frames), 3, tmp_path / "belt", interval_s=0.0)
    assert [f.name for f in files] == ["belt-000.png", "belt-001.png", "belt-002.png"]
    with pytest.raises(OSError, match="only 0 of 2"):
        capture_belt(_Camera([None] * 6), 2, tmp_path / "none", interval_s=0.0)


def test_collect_writes_labels_to_fill_in(tmp_path: Path) -> None:
    from edge.vision.site import collect

    station = tmp_path / "station"
    station.mkdir()
    rng = np.random.default_rng(4)
    for i in range(3):
        cv2.imwrite(str(station / f"{i:064x}.jpg"), render(random_spec(rng, i, conditions=False)))
    labels = collect(station, tmp_path / "label-me", Calibration(1.0), GradingThresholds())
    rows = list(csv.reader(labels.open()))
    assert rows[0] == ["file", "grade", "suggested", "why"] and len(rows) == 4
    assert all(r[1] == "" and r[2] in ("A", "B", "C", "unknown") for r in rows[1:])
    rows[1][1] = "A"
    with labels.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    collect(station, tmp_path / "label-me", Calibration(1.0), GradingThresholds())
    assert list(csv.reader(labels.open()))[1][1] == "A"  # a person's label is kept
