"""Evaluating and tuning the grader on labelled photos.

Confusion matrix, per-grade precision and reliability, confidence calibration, threshold
search, held-out split.

Product code (the site tool, :mod:`edge.vision.site`) and the simulator's evaluation
(:mod:`simulator.vision.evaluate`) both build on this module; it never imports the
simulator.

* :class:`Confusion`: rows the true grade (A, B, C), columns the grade given (``unknown``
  included); accuracy counts ``unknown`` as wrong; :meth:`Confusion.safety` counts the
  errors that destroy or mis-sell stock (an intact parcel graded C, a damaged one A).
* :func:`reliability`: per grade given, how many, how often right (precision), the mean
  confidence, and the expected calibration error (ECE: |confidence - right| averaged
  over 5 confidence bins weighted by count; Guo et al., *On calibration of modern neural
  networks*, ICML 2017).
* :func:`fit_calibration`: isotonic regression of "the grade given was right" on the raw
  score, per grade (``sklearn.isotonic.IsotonicRegression``; install the ``tuning``
  extra), capped at the rule-of-succession bound (n + 1) / (n + 2) for n photos of that
  grade, thinned to at most 32 points.
* :func:`tune_thresholds`: coordinate search of the six A/B limits over the measures'
  own quantiles, minimising a cost where a safety error counts 50 and any other wrong
  grade 1 (``unknown`` 0.3); abstention limits are physical and not searched.
* :func:`split`: a deterministic, per-grade held-out split (by file name hash).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.sorter.grading import ConfidenceCurve, GradingThresholds
from edge.vision.grading import GradeBackend, Grading, Measures, grade_measures

__all__ = [
    "GIVEN",
    "IMAGE_SUFFIXES",
    "TRUE",
    "Confusion",
    "Labelled",
    "fit_calibration",
    "labelled_files",
    "reliability",
    "split",
    "tune_thresholds",
]

TRUE = ("A", "B", "C")
GIVEN = ("A", "B", "C", "unknown")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
SAFETY_COST = 50.0
UNKNOWN_COST = 0.3


@dataclass
class Confusion:
    """Counts of (true grade, given grade), and the gradings for reliability."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    graded: list[tuple[str, Grading]] = field(default_factory=list, repr=False)

    def add(self, true: str, given: str | Grading) -> None:
        """Count one photo (a grade or a whole :class:`Grading`)."""
        if isinstance(given, Grading):
            self.graded.append((true, given))
            given = given.grade
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

    @property
    def abstention(self) -> float:
        """Share graded ``unknown`` (0..1)."""
        n = sum(n for (_, g), n in self.counts.items() if g == "unknown")
        return n / self.total if self.total else 0.0

    def safety(self) -> int:
        """Intact parcels graded C plus damaged ones graded A."""
        c = self.counts
        return c.get(("A", "C"), 0) + c.get(("B", "A"), 0) + c.get(("C", "A"), 0)

    def precision(self, grade: str) -> float | None:
        """Share right among the photos given ``grade`` (None: none given)."""
        given = sum(n for (_, g), n in self.counts.items() if g == grade)
        return self.counts.get((grade, grade), 0) / given if given else None

    def table(self) -> str:
        """The matrix, per-grade precision and reliability, accuracy, abstention."""
        head = "true\\given " + " ".join(f"{g:>8}" for g in GIVEN)
        rows = [head]
        for t in TRUE:
            rows.append(f"{t:>10} " + " ".join(f"{self.counts.get((t, g), 0):>8}" for g in GIVEN))
        for grade, r in reliability(self.graded).items():
            prec = "-" if r["precision"] is None else f"{r['precision']:.3f}"
            rows.append(
                f"given {grade}: {r['n']} photos, precision {prec}, mean confidence "
                f"{r['mean_confidence']:.3f}, ECE {r['ece']:.3f}"
            )
        rows.append(
            f"accuracy {self.accuracy:.3f}, abstention {self.abstention:.3f}, intact graded C "
            f"or damaged graded A: {self.safety()} ({self.total} photos)"
        )
        return "\n".join(rows)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "matrix": {t: {g: self.counts.get((t, g), 0) for g in GIVEN} for t in TRUE},
            "accuracy": round(self.accuracy, 4),
            "abstention": round(self.abstention, 4),
            "safety_errors": self.safety(),
            "precision": {g: self.precision(g) for g in TRUE},
            "reliability": reliability(self.graded),
            "total": self.total,
        }


