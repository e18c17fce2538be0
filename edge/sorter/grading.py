"""Camera grading thresholds: the ``grading`` part of the disposition policy.

Pure data (no OpenCV here): the station's grader (``edge.vision.grading``) reads these at
each photo, so a policy pushed from the gateway changes how the next parcel is graded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["GradingThresholds", "grading_from_mapping", "grading_to_mapping"]


@dataclass(frozen=True)
class GradingThresholds:
    """Camera grading thresholds (``edge.vision.grading``): policy data, not code.

    Measures are taken on the parcel's top-view outline and surface (``edge.vision``):
    ``rect_fill`` = outline area / its minimum-area rectangle's area (crushed corners,
    deformation: below 1), ``solidity`` = outline area / its convex hull's area (dents,
    open or torn flaps: below 1), ``dark_fraction`` = share of the top surface much darker
    than its median (tears, holes, broken tape). For each measure, a value on the good
    side of its ``_a`` limit is grade A, between the ``_a`` and ``_b`` limits grade B,
    beyond the ``_b`` limit grade C; the parcel gets its worst measure's grade.

    Attributes:
        min_rect_fill_a / min_rect_fill_b: rect_fill limits (0..1).
        min_solidity_a / min_solidity_b: solidity limits (0..1).
        max_dark_fraction_a / max_dark_fraction_b: dark_fraction limits (0..1).
        dark_ratio: a surface pixel is dark below this share of the surface median grey.
        footprint_tol_mm: allowed difference of each footprint side from the expected
            SKU's catalogue dimensions, mm (beyond: grade unknown, wrong / empty item).
        min_label_area_mm2: a bright, unsaturated patch this large (mm^2) on the parcel
            counts as a label.
    """

    min_rect_fill_a: float = 0.981
    min_rect_fill_b: float = 0.945
    min_solidity_a: float = 0.985
    min_solidity_b: float = 0.962
    max_dark_fraction_a: float = 0.002
    max_dark_fraction_b: float = 0.015
    dark_ratio: float = 0.5
    footprint_tol_mm: float = 20.0
    min_label_area_mm2: float = 1500.0

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


def grading_from_mapping(data: object) -> GradingThresholds:
    """Build :class:`GradingThresholds` from plain data (the wire model's ``model_dump``).

    Raises:
        ValueError: not a mapping, or limits :class:`GradingThresholds` refuses.
    """
    raw = data or {}
    if not isinstance(raw, Mapping):
        raise ValueError("grading must be a mapping")
    try:
        return GradingThresholds(**{str(k): float(v) for k, v in raw.items()})
    except TypeError as exc:
        raise ValueError(f"grading: {exc}") from exc


def grading_to_mapping(t: GradingThresholds) -> dict[str, object]:
    """Plain data form of ``t`` (the inverse of :func:`grading_from_mapping`)."""
    return dict(vars(t))
