"""Evidence per RMA unit, the claim rule, the verification table and divert_confirmed."""

from __future__ import annotations

import pytest

from edge.sorter import Decision, ParcelExited, SorterCore
from edge.sorter.model import Reason
from edge.sorter.policy import (
    INSPECT,
    LINES_WITHOUT_IDENTIFIERS,
    TRUST_LABEL,
    Policy,
    VerificationRule,
    default_policy,
    policy_from_mapping,
    policy_to_mapping,
)
from protocol.messages import Evidence
from simulator.testing import Directory, demo_belt, label_trusting_policy, line, rma

TRUSTING = label_trusting_policy()

EAN_SHOE = "4006381333931"  # a real EAN-13
EAN_SOCK = "9780201310054"
SERIAL_GS1 = "]C101" + "09501101020917" + "21SN0001"


def drive(
    core: SorterCore, t0: float, codes: list[str], uids: tuple[str, ...] = ()
) -> list[object]:
    actions: list[object] = []
    actions += core.on_photo_eye(t0, True)
    actions += core.on_photo_eye(t0 + 300.0, False)
    for code in codes:
        actions += core.on_barcode(t0 + 550.0, code)
    for uid in uids:
        actions += core.on_rfid(t0 + 550.0, uid)
    for t in range(int(t0), int(t0) + 6000, 5):
        actions += core.advance(float(t))
    return actions


def decision(actions: list[object]) -> Decision:
    [d] = [a for a in actions if isinstance(a, Decision)]
    return d


def units(d: Decision) -> list[tuple[int, int, str, bool, str | None]]:
    return [(u.line_no, u.unit, u.evidence.value, u.verified, u.identifier) for u in d.units]


TWO_LINES = rma(
    "RMA-1",
    line("SHOE", gtin=EAN_SHOE),
    line("SOCK", gtin=EAN_SOCK),
)


def test_a_retail_code_beside_the_label_is_the_product_not_a_second_label() -> None:
    core = SorterCore(demo_belt(), Directory(TWO_LINES))
    d = decision(drive(core, 0.0, ["RMA-1", "]E0" + EAN_SHOE]))
    assert d.reason is Reason.UNVERIFIED  # the socks line shows nothing: inspected
    assert units(d) == [
        (1, 1, "gtin", True, "0" + EAN_SHOE),
        (2, 1, "label", False, None),
    ]
    assert [(c.code_class.value, c.value) for c in d.codes] == [
        ("rma_label", "RMA-1"),
        ("retail", "0" + EAN_SHOE),
    ]


def test_both_lines_shown_verify_both_units_and_the_parcel_is_sorted() -> None:
    core = SorterCore(demo_belt(), Directory(TWO_LINES))
    d = decision(drive(core, 0.0, ["RMA-1", EAN_SOCK, "]E0" + EAN_SHOE]))
    assert (d.reason, d.lane.name) == (Reason.MATCHED, "restock")
    assert units(d) == [(1, 1, "gtin", True, "0" + EAN_SHOE), (2, 1, "gtin", True, "0" + EAN_SOCK)]
    assert dict(d.inputs)["verification"] == "verified"


def test_label_only_on_a_two_line_rma_claims_one_unit_of_each_line_unverified() -> None:
    core = SorterCore(demo_belt(), Directory(TWO_LINES))
    d = decision(drive(core, 0.0, ["RMA-1"]))
    assert units(d) == [(1, 1, "label", False, None), (2, 1, "label", False, None)]
    assert (d.reason, d.lane.name) == (Reason.UNVERIFIED, "quarantine")
    assert "line 1 unverified: no verification rule trusts it" in d.explanation


def test_a_product_not_on_the_rma_is_the_wrong_item_and_claims_nothing() -> None:
    core = SorterCore(demo_belt(), Directory(TWO_LINES))
    d = decision(drive(core, 0.0, ["RMA-1", "]E09780596008574"]))
    assert (d.reason, d.units) == (Reason.WRONG_ITEM, ())
    assert "product 09780596008574 is not on RMA-1" in d.explanation


