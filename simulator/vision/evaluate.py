"""Evaluate the grading pipeline: confusion matrix and accuracy.

``python -m simulator.vision.evaluate`` grades a held-out generated set (``--count``, ``--seed``;
the tests use other seeds) and, with ``--photos DIR``, a folder of labelled real photos:
either sub-folders named by the true grade (``DIR/A/*.jpg``, ``DIR/B/...``, ``DIR/C/...``)
or a ``labels.csv`` with ``file,grade`` rows. Real photos are measured with
``--calibration`` (JSON from :mod:`edge.vision.calibration`; default 1 mm/px).
Thresholds are the shipped policy's (``edge.sorter.policy.GradingThresholds``) or a
policy JSON given with ``--policy`` (``DispositionPolicy`` form).

Rows are the true grade, columns the grade given (``unknown`` included); accuracy counts
an ``unknown`` as wrong.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.sorter.policy import GradingThresholds, policy_from_mapping
from edge.vision.calibration import Calibration
from edge.vision.grading import grade_frame

__all__ = ["Confusion", "evaluate", "labelled_photos", "main"]

TRUE = ("A", "B", "C")
GIVEN = ("A", "B", "C", "unknown")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass
class Confusion:
    """Counts of (true grade, given grade)."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, true: str, given: str) -> None:
        """Count one photo."""
        key = (true, given if given in GIVEN else "unknown")
        self.counts[key] = self.counts.get(key, 0) + 1

    @property
    def total(self) -> int:
        """Photos counted."""
        return sum(self.counts.values())

    @property
    def accuracy(self) -> float:
        """Share graded right (0..1; 0 when empty)."""
        right = sum(n for (t, g), n in self.counts.items() if t == g)
        return right / self.total if self.total else 0.0

    def table(self) -> str:
        """The matrix as text, rows true grade, columns given grade."""
        head = "true\\given " + " ".join(f"{g:>8}" for g in GIVEN)
        rows = [head]
        for t in TRUE:
            rows.append(f"{t:>10} " + " ".join(f"{self.counts.get((t, g), 0):>8}" for g in GIVEN))
        rows.append(f"accuracy {self.accuracy:.3f} ({self.total} photos)")
        return "\n".join(rows)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "matrix": {t: {g: self.counts.get((t, g), 0) for g in GIVEN} for t in TRUE},
            "accuracy": round(self.accuracy, 4),
            "total": self.total,
        }


def evaluate(
    samples: Iterable[tuple[Any, str]],
    calibration: Calibration,
    thresholds: GradingThresholds,
) -> Confusion:
    """Grade every (BGR image, true grade) pair; the confusion matrix."""
    out = Confusion()
    for image, true in samples:
        out.add(true, grade_frame(image, calibration, thresholds).grade)
    return out


def generated(count: int, seed: int) -> Iterator[tuple[Any, str]]:
    """``count`` generated photos (``simulator.vision.generator.random_spec``, ``seed``)."""
    from simulator.vision.generator import random_spec, render

    rng = np.random.default_rng(seed)
    for i in range(count):
        spec = random_spec(rng, i)
        yield render(spec), spec.grade


def labelled_photos(folder: Path) -> Iterator[tuple[Any, str]]:
    """(image, true grade) from ``folder`` (grade sub-folders or ``labels.csv``).

    Raises:
        ValueError: a photo that cannot be read, or a grade not in A/B/C.
    """
    folder = Path(folder)
    pairs: list[tuple[Path, str]] = []
    labels = folder / "labels.csv"
    if labels.exists():
        with labels.open(newline="") as fh:
            for row in csv.reader(fh):
                if row and row[0] != "file":
                    pairs.append((folder / row[0], row[1].strip().upper()))
    else:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            pairs += [
                (f, sub.name.upper())
                for f in sorted(sub.iterdir())
                if f.suffix.lower() in IMAGE_SUFFIXES
            ]
    for path, grade in pairs:
        if grade not in TRUE:
            raise ValueError(f"{path}: grade {grade!r} is not one of {TRUE}")
        image = cv2.imread(str(path))
        if image is None:
            raise ValueError(f"{path}: cannot read the image")
        yield image, grade


def main(argv: list[str] | None = None) -> int:
    """``python -m simulator.vision.evaluate``; prints the matrices, returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator.vision.evaluate", description=__doc__
    )
    parser.add_argument("--count", type=int, default=300, help="generated photos")
    parser.add_argument("--seed", type=int, default=2026, help="held-out generator seed")
    parser.add_argument("--photos", type=Path, help="folder of labelled real photos")
    parser.add_argument("--calibration", type=Path, help="calibration JSON for --photos")
    parser.add_argument("--policy", type=Path, help="policy JSON with grading thresholds")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    thresholds = GradingThresholds()
    if args.policy is not None:
        thresholds = policy_from_mapping(json.loads(args.policy.read_text())).grading
    results: dict[str, Any] = {}
    if args.count > 0:
        gen = evaluate(generated(args.count, args.seed), Calibration(1.0), thresholds)
        print(f"generated set (seed {args.seed}):\n{gen.table()}\n")
        results["generated"] = gen.as_dict()
    if args.photos is not None:
        cal = Calibration.load(args.calibration) if args.calibration else Calibration(1.0)
        try:
            real = evaluate(labelled_photos(args.photos), cal, thresholds)
        except (OSError, ValueError) as exc:
            print(f"cannot evaluate {args.photos}: {exc}", file=sys.stderr)
            return 2
        print(f"labelled photos in {args.photos}:\n{real.table()}\n")
        results["photos"] = real.as_dict()
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
