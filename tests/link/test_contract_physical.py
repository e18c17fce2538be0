"""Wire contract of the catalogue tolerance overrides and the policy's physical check."""

from __future__ import annotations

import json
from typing import Any

import pytest

from protocol import ProtocolError, RmaAnnouncement, decode
from protocol.policy import DispositionPolicy, PhysicalCheck
from tests.link.test_contract_parcel_v2 import ANN

POLICY: dict[str, Any] = {
    "kind": "policy",
    "version": "p-7",
    "rules": [{"disposition": "restock", "reason": "matched", "grades": ["A"]}],
}


@pytest.mark.parametrize("field", ["weight_tol_g", "size_tol_mm"])
def test_tolerance_overrides_are_version_2_line_fields(field: str) -> None:
    line = {"line_no": 1, "sku": "MUG", "quantity": 1, field: 40}
    ann = decode(json.dumps({**ANN, "lines": [line]}), RmaAnnouncement)
    assert getattr(ann.lines[0], field) == 40
    assert ann.lines[0].has_v2_fields()
    with pytest.raises(ProtocolError, match="need schema_version 2"):
        decode(json.dumps({**ANN, "schema_version": 1, "lines": [line]}), RmaAnnouncement)


@pytest.mark.parametrize(
    ("field", "value"),
    [("weight_tol_g", -1), ("weight_tol_g", 1_000_001), ("size_tol_mm", 5_001)],
)
def test_tolerance_overrides_are_bounded(field: str, value: int) -> None:
    line = {"line_no": 1, "sku": "MUG", "quantity": 1, field: value}
    with pytest.raises(ProtocolError, match=field):
        decode(json.dumps({**ANN, "lines": [line]}), RmaAnnouncement)


def test_policy_v2_carries_the_physical_check() -> None:
    physical = {"packaging_max_g": 900, "size_check": "match", "weight_tol_g": 25}
    policy = decode(json.dumps({**POLICY, "physical": physical}), DispositionPolicy)
    assert policy.schema_version == 2
    assert policy.physical == PhysicalCheck(
        packaging_max_g=900.0, size_check="match", weight_tol_g=25.0
    )
    assert policy.physical.unit_weight_tol_pct == 5.0


def test_policy_v1_is_accepted_with_the_default_check_and_refused_with_another() -> None:
    old = decode(json.dumps({**POLICY, "schema_version": 1}), DispositionPolicy)
    assert old.physical == PhysicalCheck()
    body = {**POLICY, "schema_version": 1, "physical": {"size_check": "off"}}
    with pytest.raises(ProtocolError, match="physical needs schema_version 2"):
        decode(json.dumps(body), DispositionPolicy)


@pytest.mark.parametrize(
    ("physical", "match"),
    [
        ({"packaging_min_g": 700, "packaging_max_g": 600}, "packaging_min_g"),
        ({"unit_weight_tol_pct": 101}, "unit_weight_tol_pct"),
        ({"size_check": "roughly"}, "size_check"),
        ({"weight_tol_kg": 1}, "weight_tol_kg"),
    ],
)
def test_physical_check_is_validated(physical: dict[str, Any], match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode(json.dumps({**POLICY, "physical": physical}), DispositionPolicy)
