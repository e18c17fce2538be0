"""Camera grading limits and confidence calibration: the ``grading`` part of the policy.

Pure data (no OpenCV here): the station's grader (``edge.vision.grading``) reads these at
each photo, so a policy pushed from the gateway changes how the next parcel is graded.

Three kinds of numbers live here:

* **grade limits** on the damage measures (``rect_fill``, ``solidity``, ``dark_fraction``):
  a value on the good side of its ``_a`` limit is grade A, between the ``_a`` and ``_b``
  limits grade B, beyond the ``_b`` limit grade C; the worst measure decides;
* **abstention limits**: the photo must be of what the grader was built for (the belt it
  knows, a parcel fully in view at a plausible size, a strong and whole outline, no glare,
  no motion blur, a top view, nothing else in view, no dark mark it cannot tell from
  damage); beyond any of them the grade is ``unknown`` and the check that fired is named;
* **confidence**: the grader's raw score mapped through a calibration curve fitted on a
  labelled set (isotonic regression of "the grade given was right" on the raw score, per
  backend and grade: Zadrozny & Elkan, *Transforming classifier scores into accurate
  multiclass probability estimates*, KDD 2002), so 0.9 means right 9 times in 10 on that
  set; a grade whose calibrated confidence is below its ``min_confidence_*`` is reported
  ``unknown`` (the policy then quarantines it: manual grading, never recycling).

The shipped curves were fitted on the generated tuning set
(``python -m simulator.vision.evaluate --calibrate``); a site refits them on its own
labelled photos (``python -m edge.vision.site tune``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

from protocol.policy import DEFAULT_CURVES as _WIRE_CURVES

__all__ = [
    "DEFAULT_CURVES",
    "ConfidenceCurve",
    "GradingThresholds",
    "grading_from_mapping",
    "grading_to_mapping",
]

GRADES = ("A", "B", "C")
MAX_CURVES = 16
MAX_POINTS = 32


@dataclass(frozen=True)
class ConfidenceCurve:
    """Raw score -> calibrated confidence for one backend and one given grade.

    Attributes:
        backend: the grading backend's name (``measures``, ``onnx``).
        grade: the grade given (A, B or C).
        points: (raw score, confidence) pairs, raw scores strictly increasing and
            confidences non-decreasing, all within 0..1; linear in between, flat outside.

    Raises:
        ValueError: an unknown grade, no points, more than 32, or points out of order.
    """

    backend: str
    grade: str
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if self.grade not in GRADES:
            raise ValueError(f"confidence curve for unknown grade {self.grade!r}")
        if not self.backend or len(self.backend) > 32:
            raise ValueError("a confidence curve names its backend (1..32 characters)")
        if not 1 <= len(self.points) <= MAX_POINTS:
            raise ValueError(f"a confidence curve has 1..{MAX_POINTS} points")
        prev_x, prev_y = -1.0, -1.0
        for x, y in self.points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError("confidence curve points must be within 0..1")
            if x <= prev_x or y < prev_y:
                raise ValueError("confidence curve: scores increasing, confidences not falling")
            prev_x, prev_y = x, y

    def __call__(self, raw: float) -> float:
        """The calibrated confidence of raw score ``raw`` (piecewise linear)."""
        pts = self.points
        if raw <= pts[0][0]:
            return pts[0][1]
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            if raw <= x1:
                return y0 + (y1 - y0) * (raw - x0) / (x1 - x0)
        return pts[-1][1]


DEFAULT_CURVES: tuple[ConfidenceCurve, ...] = tuple(
    ConfidenceCurve(c.backend, c.grade, tuple(c.points)) for c in _WIRE_CURVES
)
"""Shipped calibration of the ``measures`` backend (fitted on the generated tuning set)."""


@dataclass(frozen=True)
class GradingThresholds:
    """Camera grading limits (``edge.vision.grading``): policy data, not code.

    Measures are taken on the parcel's top-view outline and top surface: ``rect_fill`` =
    outline area / the area of the intact box that best explains it (a rectangle, or with
    a tall box off the camera's axis the hull of its top and bottom faces; crushed
    corners, deformation: below 1), ``solidity`` = outline area / its convex hull's area
    (dents, open or torn flaps: below 1), ``dark_fraction`` = share of the top surface
    darker than ``dark_ratio`` x its median in the board's own colour (a tear or a hole
    shows the same board in shadow; thin print strokes and the flap seam are not damage).

    Attributes:
        min_rect_fill_a / min_rect_fill_b: rect_fill limits (0..1).
        min_solidity_a / min_solidity_b: solidity limits (0..1).
        max_dark_fraction_a / max_dark_fraction_b: dark_fraction limits (0..1).
        dark_ratio: a surface pixel is dark below this share of the surface median grey.
        footprint_tol_mm: allowed difference of each footprint side from the expected
            SKU's catalogue dimensions, mm (beyond: unknown, wrong / empty item).
        min_label_area_mm2: a bright, unsaturated patch with bars this large (mm^2) on
            the parcel is a label.
        max_belt_mismatch: with a captured empty belt, the most the image border may
            differ from it (median over 8 x 8 px blocks of a 640 px wide frame, grey
            levels, after the lighting gain); without one, ``max_belt_noise``: the most
            the border's blocks may vary (robust sigma, grey levels): a plain belt.
        min_side_mm / max_side_mm: plausible footprint sides, mm (beyond: wrong scale,
            calibration, or not a parcel).
        max_parallax: the most a box top may be magnified against its footprint
            (camera height / (camera height - box height) - 1; 0.5: boxes up to a third
            of the camera's height).
        min_edge_contrast: the outline's median contrast to the belt, grey levels.
        min_outline_coverage: share of the outline where that contrast is present.
        max_edge_blur_mm: the widest edge (blur sigma, mm, the worse of along and across
            the belt): motion blur or focus.
        max_glare_fraction: share of the top surface clipped white (label excluded).
        max_skew_deg: the most a long outline edge may be off square (not explained by
            parallax): a tilted view, a wrong calibration, or a deformed box.
        max_mark_fraction: share of the top surface covered by compact dark marks not in
            the board's colour (a filled logo or a hole: cannot tell).
        stroke_max_mm: dark marks thinner than this (mm, stroke width) are print.
        max_clutter_mm2: the largest other object allowed in view, mm^2.
        min_confidence_a / _b / _c: the least calibrated confidence each grade needs;
            below it the grade is ``unknown`` (C needs the most: recycling is final).
        calibration: the confidence curves (:class:`ConfidenceCurve`); a backend and
            grade without a curve reports its raw score.

    Raises:
        ValueError: limits out of range or not ordered A before B, too many curves.
    """

    min_rect_fill_a: float = 0.9835
    min_rect_fill_b: float = 0.9383
    min_solidity_a: float = 0.985
    min_solidity_b: float = 0.962
    max_dark_fraction_a: float = 0.002
    max_dark_fraction_b: float = 0.015
    dark_ratio: float = 0.5
    footprint_tol_mm: float = 20.0
    min_label_area_mm2: float = 1500.0
    max_belt_mismatch: float = 12.0
    max_belt_noise: float = 6.0
    min_side_mm: float = 60.0
    max_side_mm: float = 1200.0
    max_parallax: float = 0.5
    min_edge_contrast: float = 24.0
    min_outline_coverage: float = 0.85
    max_edge_blur_mm: float = 2.5
    max_glare_fraction: float = 0.01
    max_skew_deg: float = 3.0
    max_mark_fraction: float = 0.004
    stroke_max_mm: float = 8.0
    max_clutter_mm2: float = 2000.0
    min_confidence_a: float = 0.9
    min_confidence_b: float = 0.75
    min_confidence_c: float = 0.95
    calibration: tuple[ConfidenceCurve, ...] = field(default=DEFAULT_CURVES)

    def __post_init__(self) -> None:
        pairs = (
            (self.min_rect_fill_b, self.min_rect_fill_a),
            (self.min_solidity_b, self.min_solidity_a),
            (self.max_dark_fraction_a, self.max_dark_fraction_b),
        )
        for low, high in pairs:
            if not 0.0 <= low <= high <= 1.0:
                raise ValueError("grading limits must be within 0..1 and ordered A before B")
        if not 0.0 < self.dark_ratio < 1.0:
            raise ValueError("dark_ratio must be within 0..1")
        if self.footprint_tol_mm < 0 or self.min_label_area_mm2 < 0:
            raise ValueError("footprint_tol_mm and min_label_area_mm2 must not be negative")
        ratios = (
            self.min_outline_coverage,
            self.max_glare_fraction,
            self.max_mark_fraction,
            self.min_confidence_a,
            self.min_confidence_b,
            self.min_confidence_c,
        )
        if any(not 0.0 <= r <= 1.0 for r in ratios):
            raise ValueError("coverage, glare, mark and confidence limits must be within 0..1")
        if not 0.0 < self.min_side_mm < self.max_side_mm:
            raise ValueError("min_side_mm must be positive and below max_side_mm")
        others = (
            self.max_belt_mismatch,
            self.max_belt_noise,
            self.max_parallax,
            self.min_edge_contrast,
            self.max_edge_blur_mm,
            self.max_skew_deg,
            self.stroke_max_mm,
            self.max_clutter_mm2,
        )
        if any(v < 0 for v in others):
            raise ValueError("grading limits must not be negative")
        if len(self.calibration) > MAX_CURVES:
            raise ValueError(f"at most {MAX_CURVES} confidence curves")
        keys = [(c.backend, c.grade) for c in self.calibration]
        if len(set(keys)) != len(keys):
            raise ValueError("one confidence curve per backend and grade")

    def min_confidence(self, grade: str) -> float:
        """The least calibrated confidence ``grade`` needs (1.0 for an unknown grade)."""
        return {
            "A": self.min_confidence_a,
            "B": self.min_confidence_b,
            "C": self.min_confidence_c,
        }.get(grade, 1.0)

    def curve(self, backend: str, grade: str) -> ConfidenceCurve | None:
        """The calibration curve of ``backend`` for ``grade``, or None."""
        for c in self.calibration:
            if c.backend == backend and c.grade == grade:
                return c
        return None


_NUMBERS = tuple(f.name for f in fields(GradingThresholds) if f.name != "calibration")


def _points(raw: object) -> tuple[tuple[float, float], ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ValueError("confidence curve points must be a list of [score, confidence]")
    out = []
    for p in raw:
        if not isinstance(p, Sequence) or isinstance(p, str) or len(p) != 2:
            raise ValueError("a confidence curve point is [score, confidence]")
        out.append((float(p[0]), float(p[1])))
    return tuple(out)


def grading_from_mapping(data: object) -> GradingThresholds:
    """Build :class:`GradingThresholds` from plain data (the wire model's ``model_dump``).

    Omitted keys take the defaults; ``calibration`` is a list of ``{backend, grade,
    points}``.

    Raises:
        ValueError: not a mapping, an unknown key, a value that is not a number, or
            limits :class:`GradingThresholds` refuses.
    """
    if data is None:
        return GradingThresholds()
    if not isinstance(data, Mapping):
        raise ValueError("grading must be a mapping")
    unknown = set(map(str, data)) - set(_NUMBERS) - {"calibration"}
    if unknown:
        raise ValueError(f"grading: unknown key(s) {sorted(unknown)}")
    values: dict[str, object] = {}
    for key in _NUMBERS:
        if key in data:
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ValueError(f"grading: {key} must be a number")
            values[key] = float(v)
    raw_curves = data.get("calibration")
    if raw_curves is not None:
        if not isinstance(raw_curves, Sequence) or isinstance(raw_curves, str):
            raise ValueError("grading: calibration must be a list")
        curves = []
        for c in raw_curves:
            if not isinstance(c, Mapping):
                raise ValueError("grading: each calibration curve is a mapping")
            curves.append(
                ConfidenceCurve(
                    str(c.get("backend", "")), str(c.get("grade", "")), _points(c.get("points"))
                )
            )
        values["calibration"] = tuple(curves)
    return GradingThresholds(**values)  # type: ignore[arg-type]


def grading_to_mapping(t: GradingThresholds) -> dict[str, object]:
    """Plain data form of ``t`` (the inverse of :func:`grading_from_mapping`)."""
    out: dict[str, object] = {k: getattr(t, k) for k in _NUMBERS}
    out["calibration"] = [
        {"backend": c.backend, "grade": c.grade, "points": [list(p) for p in c.points]}
        for c in t.calibration
    ]
    return out