def reliability(graded: Sequence[tuple[str, Grading]], bins: int = 5) -> dict[str, Any]:
    """Per grade given (A, B, C): n, precision, mean confidence, ECE (see module doc)."""
    out: dict[str, Any] = {}
    for grade in TRUE:
        rows = [(g.confidence, t == grade) for t, g in graded if g.grade == grade]
        if not rows:
            continue
        conf = np.array([c for c, _ in rows])
        right = np.array([r for _, r in rows], float)
        edges = np.linspace(0.0, 1.0, bins + 1)
        ece = 0.0
        for lo, hi in itertools.pairwise(edges):
            sel = (conf >= lo) & ((conf < hi) | (hi == 1.0))
            if np.any(sel):
                ece += (
                    float(np.sum(sel))
                    / len(rows)
                    * abs(float(conf[sel].mean() - right[sel].mean()))
                )
        out[grade] = {
            "n": len(rows),
            "precision": round(float(right.mean()), 4),
            "mean_confidence": round(float(conf.mean()), 4),
            "ece": round(ece, 4),
        }
    return out


@dataclass(frozen=True)
class Labelled:
    """A labelled photo: its path (or name), the true grade, and what was measured."""

    name: str
    grade: str
    measures: Measures
    frame: Any = field(default=None, repr=False, compare=False)


def labelled_files(folder: Path) -> list[tuple[Path, str]]:
    """(photo, true grade) pairs of ``folder``.

    Grade sub-folders (``A/``, ``B/``, ``C/``) or a ``labels.csv`` with ``file,grade`` rows (rows
    with an empty grade are skipped: not labelled yet).

    Raises:
        ValueError: a grade not in A/B/C, or a file listed that is missing.
    """
    folder = Path(folder)
    pairs: list[tuple[Path, str]] = []
    labels = folder / "labels.csv"
    if labels.exists():
        with labels.open(newline="") as fh:
            for row in csv.reader(fh):
                if not row or row[0] == "file" or len(row) < 2 or not row[1].strip():
                    continue
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
        if not path.exists():
            raise ValueError(f"{path}: listed but missing")
    return pairs


def read_photo(path: Path) -> Any:
    """A BGR photo (``cv2.imread``).

    Raises:
        ValueError: the file cannot be read as an image.
    """
    image = cv2.imread(str(path))
    if image is None:
        raise ValueError(f"{path}: cannot read the image")
    return image


def split(
    items: Sequence[Labelled], held_out: float = 0.3
) -> tuple[list[Labelled], list[Labelled]]:
    """(tune, held-out): per grade, the ``held_out`` share with the lowest name hashes.

    Deterministic in the names, so a re-run with more photos keeps the old split.
    """
    tune: list[Labelled] = []
    test: list[Labelled] = []
    for grade in TRUE:
        group = sorted(
            (x for x in items if x.grade == grade),
            key=lambda x: hashlib.sha256(x.name.encode()).hexdigest(),
        )
        k = round(len(group) * held_out)
        test += group[:k]
        tune += group[k:]
    return tune, test


def evaluate_measured(
    items: Iterable[Labelled], thresholds: GradingThresholds, backend: GradeBackend | None = None
) -> Confusion:
    """Grade measured photos (no re-measuring: thresholds and calibration only)."""
    out = Confusion()
    for x in items:
        out.add(x.grade, grade_measures(x.measures, thresholds, None, backend, x.frame))
    return out


def _cost(c: Confusion) -> float:
    wrong = sum(n for (t, g), n in c.counts.items() if t != g and g != "unknown")
    unknown = sum(n for (_, g), n in c.counts.items() if g == "unknown")
    return SAFETY_COST * c.safety() + (wrong - c.safety()) + UNKNOWN_COST * unknown


_LIMITS = (
    ("min_rect_fill_a", "rect_fill"),
    ("min_rect_fill_b", "rect_fill"),
    ("min_solidity_a", "solidity"),
    ("min_solidity_b", "solidity"),
    ("max_dark_fraction_a", "dark_fraction"),
    ("max_dark_fraction_b", "dark_fraction"),
)