def test_a_serialised_line_is_verified_only_by_its_serial() -> None:
    rmas = Directory(rma("RMA-1", line("CAM", gtin="09501101020917", serial="SN0001")))
    shown = decision(drive(SorterCore(demo_belt(), rmas), 0.0, ["RMA-1", SERIAL_GS1]))
    assert (shown.reason, units(shown)) == (Reason.MATCHED, [(1, 1, "serial", True, "SN0001")])
    rmas = Directory(rma("RMA-1", line("CAM", gtin="09501101020917", serial="SN0001")))
    absent = decision(drive(SorterCore(demo_belt(), rmas), 0.0, ["RMA-1"]))
    assert (absent.reason, units(absent)) == (Reason.UNVERIFIED, [(1, 1, "label", False, None)])
    rmas = Directory(rma("RMA-1", line("CAM", gtin="09501101020917", serial="SN0001")))
    other = decision(drive(SorterCore(demo_belt(), rmas), 0.0, ["RMA-1", SERIAL_GS1[:-1] + "2"]))
    assert (other.reason, other.units) == (Reason.WRONG_ITEM, ())


def test_an_ambiguous_serial_never_verifies_and_never_contradicts() -> None:
    # no GS after the lot: the lot may have swallowed the serial
    code = "0109501101020917" + "10ABC" + "21SN0001"
    rmas = Directory(rma("RMA-1", line("CAM", gtin="09501101020917", serial="SN0001")))
    d = decision(drive(SorterCore(demo_belt(), rmas), 0.0, ["RMA-1", code]))
    assert units(d) == [(1, 1, "gtin", False, "09501101020917")]
    assert d.reason is Reason.UNVERIFIED
    assert [c.detail for c in d.codes if c.code_class.value == "gs1"] == [
        "GS1 by content; ambiguous: (10) may have swallowed (21): no GS separator was read"
    ]


def test_a_tag_line_without_its_tag_is_inspected_rfid_timeout() -> None:
    uid = "04A2B3C4D5E680"
    rmas = Directory(rma("RMA-1", line(rfid_uid=uid)))
    d = decision(drive(SorterCore(demo_belt(), rmas), 0.0, ["RMA-1"]))
    assert (d.reason, units(d)) == (Reason.RFID_TIMEOUT, [(1, 1, "label", False, None)])
    rmas = Directory(rma("RMA-1", line(rfid_uid=uid)))
    d = decision(drive(SorterCore(demo_belt(), rmas), 0.0, ["RMA-1"], uids=(uid,)))
    assert (d.reason, units(d)) == (Reason.MATCHED, [(1, 1, "tag", True, uid)])


def test_items_alone_claim_only_what_they_show() -> None:
    uid = "04A2B3C4D5E680"
    rmas = Directory(rma("RMA-1", line("A", rfid_uid=uid), line("B")))
    d = decision(drive(SorterCore(demo_belt(), rmas), 0.0, [], uids=(uid,)))
    assert (d.rma_number, units(d)) == ("RMA-1", [(1, 1, "tag", True, uid)])


def test_a_garbled_label_is_garbled_not_an_unknown_rma() -> None:
    core = SorterCore(demo_belt(), Directory(rma("RS7K2M9Q4XI")))
    d = decision(drive(core, 0.0, ["RS7K2M9Q4XJ"]))
    assert (d.reason, d.rma_number) == (Reason.GARBLED_READ, None)
    assert [c.code_class.value for c in d.codes] == ["garbled"]
    assert core.counters["bad_reads"] == 1


def test_a_tracking_number_alone_is_no_read() -> None:
    d = decision(drive(SorterCore(demo_belt(), Directory()), 0.0, ["1Z879E930346834440"]))
    assert d.reason is Reason.NO_READ
    assert [(c.code_class.value, c.detail) for c in d.codes] == [("tracking", "carrier UPS")]


def test_one_read_identifier_verifies_one_line_however_many_share_it() -> None:
    rmas = Directory(rma("RMA-1", line("A", gtin=EAN_SHOE), line("B", gtin=EAN_SHOE)))
    d = decision(drive(SorterCore(demo_belt(), rmas), 0.0, ["RMA-1", EAN_SHOE]))
    assert units(d) == [(1, 1, "gtin", True, "0" + EAN_SHOE), (2, 1, "label", False, None)]


def test_a_unit_is_never_claimed_twice_by_label_or_item() -> None:
    rmas = Directory(rma("RMA-1", line("A", quantity=2, gtin=EAN_SHOE)))
    core = SorterCore(demo_belt(), rmas)
    first = decision(drive(core, 0.0, ["RMA-1", EAN_SHOE]))
    second = decision(drive(core, 6000.0, ["RMA-1", EAN_SHOE]))
    third = decision(drive(core, 12000.0, ["RMA-1", EAN_SHOE]))
    assert [units(d) for d in (first, second, third)] == [
        [(1, 1, "gtin", True, "0" + EAN_SHOE)],
        [(1, 2, "gtin", True, "0" + EAN_SHOE)],
        [],
    ]
    assert third.reason is Reason.QUANTITY_EXCEEDED


