"""Wire model of the disposition policy the gateway pushes to its stations.

A policy is a versioned table: rules tried in order, each mapping (condition grade,
customer's RMA reason, SKU, SKU category, identity result, RMA state) to a disposition
and a reason code. The station turns ``DispositionPolicy.model_dump()`` into its core's
policy (``edge.sorter.policy.policy_from_mapping``), which enforces the fail-safe rules
(failed identity, non-authorized RMA or unknown grade: quarantine).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
        "matched", "no_read", "unknown_rma", "conflicting_reads", "wrong_item", "rfid_timeout"
    ] = "matched"
    rma_state: str = Field(default="authorized", max_length=32)
    note: str = Field(default="", max_length=200)


class DispositionPolicy(_Message):
    """A disposition policy as pushed from the gateway (retained, per site)."""

    kind: Literal["policy"] = "policy"
    version: str = Field(min_length=1, max_length=64)
    rules: tuple[PolicyRule, ...] = Field(min_length=1)
    grades: tuple[str, ...] = ("A", "B", "C")
    assume_grade_without_camera: str | None = "A"
    min_grade_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
