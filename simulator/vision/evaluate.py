"""Evaluate the grading pipeline on generated, foreign and real photos, each on its own.

Confusion matrices, per-grade precision and reliability, abstention.

``python -m simulator.vision.evaluate`` grades:

* a held-out **generated** set (``--count``, ``--seed``; :mod:`simulator.vision.generator`
  with the conditions real photos have; the tests and the tuning use other seeds);
* with ``--foreign N``, a **foreign** set (:mod:`simulator.vision.foreign`: another
  renderer, its own seed, never tuned on);
* with ``--photos DIR``, a folder of **labelled real photos**: grade sub-folders
  (``DIR/A/*.jpg``, ``DIR/B/...``, ``DIR/C/...``) or a ``labels.csv`` with ``file,grade``
  rows, measured with ``--calibration`` (JSON from :mod:`edge.vision.calibration`;
  default 1 mm/px) and ``--background`` (the empty belt).

Thresholds are the shipped policy's or a policy JSON given with ``--policy``
(``DispositionPolicy`` form, e.g. written by ``python -m edge.vision.site tune``).
``--calibrate`` fits the shipped defaults instead: thresholds and confidence curves on
the generated *tuning* set (seed 1), printed as the policy's ``grading`` JSON.

Rows are the true grade, columns the grade given (``unknown`` included); accuracy counts
an ``unknown`` as wrong. Exit status 0, or 2 when the photos cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.sorter.grading import GradingThresholds, grading_to_mapping
from edge.sorter.policy import policy_from_mapping
from edge.vision.calibration import Calibration
from edge.vision.grading import BackgroundModel, GradeBackend, grade_frame, measure
from edge.vision.tuning import (
    Confusion,
    Labelled,
    fit_calibration,
    labelled_files,
    read_photo,
    tune_thresholds,
)

__all__ = ["Confusion", "evaluate", "generated", "labelled_photos", "main"]

Sample = tuple[Any, str] | tuple[Any, str, Any]


def evaluate(
    samples: Iterable[Sample],
    calibration: Calibration,
    thresholds: GradingThresholds,
    background: BackgroundModel | None = None,
    backend: GradeBackend | None = None,
) -> Confusion:
    """Grade every (BGR image, true grade[, background or calibration]) sample.

    A third item (one, or a tuple of them) overrides ``background`` (a
    :class:`BackgroundModel`) or ``calibration`` (a :class:`Calibration`) for that photo;
    a None in it means no background model.
    """
    out = Confusion()
    for sample in samples:
        image, true = sample[0], sample[1]
        bg, cal = background, calibration
        extra = sample[2] if len(sample) > 2 else None
        for item in extra if isinstance(extra, tuple) else (extra,):
            if isinstance(item, BackgroundModel):
                bg = item
            elif isinstance(item, Calibration):
                cal = item
        out.add(true, grade_frame(image, cal, thresholds, bg, backend=backend))
    return out


def generated(count: int, seed: int, conditions: bool = True) -> Iterator[tuple[Any, str, Any]]:
    """``count`` generated photos (``random_spec``, ``seed``) with their background.

    A background model of the empty belt for a roller belt (a site with one must capture it) and
    every other photo, none for the rest.
    """
    from simulator.vision.generator import random_spec, render, render_empty

    rng = np.random.default_rng(seed)
    for i in range(count):
        spec = random_spec(rng, i, conditions=conditions)
        bg = None
        if spec.belt == "rollers" or i % 2:
            bg = BackgroundModel([render_empty(spec, seed=spec.seed + 1)])
        yield render(spec), spec.grade, bg


def labelled_photos(folder: Path) -> Iterator[tuple[Any, str]]:
    """(image, true grade) from ``folder`` (grade sub-folders or ``labels.csv``).

    Raises:
        ValueError: a photo that cannot be read, or a grade not in A/B/C.
    """
    for path, grade in labelled_files(folder):
        yield read_photo(path), grade


def calibrate_defaults(count: int = 600, seed: int = 1) -> GradingThresholds:
    """Thresholds and confidence curves fitted on the generated tuning set."""
    base = GradingThresholds()
    cal = Calibration(1.0)
    items = []
    for i, (image, grade, bg) in enumerate(generated(count, seed)):
        items.append(Labelled(f"gen-{i}", grade, measure(image, cal, base, bg)))
    half = len(items) // 2
    tuned = tune_thresholds(items[:half], base)
    return replace(tuned, calibration=fit_calibration(items[half:], tuned))


def _report(name: str, c: Confusion, results: dict[str, Any], key: str) -> None:
    print(f"{name}:\n{c.table()}\n")
    results[key] = c.as_dict()


def main(argv: list[str] | None = None) -> int:
    """``python -m simulator.vision.evaluate``; prints the matrices, returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator.vision.evaluate", description=__doc__
    )
    parser.add_argument("--count", type=int, default=300, help="generated photos")
    parser.add_argument("--seed", type=int, default=2026, help="held-out generator seed")
    parser.add_argument("--foreign", type=int, default=0, help="foreign photos (other renderer)")
    parser.add_argument("--photos", type=Path, help="folder of labelled real photos")
    parser.add_argument("--calibration", type=Path, help="calibration JSON for --photos")
    parser.add_argument("--background", type=Path, help="empty-belt photo for --photos")
    parser.add_argument("--policy", type=Path, help="policy JSON with grading thresholds")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument(
        "--calibrate", action="store_true", help="fit the shipped defaults; print them"
    )
    args = parser.parse_args(argv)
    if args.calibrate:
        tuned = calibrate_defaults(max(args.count, 100))
        print(json.dumps(grading_to_mapping(tuned), indent=2))
        return 0
    thresholds = GradingThresholds()
    if args.policy is not None:
        thresholds = policy_from_mapping(json.loads(args.policy.read_text())).grading
    results: dict[str, Any] = {}
    if args.count > 0:
        gen = evaluate(generated(args.count, args.seed), Calibration(1.0), thresholds)
        _report(f"generated set (seed {args.seed})", gen, results, "generated")
    if args.foreign > 0:
        from simulator.vision.foreign import foreign_set

        foreign = evaluate(foreign_set(args.foreign), Calibration(1.0), thresholds)
        _report("foreign set (other renderer, never tuned on)", foreign, results, "foreign")
    if args.photos is not None:
        cal = Calibration.load(args.calibration) if args.calibration else Calibration(1.0)
        try:
            bg = BackgroundModel([read_photo(args.background)]) if args.background else None
            real = evaluate(labelled_photos(args.photos), cal, thresholds, bg)
        except (OSError, ValueError) as exc:
            print(f"cannot evaluate {args.photos}: {exc}", file=sys.stderr)
            return 2
        _report(f"labelled photos in {args.photos}", real, results, "photos")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