def test_gateway_receipts_from_other_stations_are_not_claimed_again() -> None:
    from dataclasses import replace

    ln = replace(line("A", quantity=2), received_quantity=1, received_here=0)
    core = SorterCore(demo_belt(), Directory(rma("RMA-1", ln)))
    assert units(decision(drive(core, 0.0, ["RMA-1"]))) == [(1, 1, "label", False, None)]
    assert decision(drive(core, 6000.0, ["RMA-1"])).reason is Reason.QUANTITY_EXCEEDED


def test_a_unit_of_a_line_already_received_is_quantity_exceeded() -> None:
    rmas = Directory(rma("RMA-1", line("CAM", gtin="09501101020917", serial="SN0001"), line("B")))
    core = SorterCore(demo_belt(), rmas)
    assert units(decision(drive(core, 0.0, [SERIAL_GS1]))) == [(1, 1, "serial", True, "SN0001")]
    again = decision(drive(core, 6000.0, ["RMA-1", SERIAL_GS1]))
    assert (again.reason, again.units) == (Reason.QUANTITY_EXCEEDED, ())
    assert "line 1 has nothing outstanding" in again.explanation


def test_mixed_dispositions_in_one_box_go_to_quarantine() -> None:
    rmas = Directory(
        rma("RMA-1", line("LIP", category="cosmetics"), line("SHIRT", category="apparel"))
    )
    camera = demo_belt(camera_pos_mm=700.0)
    core = SorterCore(camera, rmas, TRUSTING)
    actions = core.on_photo_eye(0.0, True) + core.on_photo_eye(300.0, False)
    actions += core.on_barcode(550.0, "RMA-1") + core.on_grade(850.0, "B")
    for t in range(0, 6000, 5):
        actions += core.advance(float(t))
    d = decision(actions)
    assert (d.reason, d.lane.name) == (Reason.MIXED_DISPOSITIONS, "quarantine")
    assert "its lines would go to recycle, refurbish" in d.explanation


CHEAP = VerificationRule(TRUST_LABEL, max_unit_value_cents=2000, note="cheap goods")
VALUABLE = VerificationRule(INSPECT, categories=("electronics",), min_unit_value_cents=5000)


@pytest.mark.parametrize(
    ("category", "value", "reason", "rule"),
    [
        ("apparel", 1500, Reason.MATCHED, "1"),  # cheap: the label is trusted
        ("apparel", 2500, Reason.UNVERIFIED, None),  # above the cap: no rule trusts it
        ("apparel", None, Reason.UNVERIFIED, None),  # unknown value: above every cap
        ("electronics", 1500, Reason.MATCHED, "1"),
        ("electronics", 9000, Reason.UNVERIFIED, "0"),
        ("electronics", None, Reason.UNVERIFIED, "0"),  # unknown value: above the minimum
    ],
)
def test_verification_table_by_category_and_value(
    category: str, value: int | None, reason: Reason, rule: str | None
) -> None:
    from dataclasses import replace

    policy = Policy("v-1", default_policy().rules, verification=(VALUABLE, CHEAP))
    ln = replace(line("X", category=category), unit_value_cents=value)
    d = decision(
        drive(SorterCore(demo_belt(), Directory(rma("RMA-1", ln)), policy), 0.0, ["RMA-1"])
    )
    assert d.reason is reason
    assert dict(d.inputs).get("verification_rule") == rule
    if rule == "0":
        assert "inspected by verification rule 0" in d.explanation
    if rule == "1":
        assert "label trusted: verification rule 1 (cheap goods)" in d.explanation


def test_trust_never_applies_to_a_serialised_line() -> None:
    trust_all_cheap = VerificationRule(TRUST_LABEL, max_unit_value_cents=10**9)
    policy = Policy("v-1", default_policy().rules, verification=(trust_all_cheap,))
    rmas = Directory(rma("RMA-1", line("CAM", serial="SN0001")))
    d = decision(drive(SorterCore(demo_belt(), rmas, policy), 0.0, ["RMA-1"]))
    assert d.reason is Reason.UNVERIFIED