def tune_thresholds(
    items: Sequence[Labelled], base: GradingThresholds, rounds: int = 3
) -> GradingThresholds:
    """The six A/B limits minimising the cost on ``items`` (see the module doc).

    Candidate values: the midpoints between distinct measured values (at most 40
    quantiles per measure); ordering A before B is kept. Confidence is ignored while
    searching (all minimum confidences 0); the calibration is fitted afterwards.
    """
    usable = [x for x in items if x.measures.found and not x.measures.checks]
    probe = replace(base, min_confidence_a=0.0, min_confidence_b=0.0, min_confidence_c=0.0)
    best = probe
    best_cost = _cost(evaluate_measured(usable, best))
    for _ in range(rounds):
        improved = False
        for limit, measure_name in _LIMITS:
            values = np.unique([getattr(x.measures, measure_name) for x in usable])
            if values.size < 2:
                continue
            mids = (values[1:] + values[:-1]) / 2.0
            if mids.size > 40:
                mids = np.quantile(mids, np.linspace(0, 1, 40))
            for v in mids:
                try:
                    cand = replace(best, **{limit: round(float(v), 4)})  # type: ignore[arg-type]
                except ValueError:
                    continue  # would break the A-before-B order
                cost = _cost(evaluate_measured(usable, cand))
                if cost < best_cost - 1e-9:
                    best, best_cost, improved = cand, cost, True
        if not improved:
            break
    return replace(
        best,
        min_confidence_a=base.min_confidence_a,
        min_confidence_b=base.min_confidence_b,
        min_confidence_c=base.min_confidence_c,
    )


def fit_calibration(
    items: Sequence[Labelled],
    thresholds: GradingThresholds,
    backend: GradeBackend | None = None,
    min_photos: int = 5,
) -> tuple[ConfidenceCurve, ...]:
    """Confidence curves per grade given, fitted on ``items`` (see the module doc).

    A grade given to fewer than ``min_photos`` photos keeps the curve it had.

    Raises:
        ImportError: scikit-learn is not installed (the ``tuning`` extra).
    """
    from sklearn.isotonic import IsotonicRegression

    raw = replace(
        thresholds, calibration=(), min_confidence_a=0.0, min_confidence_b=0.0, min_confidence_c=0.0
    )
    name = backend.name if backend is not None else "measures"
    scored: dict[str, list[tuple[float, float]]] = {g: [] for g in TRUE}
    for x in items:
        g = grade_measures(x.measures, raw, None, backend, x.frame)
        if g.grade in TRUE:
            scored[g.grade].append((g.raw_confidence, 1.0 if g.grade == x.grade else 0.0))
    curves = {(c.backend, c.grade): c for c in thresholds.calibration}
    for grade, rows in scored.items():
        if len(rows) < min_photos:
            continue
        xs = np.array([r[0] for r in rows])
        ys = np.array([r[1] for r in rows])
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(xs, ys)
        cap = (len(rows) + 1.0) / (len(rows) + 2.0)
        px = np.clip(np.asarray(iso.X_thresholds_, float), 0.0, 1.0)
        py = np.minimum(np.asarray(iso.y_thresholds_, float), cap)
        points: list[tuple[float, float]] = []
        for xv, yv in zip(px, py, strict=True):
            cy = round(float(yv), 4)
            cx = round(float(xv), 4)
            if points and cx <= points[-1][0]:
                points[-1] = (points[-1][0], max(points[-1][1], cy))
                continue
            if points and cy < points[-1][1]:
                cy = points[-1][1]
            points.append((cx, cy))
        # keep the steps: the first and last point of every flat run, at most 32
        thin = [
            p
            for i, p in enumerate(points)
            if i in (0, len(points) - 1) or p[1] != points[i - 1][1] or p[1] != points[i + 1][1]
        ]
        if len(thin) > 32:
            idx = np.unique(np.linspace(0, len(thin) - 1, 32).round().astype(int))
            thin = [thin[i] for i in idx]
        curves[(name, grade)] = ConfidenceCurve(name, grade, tuple(thin))
    return tuple(curves.values())


def measure_all(
    pairs: Iterable[tuple[str, Any, str]],
    measure_fn: Callable[[Any], Measures],
    keep_frames: bool = False,
) -> Iterator[Labelled]:
    """(name, BGR image, true grade) -> :class:`Labelled` (measured once)."""
    for name, image, grade in pairs:
        yield Labelled(name, grade, measure_fn(image), image if keep_frames else None)
