"""The verification table on the wire: the gateway refuses what a station would refuse."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge.sorter.policy import default_policy, policy_from_mapping, policy_to_mapping
from protocol.policy import DispositionPolicy

RULES = [{"disposition": "restock", "reason": "matched", "grades": ["A"]}]


def test_the_default_table_is_the_stations_shipped_one() -> None:
    wire = DispositionPolicy(version="site-1", rules=RULES)  # type: ignore[arg-type]
    edge = policy_from_mapping(wire.model_dump())
    assert edge.verification == default_policy().verification
    shipped = DispositionPolicy.model_validate(policy_to_mapping(default_policy()))
    assert shipped.verification == wire.verification


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"action": "trust_label"}, "would trust the label of unverified units of any value"),
        ({"action": "trust_label", "min_unit_value_cents": 100}, "needs a max_unit_value_cents"),
        ({"action": "trust_label", "categories": ["apparel"]}, "needs a max_unit_value_cents"),
        ({"action": "trust_label", "lines": "without_identifiers"}, "needs a max_unit"),
        ({"action": "inspect", "reason": "matched"}, "cannot have reason matched"),
        (
            {"action": "inspect", "min_unit_value_cents": 10, "max_unit_value_cents": 5},
            "min_unit_value_cents is above",
        ),
        ({"action": "restock"}, "action"),
    ],
)
def test_an_unsafe_verification_rule_is_refused(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DispositionPolicy.model_validate({"version": "v", "rules": RULES, "verification": [rule]})


def test_scoped_trust_and_an_empty_table_are_accepted() -> None:
    wire = DispositionPolicy.model_validate(
        {
            "version": "v",
            "rules": RULES,
            "verification": [
                {"action": "inspect", "categories": ["electronics"], "min_unit_value_cents": 5000},
                {"action": "trust_label", "max_unit_value_cents": 2000, "note": "cheap"},
            ],
        }
    )
    edge = policy_from_mapping(wire.model_dump())
    assert [(v.action, v.max_unit_value_cents) for v in edge.verification] == [
        ("inspect", None),
        ("trust_label", 2000),
    ]
    strict = DispositionPolicy.model_validate({"version": "v", "rules": RULES, "verification": []})
    assert policy_from_mapping(strict.model_dump()).verification == ()


def test_the_inspection_lane_travels_with_the_policy() -> None:
    wire = DispositionPolicy.model_validate(
        {"version": "v", "rules": RULES, "inspection_lane": "inspect"}
    )
    assert policy_from_mapping(wire.model_dump()).inspection_lane == "inspect"
    assert DispositionPolicy(version="v", rules=RULES).inspection_lane is None  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="inspection_lane"):
        DispositionPolicy.model_validate({"version": "v", "rules": RULES, "inspection_lane": ""})
