"""The station identifies a parcel by its carrier's tracking barcode (issue 18 item 4):
like the label it names the RMA, like the label it verifies no unit."""

from __future__ import annotations

from pathlib import Path

from edge.sorter import Decision, SorterCore
from edge.sorter.identify import WindowReads, identify
from edge.sorter.model import Identity, Reason
from edge.store import StationStore
from protocol.messages import CodeClass
from simulator.testing import (
    Directory,
    announcement,
    demo_belt,
    label_trusting_policy,
    line,
    rma,
)

UPS = "1Z999AA10123456784"
S10 = "RB123456785GB"
EAN_SHOE = "4006381333931"

TRUSTING = label_trusting_policy()  # cheap goods: a label-level identity is enough


def sort(core: SorterCore, codes: list[str]) -> Decision:
    """One parcel past the scanner with these reads; its decision."""
    actions: list[object] = []
    actions += core.on_photo_eye(0.0, True) + core.on_photo_eye(300.0, False)
    for code in codes:
        actions += core.on_barcode(550.0, code)
    for t in range(0, 6000, 5):
        actions += core.advance(float(t))
    [d] = [a for a in actions if isinstance(a, Decision)]
    return d


def directory() -> Directory:
    return Directory(
        rma("RS-A", tracking_number=UPS),
        rma("RS-B", line("SHOE", gtin=EAN_SHOE), tracking_number=S10),
    )


def test_a_parcel_identified_only_by_its_carrier_barcode_goes_to_its_lane() -> None:
    d = sort(SorterCore(demo_belt(), directory(), TRUSTING), [UPS])
    assert (d.reason, d.lane.name, d.rma_number) == (Reason.MATCHED, "restock", "RS-A")
    assert [(u.line_no, u.unit, u.evidence.value, u.verified) for u in d.units] == [
        (1, 1, "label", False)
    ]
    assert "RS-A (identified by carrier tracking number 1Z999AA10123456784)" in d.explanation
    assert [(c.code_class, c.value) for c in d.codes] == [(CodeClass.TRACKING, UPS)]


def test_the_tracking_number_does_not_verify_units_under_strict_verification() -> None:
    strict = SorterCore(demo_belt(), directory())  # the shipped policy
    alone = sort(strict, [S10])
    assert (alone.reason, alone.lane.name, alone.rma_number) == (
        Reason.UNVERIFIED,
        "quarantine",
        "RS-B",
    )
    with_item = sort(SorterCore(demo_belt(), directory()), [S10, "]E0" + EAN_SHOE])
    assert (with_item.reason, with_item.lane.name) == (Reason.MATCHED, "restock")
    assert [(u.evidence.value, u.verified) for u in with_item.units] == [("gtin", True)]


def test_label_and_tracking_number_of_one_rma_are_one_identity() -> None:
    d = sort(SorterCore(demo_belt(), directory(), TRUSTING), ["RS-A", UPS])
    assert (d.reason, d.rma_number) == (Reason.MATCHED, "RS-A")
    assert "label names RS-A (its carrier tracking number 1Z999AA10123456784 agrees)" in (
        d.explanation
    )


def test_label_and_tracking_number_of_two_rmas_conflict() -> None:
    d = sort(SorterCore(demo_belt(), directory(), TRUSTING), ["RS-A", S10])
    assert (d.reason, d.lane.name, d.rma_number) == (
        Reason.CONFLICTING_READS,
        "quarantine",
        None,
    )
    assert "label names RS-A, carrier tracking number names RS-B" in d.explanation


def test_identify_rules_for_tracking_numbers() -> None:
    rmas = directory()
    two = identify(WindowReads(others=(UPS, S10), tracking=(UPS, S10)), rmas)
    assert (two.identity, two.detail) == (
        Identity.CONFLICTING,
        "carrier tracking numbers name RS-A, RS-B",
    )
    unknown = identify(WindowReads(others=("1Z879E930346834440",), tracking=()), rmas)
    assert unknown.identity is Identity.NO_READ
    nobody = identify(
        WindowReads(others=("1Z879E930346834440",), tracking=("1Z879E930346834440",)), rmas
    )
    assert nobody.identity is Identity.NO_READ  # a tracking number no RMA has names nothing
    alone = identify(WindowReads(others=(UPS,), tracking=(UPS,)), rmas)
    assert (alone.identity, alone.by_label, alone.by_tracking, alone.lines) == (
        Identity.MATCHED,
        True,
        UPS,
        (0,),
    )


def test_the_store_indexes_tracking_numbers_and_follows_revisions(tmp_path: Path) -> None:
    store = StationStore(tmp_path / "s.db")
    store.apply_announcement(announcement("RS-A", revision=1, tracking_number=UPS))
    store.apply_announcement(announcement("RS-B", revision=2))
    assert store.find_rmas("tracking", UPS) == ("RS-A",)
    record = store.lookup_rma("RS-A")
    assert record is not None and record.tracking_number == UPS
    store.apply_announcement(announcement("RS-A", revision=3, tracking_number=S10))
    assert (store.find_rmas("tracking", UPS), store.find_rmas("tracking", S10)) == ((), ("RS-A",))
    store.close()
    reopened = StationStore(tmp_path / "s.db")  # the schema script runs again: nothing lost
    assert reopened.find_rmas("tracking", S10) == ("RS-A",)
    d = sort(SorterCore(demo_belt(), reopened, TRUSTING), [S10])
    assert (d.reason, d.lane.name, d.rma_number) == (Reason.MATCHED, "restock", "RS-A")
    reopened.close()
