"""Wire model of the disposition policy the gateway pushes to its stations.

A policy is a versioned table: rules tried in order, each mapping (condition grade,
customer's RMA reason, SKU, SKU category, identity result, RMA state) to a disposition
and a reason code. The station turns ``DispositionPolicy.model_dump()`` into its core's
policy (``edge.sorter.policy.policy_from_mapping``), which enforces the fail-safe rules
(failed identity, non-authorized RMA or unknown grade: quarantine).

``verification`` is the table for RMA units a parcel claims but did not verify (label
only, or a GTIN for a serialised line): trust the label (cheap goods: below a unit value
cap, per category, SKU or lines without identifiers) or inspect (the default). Its
fail-safe rules are the station's (``edge.sorter.policy``): a trust rule without a
``max_unit_value_cents`` is refused, serialised / tagged lines are never trusted, an
unknown unit value is above every threshold. Omitted, it is the shipped table, which is
empty: every unverified unit is inspected (quarantine, reason ``unverified``).
``inspection_lane`` names the station lane (disposition quarantine, gated) inspected
parcels are diverted to; omitted: the end of the belt.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from protocol.messages import MAX_NAME, WIRE_CONFIG, Finite, Name, SchemaVersion, _Message


class PolicyRule(BaseModel):
    """One row of the table; an empty list matches any value."""

    model_config = WIRE_CONFIG

    disposition: Literal["restock", "refurbish", "recycle", "quarantine"]
    reason: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")
    grades: tuple[Name, ...] = Field(default=(), max_length=16)
    categories: tuple[Name, ...] = Field(default=(), max_length=100)
    skus: tuple[Name, ...] = Field(default=(), max_length=1000)
    rma_reasons: tuple[Name, ...] = Field(default=(), max_length=100)
    identity: Literal[
        "matched",
        "no_read",
        "garbled_read",
        "unknown_rma",
        "conflicting_reads",
        "wrong_item",
        "rfid_timeout",
    ] = "matched"
    rma_state: str = Field(default="authorized", max_length=32)
    note: str = Field(default="", max_length=200)


class ConfidenceCurve(BaseModel):
    """Raw score -> calibrated confidence for one grading backend and one grade given.

    See ``edge.sorter.grading.ConfidenceCurve``): (score, confidence) points, scores
    increasing, confidences not falling, all within 0..1.
    """

    model_config = WIRE_CONFIG

    backend: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")
    grade: Literal["A", "B", "C"]
    points: tuple[tuple[Finite, Finite], ...] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _monotone(self) -> ConfidenceCurve:
        prev_x, prev_y = -1.0, -1.0
        for x, y in self.points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError("confidence curve points must be within 0..1")
            if x <= prev_x or y < prev_y:
                raise ValueError("confidence curve: scores increasing, confidences not falling")
            prev_x, prev_y = x, y
        return self


DEFAULT_CURVES: tuple[ConfidenceCurve, ...] = tuple(
    ConfidenceCurve(backend="measures", grade=g, points=p)  # type: ignore[arg-type]
    for g, p in (
        ("A", ((0.5, 0.9444), (0.5697, 0.9444), (0.5788, 0.9844), (0.8182, 0.9844))),
        (
            "B",
            (
                (0.5011, 0.0),
                (0.5033, 0.0),
                (0.5043, 0.25),
                (0.5066, 0.25),
                (0.5088, 0.3333),
                (0.513, 0.3333),
                (0.5152, 0.6),
                (0.521, 0.6),
                (0.5283, 0.9286),
                (0.5642, 0.9286),
                (0.5731, 0.9844),
                (0.7434, 0.9844),
            ),
        ),
        (
            "C",
            (
                (0.5061, 0.8333),
                (0.5354, 0.8333),
                (0.5365, 0.9474),
                (0.6043, 0.9474),
                (0.6061, 0.975),
                (1.0, 0.975),
            ),
        ),
    )
)
"""The shipped calibration of the ``measures`` grading backend, fitted on the generated
tuning set (``python -m simulator.vision.evaluate --calibrate``); the station's
``edge.sorter.grading.DEFAULT_CURVES`` is this."""


class GradingThresholds(BaseModel):
    """Camera grading limits (see ``edge.sorter.grading.GradingThresholds``).

    Fill, solidity, dark-fraction, coverage, glare, mark and confidence limits are
    ratios (0..1); ``_mm`` in mm, ``_mm2`` in mm^2, ``_deg`` in degrees; belt mismatch,
    noise and edge contrast in grey levels; ``max_parallax`` a magnification - 1.
    Omitted fields take the station's defaults.
    """

    model_config = WIRE_CONFIG

    min_rect_fill_a: float = Field(default=0.9835, ge=0, le=1)
    min_rect_fill_b: float = Field(default=0.9383, ge=0, le=1)
    min_solidity_a: float = Field(default=0.985, ge=0, le=1)
    min_solidity_b: float = Field(default=0.962, ge=0, le=1)
    max_dark_fraction_a: float = Field(default=0.002, ge=0, le=1)
    max_dark_fraction_b: float = Field(default=0.015, ge=0, le=1)
    dark_ratio: float = Field(default=0.5, gt=0, lt=1)
    footprint_tol_mm: float = Field(default=20.0, ge=0, le=1000)
    min_label_area_mm2: float = Field(default=1500.0, ge=0, le=1_000_000)
    max_belt_mismatch: float = Field(default=12.0, ge=0, le=255)
    max_belt_noise: float = Field(default=6.0, ge=0, le=255)
    min_side_mm: float = Field(default=60.0, gt=0, le=5000)
    max_side_mm: float = Field(default=1200.0, gt=0, le=5000)
    max_parallax: float = Field(default=0.5, ge=0, le=5)
    min_edge_contrast: float = Field(default=24.0, ge=0, le=255)
    min_outline_coverage: float = Field(default=0.85, ge=0, le=1)
    max_edge_blur_mm: float = Field(default=2.5, ge=0, le=100)
    max_glare_fraction: float = Field(default=0.01, ge=0, le=1)
    max_skew_deg: float = Field(default=3.0, ge=0, le=45)
    max_mark_fraction: float = Field(default=0.004, ge=0, le=1)
    stroke_max_mm: float = Field(default=8.0, ge=0, le=100)
    max_clutter_mm2: float = Field(default=2000.0, ge=0, le=10_000_000)
    min_confidence_a: float = Field(default=0.9, ge=0, le=1)
    min_confidence_b: float = Field(default=0.75, ge=0, le=1)
    min_confidence_c: float = Field(default=0.95, ge=0, le=1)
    calibration: tuple[ConfidenceCurve, ...] = Field(default=DEFAULT_CURVES, max_length=16)


class VerificationRule(BaseModel):
    """One row of the verification table (see ``edge.sorter.policy.VerificationRule``).

    ``action``: ``trust_label`` or ``inspect``; ``reason``: an inspected parcel's reason
    code; ``categories`` / ``skus``: empty matches any; ``lines``: ``any`` or
    ``without_identifiers``; unit value bounds in minor currency units, inclusive.
    """

    model_config = WIRE_CONFIG

    action: Literal["trust_label", "inspect"]
    reason: str = Field(default="unverified", min_length=1, max_length=64, pattern=r"^[a-z_]+$")
    categories: tuple[Name, ...] = Field(default=(), max_length=100)
    skus: tuple[Name, ...] = Field(default=(), max_length=1000)
    lines: Literal["any", "without_identifiers"] = "any"
    min_unit_value_cents: int | None = Field(default=None, ge=0, le=10**12)
    max_unit_value_cents: int | None = Field(default=None, ge=0, le=10**12)
    note: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _fail_safe(self) -> VerificationRule:
        lo, hi = self.min_unit_value_cents, self.max_unit_value_cents
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_unit_value_cents is above max_unit_value_cents")
        if self.action == "trust_label" and hi is None:
            raise ValueError(
                "a trust_label rule would trust the label of unverified units of any value: "
                "it needs a max_unit_value_cents (and may name categories, SKUs or lines: "
                "without_identifiers)"
            )
        if self.reason in ("matched", "hygiene_opened"):
            raise ValueError(f"an inspected parcel cannot have reason {self.reason}")
        return self


DEFAULT_VERIFICATION: tuple[VerificationRule, ...] = ()
"""The shipped verification table, empty: every unverified unit is inspected (the
station's ``DEFAULT_VERIFICATION``)."""


class PhysicalCheck(BaseModel):
    """Checkweigher and footprint limits (see ``edge.sorter.physical``): empty box, short shipment.

    A parcel claiming units of known catalogue weight must weigh, in grams, between the
    units' weight plus ``packaging_min_g`` and the units' weight plus the packaging
    allowance (``packaging_max_g`` + ``packaging_max_pct`` % of the units' weight), each
    side widened by the tolerance: ``weight_tol_g`` for the parcel plus the root sum of
    squares of the units' tolerances, each the RMA line's ``weight_tol_g`` (catalogue
    override) or ``unit_weight_tol_pct`` % of the unit's weight. ``weight_check`` False
    turns the weight check off. ``size_check``: ``fit`` (the parcel's footprint can hold
    every claimed unit in some orientation),
    ``match`` (the parcel is the product's own box: its footprint equals the unit's two
    largest dimensions) or ``off``; the camera's footprint tolerance is
    ``grading.footprint_tol_mm`` plus the line's ``size_tol_mm``.
    """

    model_config = WIRE_CONFIG

    weight_check: bool = True
    weight_tol_g: float = Field(default=30.0, ge=0, le=100_000)
    unit_weight_tol_pct: float = Field(default=5.0, ge=0, le=100)
    packaging_min_g: float = Field(default=0.0, ge=0, le=100_000)
    packaging_max_g: float = Field(default=600.0, ge=0, le=100_000)
    packaging_max_pct: float = Field(default=20.0, ge=0, le=1_000)
    size_check: Literal["off", "fit", "match"] = "fit"

    @model_validator(mode="after")
    def _packaging_range(self) -> PhysicalCheck:
        if self.packaging_min_g > self.packaging_max_g:
            raise ValueError("packaging_min_g must not exceed packaging_max_g")
        return self


class DispositionPolicy(_Message):
    """A disposition policy as pushed from the gateway (retained, per site).

    Schema version 2 adds ``physical`` (:class:`PhysicalCheck`); stations accept 1 and 2
    (upgrade stations first). A version 1 policy carries the default physical check.
    """

    SCHEMA_VERSIONS: ClassVar[tuple[int, ...]] = (1, 2)

    schema_version: SchemaVersion = 2
    kind: Literal["policy"] = "policy"
    version: str = Field(min_length=1, max_length=64)
    rules: tuple[PolicyRule, ...] = Field(min_length=1, max_length=1000)
    grades: tuple[Name, ...] = Field(default=("A", "B", "C"), max_length=16)
    assume_grade_without_camera: str | None = Field(default="A", min_length=1, max_length=MAX_NAME)
    min_grade_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    grade_without_photo: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    grading: GradingThresholds = GradingThresholds()
    verification: tuple[VerificationRule, ...] = Field(default=DEFAULT_VERIFICATION, max_length=200)
    physical: PhysicalCheck = PhysicalCheck()
    inspection_lane: str | None = Field(
        default=None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$"
    )

    @model_validator(mode="after")
    def _v1_has_no_physical(self) -> DispositionPolicy:
        if self.schema_version < 2 and self.physical != PhysicalCheck():
            raise ValueError("physical needs schema_version 2")
        return self
