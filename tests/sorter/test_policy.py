from __future__ import annotations

import pytest

from edge.sorter.model import Disposition, Identity, Reason
from edge.sorter.policy import (
    Facts,
    Policy,
    Rule,
    decide,
    default_policy,
    policy_from_mapping,
    policy_to_mapping,
)
from protocol.policy import DispositionPolicy

R, F, Y, Q = (
    Disposition.RESTOCK,
    Disposition.REFURBISH,
    Disposition.RECYCLE,
    Disposition.QUARANTINE,
)
OK = Identity.MATCHED


@pytest.mark.parametrize(
    ("facts", "disposition", "reason"),
    [
        (Facts(OK, "authorized", "A", "camera"), R, Reason.MATCHED),
        (Facts(OK, "authorized", "B", "camera"), F, Reason.MATCHED),
        (Facts(OK, "authorized", "C", "camera"), Y, Reason.MATCHED),
        (Facts(OK, "authorized", None, "camera"), Q, Reason.UNKNOWN_GRADE),
        (Facts(OK, "authorized", "D", "camera"), Q, Reason.UNKNOWN_GRADE),
        (Facts(OK, "authorized", "A", category="hygiene"), R, Reason.MATCHED),
        (Facts(OK, "authorized", "B", category="hygiene"), Y, Reason.HYGIENE_OPENED),
        (Facts(OK, "authorized", "C", category="cosmetics"), Y, Reason.HYGIENE_OPENED),
        (Facts(OK, "authorized", "A", sku="SKU-RECALL"), Q, Reason.RECALLED),
        # the customer's reason informs, condition decides
        (Facts(OK, "authorized", "A", rma_reason="defective"), R, Reason.MATCHED),
        (Facts(OK, "cancelled", "A"), Q, Reason.RMA_CANCELLED),
        (Facts(OK, "expired", "A"), Q, Reason.RMA_EXPIRED),
        (Facts(OK, "received", "A"), Q, Reason.RMA_ALREADY_RECEIVED),
        (Facts(Identity.WRONG_ITEM, "authorized", "A"), Q, Reason.WRONG_ITEM),
        (Facts(Identity.NO_READ, "", "A"), Q, Reason.NO_READ),
        (Facts(Identity.CONFLICTING, "", "A"), Q, Reason.CONFLICTING_READS),
        (Facts(Identity.RFID_TIMEOUT, "authorized", "A"), Q, Reason.RFID_TIMEOUT),
        (
            Facts(OK, "authorized", "A", failure=Reason.QUANTITY_EXCEEDED),
            Q,
            Reason.QUANTITY_EXCEEDED,
        ),
    ],
)
def test_default_policy_table(facts: Facts, disposition: Disposition, reason: Reason) -> None:
    outcome = decide(default_policy(recalled_skus=("SKU-RECALL",)), facts)
    assert (outcome.disposition, outcome.reason) == (disposition, reason)


def test_a_rule_cannot_send_a_failed_identity_anywhere_but_quarantine() -> None:
    with pytest.raises(ValueError, match="may only quarantine"):
        Policy("bad-1", (Rule(R, Reason.MATCHED, identity=Identity.WRONG_ITEM),))
    with pytest.raises(ValueError, match="may only quarantine"):
        Policy("bad-2", (Rule(R, Reason.MATCHED, rma_state="cancelled"),))
    with pytest.raises(ValueError, match="unknown grade"):
        Policy("bad-3", (Rule(R, Reason.MATCHED, grades=("Z",)),))


def test_a_failure_rule_may_choose_the_reason_code_only() -> None:
    policy = Policy(
        "p-1",
        (
            Rule(Q, Reason.RECALLED, identity=Identity.WRONG_ITEM, note="wrong = recall check"),
            Rule(R, Reason.MATCHED),  # no grade filter
        ),
    )
    assert decide(policy, Facts(Identity.WRONG_ITEM, "authorized", "A")).reason == Reason.RECALLED
    # a catch-all rule still never sorts an unknown grade
    assert decide(policy, Facts(OK, "authorized", None)).reason == Reason.UNKNOWN_GRADE
    assert decide(policy, Facts(OK, "authorized", "C")).disposition == R


def test_no_rule_is_quarantine() -> None:
    policy = Policy("p-2", (Rule(R, Reason.MATCHED, grades=("A",)),))
    outcome = decide(policy, Facts(OK, "authorized", "B"))
    assert (outcome.disposition, outcome.reason, outcome.rule) == (Q, Reason.NO_RULE, None)


def test_policy_travels_as_the_wire_model_and_back() -> None:
    policy = default_policy(recalled_skus=("SKU-9",), version="site1-7")
    wire = DispositionPolicy.model_validate(policy_to_mapping(policy))
    assert wire.version == "site1-7" and wire.kind == "policy"
    assert policy_from_mapping(wire.model_dump()) == policy


def test_wire_model_rejects_unknown_disposition() -> None:
    data = policy_to_mapping(default_policy())
    data["rules"] = [{"disposition": "landfill", "reason": "matched"}]
    with pytest.raises(ValueError, match="disposition"):
        DispositionPolicy.model_validate(data)
