"""The evaluation command: confusion matrix and accuracy, generated and labelled photos."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.sorter.grading import GradingThresholds
from edge.sorter.policy import default_policy, policy_to_mapping
from edge.vision.calibration import Calibration
from simulator.vision.evaluate import Confusion, evaluate, generated, labelled_photos, main
from simulator.vision.generator import ParcelSpec, render

TH0 = replace(GradingThresholds(), min_confidence_a=0.0, min_confidence_b=0.0, min_confidence_c=0.0)


def test_confusion_counts_and_accuracy() -> None:
    c = Confusion()
    for true, given in [("A", "A"), ("A", "B"), ("B", "B"), ("C", "unknown"), ("C", "weird")]:
        c.add(true, given)
    assert c.total == 5 and c.accuracy == pytest.approx(0.4)
    assert c.as_dict()["matrix"]["C"] == {"A": 0, "B": 0, "C": 0, "unknown": 2}
    assert c.abstention == pytest.approx(0.4) and c.safety() == 0
    assert c.precision("A") == 1.0 and c.precision("B") == 0.5 and c.precision("C") is None
    assert "accuracy 0.400, abstention 0.400" in c.table()
    c.add("A", "C")
    c.add("C", "A")
    assert c.safety() == 2


def test_generated_set_with_real_conditions_is_graded_safely() -> None:
    c = evaluate(generated(24, seed=99), Calibration(1.0), GradingThresholds())
    assert c.total == 24
    assert c.safety() == 0, c.table()
    graded = c.total - round(c.abstention * c.total)
    right = round(c.accuracy * c.total)
    assert graded >= 12 and right >= graded - 2, c.table()


def _photos(folder: Path) -> None:
    specs = {
        "a.jpg": (ParcelSpec(seed=1), "A"),
        "b.jpg": (ParcelSpec(seed=2, damage="dent"), "B"),
        "c.jpg": (ParcelSpec(seed=3, damage="tear", severity="major"), "C"),
    }
    for name, (spec, grade) in specs.items():
        sub = folder / "by-grade" / grade
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / name), render(spec), [cv2.IMWRITE_JPEG_QUALITY, 90])
        cv2.imwrite(str(folder / name), render(spec), [cv2.IMWRITE_JPEG_QUALITY, 90])
    (folder / "labels.csv").write_text("file,grade\na.jpg,A\nb.jpg,b\nc.jpg,C\n")


def test_labelled_folders_and_labels_csv(tmp_path: Path) -> None:
    _photos(tmp_path)
    for source in (tmp_path / "by-grade", tmp_path):
        pairs = list(labelled_photos(source))
        assert sorted(g for _, g in pairs) == ["A", "B", "C"]
        c = evaluate(pairs, Calibration(1.0), TH0)
        assert c.accuracy == 1.0, c.table()


def test_command_prints_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _photos(tmp_path)
    out = tmp_path / "eval.json"
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(policy_to_mapping(replace(default_policy(), grading=TH0))))
    args = ["--count", "6", "--photos", str(tmp_path), "--json", str(out), "--policy", str(policy)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "generated set (seed 2026)" in text and "labelled photos" in text
    data = json.loads(out.read_text())
    assert data["photos"]["accuracy"] == 1.0 and data["generated"]["total"] == 6
    assert data["photos"]["safety_errors"] == 0 and set(data["photos"]["reliability"]) == {
        "A",
        "B",
        "C",
    }
    (tmp_path / "labels.csv").write_text("file,grade\na.jpg,D\n")
    assert main(["--count", "0", "--photos", str(tmp_path)]) == 2


def test_unreadable_photo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot read"):
        list(labelled_photos(tmp_path))
    assert np.zeros(1).size == 1
