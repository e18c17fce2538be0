"""Wire model of the disposition policy the gateway pushes to its stations.

A policy is a versioned table: rules tried in order, each mapping (condition grade,
customer's RMA reason, SKU, SKU category, identity result, RMA state) to a disposition
and a reason code. The station turns ``DispositionPolicy.model_dump()`` into its core's
policy (``edge.sorter.policy.policy_from_mapping``), which enforces the fail-safe rules
(failed identity, non-authorized RMA or unknown grade: quarantine).

``verification`` is the table for RMA units a parcel claims but did not verify (label
only, or a GTIN for a serialised line): trust the label (cheap goods, by category, SKU or
unit value) or inspect (the default). Its fail-safe rules are the station's
(``edge.sorter.policy``): a rule that would trust every unverified unit without naming
what it trusts is refused, serialised / tagged lines are never trusted, an unknown unit
value is above every threshold. Omitted, it is the shipped table: trust the label only
for lines that declare no identifier; an empty list inspects every unverified unit.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.messages import _Message


class PolicyRule(BaseModel):
    """One row of the table; an empty list matches any value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    disposition: Literal["restock", "refurbish", "recycle", "quarantine"]
    reason: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")
    grades: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()
    rma_reasons: tuple[str, ...] = ()
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


class GradingThresholds(BaseModel):
    """Camera grading thresholds (see ``edge.sorter.policy.GradingThresholds``).

    Fill, solidity and dark-fraction limits are ratios (0..1); ``footprint_tol_mm`` in mm,
    ``min_label_area_mm2`` in mm^2. Omitted fields take the station's defaults.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_rect_fill_a: float = Field(default=0.981, ge=0, le=1)
    min_rect_fill_b: float = Field(default=0.945, ge=0, le=1)
    min_solidity_a: float = Field(default=0.985, ge=0, le=1)
    min_solidity_b: float = Field(default=0.962, ge=0, le=1)
    max_dark_fraction_a: float = Field(default=0.002, ge=0, le=1)
    max_dark_fraction_b: float = Field(default=0.015, ge=0, le=1)
    dark_ratio: float = Field(default=0.5, gt=0, lt=1)
    footprint_tol_mm: float = Field(default=20.0, ge=0, le=1000)
    min_label_area_mm2: float = Field(default=1500.0, ge=0, le=1_000_000)


class VerificationRule(BaseModel):
    """One row of the verification table (see ``edge.sorter.policy.VerificationRule``).

    ``action``: ``trust_label`` or ``inspect``; ``reason``: an inspected parcel's reason
    code; ``categories`` / ``skus``: empty matches any; ``lines``: ``any`` or
    ``without_identifiers``; unit value bounds in minor currency units, inclusive.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["trust_label", "inspect"]
    reason: str = Field(default="unverified", min_length=1, max_length=64, pattern=r"^[a-z_]+$")
    categories: tuple[str, ...] = Field(default=(), max_length=100)
    skus: tuple[str, ...] = Field(default=(), max_length=1000)
    lines: Literal["any", "without_identifiers"] = "any"
    min_unit_value_cents: int | None = Field(default=None, ge=0, le=10**12)
    max_unit_value_cents: int | None = Field(default=None, ge=0, le=10**12)
    note: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _fail_safe(self) -> VerificationRule:
        lo, hi = self.min_unit_value_cents, self.max_unit_value_cents
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_unit_value_cents is above max_unit_value_cents")
        scoped = self.categories or self.skus or hi is not None
        if self.action == "trust_label" and not (scoped or self.lines == "without_identifiers"):
            raise ValueError(
                "a trust_label rule would trust every unverified unit of any category and "
                "value: name categories or SKUs, a max_unit_value_cents, or lines: "
                "without_identifiers"
            )
        if self.reason in ("matched", "hygiene_opened"):
            raise ValueError(f"an inspected parcel cannot have reason {self.reason}")
        return self


DEFAULT_VERIFICATION = (
    VerificationRule(
        action="trust_label",
        lines="without_identifiers",
        note="line declares no identifier: the label is all a parcel can show",
    ),
)
"""The shipped verification table (the station's ``DEFAULT_VERIFICATION``)."""


class DispositionPolicy(_Message):
    """A disposition policy as pushed from the gateway (retained, per site)."""

    kind: Literal["policy"] = "policy"
    version: str = Field(min_length=1, max_length=64)
    rules: tuple[PolicyRule, ...] = Field(min_length=1)
    grades: tuple[str, ...] = ("A", "B", "C")
    assume_grade_without_camera: str | None = "A"
    min_grade_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    grade_without_photo: str | None = None
    grading: GradingThresholds = GradingThresholds()
    verification: tuple[VerificationRule, ...] = Field(default=DEFAULT_VERIFICATION, max_length=200)