def test_a_trust_rule_without_a_value_cap_is_refused_and_the_table_round_trips() -> None:
    for uncapped in (
        VerificationRule(TRUST_LABEL),
        VerificationRule(TRUST_LABEL, categories=("apparel",)),
        VerificationRule(TRUST_LABEL, lines=LINES_WITHOUT_IDENTIFIERS),
    ):
        with pytest.raises(ValueError, match="would trust the label of unverified units of any"):
            Policy("v-1", default_policy().rules, verification=(uncapped,))
    with pytest.raises(ValueError, match="reason matched"):
        VerificationRule(INSPECT, reason=Reason.MATCHED)
    policy = Policy("v-2", default_policy().rules, verification=(VALUABLE, CHEAP))
    assert policy_from_mapping(policy_to_mapping(policy)) == policy
    strict = policy_from_mapping({**policy_to_mapping(policy), "verification": []})
    assert strict.verification == ()
    assert default_policy().verification == ()  # shipped: every unverified unit inspected


def test_divert_confirmed_on_the_exit() -> None:
    from edge.sorter.model import Disposition, LaneSpec

    lanes = (
        LaneSpec("restock", Disposition.RESTOCK, 1500.0, "restock", confirm=True),
        LaneSpec("quarantine", Disposition.QUARANTINE, 4000.0, None),
    )
    for confirm, expected in ((True, True), (False, False)):
        core = SorterCore(demo_belt(lanes=lanes), Directory(rma("RMA-1")), TRUSTING)
        actions = core.on_photo_eye(0.0, True) + core.on_photo_eye(300.0, False)
        actions += core.on_barcode(550.0, "RMA-1")
        for t in range(0, 6000, 5):
            if confirm and t == 1700:
                actions += core.on_divert_confirm(float(t), "restock")
            actions += core.advance(float(t))
        [exited] = [a for a in actions if isinstance(a, ParcelExited)]
        assert exited.divert_confirmed is expected
        assert exited.units == exited.decision.units
    core = SorterCore(demo_belt(lanes=lanes), Directory())
    [exited] = [a for a in drive(core, 0.0, ["RMA-404"]) if isinstance(a, ParcelExited)]
    assert exited.divert_confirmed is None  # not diverted


def test_evidence_order_of_claimed_units_is_strongest_first() -> None:
    uid = "04A2B3C4D5E680"
    rmas = Directory(
        rma(
            "RMA-1",
            line("A"),
            line("B", gtin=EAN_SOCK),
            line("C", rfid_uid=uid),
            line("D", gtin="09501101020917", serial="SN0001"),
        )
    )
    core = SorterCore(demo_belt(), rmas, TRUSTING)
    d = decision(drive(core, 0.0, ["RMA-1", EAN_SOCK, SERIAL_GS1], (uid,)))
    assert [u.evidence for u in d.units] == [
        Evidence.SERIAL,
        Evidence.TAG,
        Evidence.GTIN,
        Evidence.LABEL,
    ]
    assert (d.reason, d.lane.name) == (Reason.MATCHED, "restock")  # line A: label trusted


def test_inspected_parcels_go_to_the_policys_inspection_lane_others_to_the_end() -> None:
    from dataclasses import replace

    from edge.sorter.model import Disposition, GateCommand, LaneSpec

    lanes = (
        LaneSpec("restock", Disposition.RESTOCK, 1500.0, "restock"),
        LaneSpec("inspect", Disposition.QUARANTINE, 2300.0, "inspect"),
        LaneSpec("quarantine", Disposition.QUARANTINE, 4000.0, None),
    )
    policy = replace(default_policy(), inspection_lane="inspect")
    rmas = Directory(rma("RMA-1", line("SHOE", gtin=EAN_SHOE)))
    label_only = drive(SorterCore(demo_belt(lanes=lanes), rmas, policy), 0.0, ["RMA-1"])
    d = decision(label_only)
    assert (d.lane.name, d.reason) == ("inspect", Reason.UNVERIFIED)
    assert "to the inspection lane inspect" in d.explanation
    assert [c.gate for c in label_only if isinstance(c, GateCommand)] == ["inspect"]
    unknown = decision(drive(SorterCore(demo_belt(lanes=lanes), rmas, policy), 0.0, ["RMA-9"]))
    assert (unknown.lane.name, unknown.reason) == ("quarantine", Reason.UNKNOWN_RMA)
    shown = decision(
        drive(SorterCore(demo_belt(lanes=lanes), rmas, policy), 0.0, ["RMA-1", EAN_SHOE])
    )
    assert (shown.lane.name, shown.reason) == ("restock", Reason.MATCHED)
    # a station without that lane: the end of the belt
    elsewhere = decision(drive(SorterCore(demo_belt(), rmas, policy), 0.0, ["RMA-1"]))
    assert (elsewhere.lane.name, elsewhere.reason) == ("quarantine", Reason.UNVERIFIED)
    assert policy_from_mapping(policy_to_mapping(policy)) == policy
