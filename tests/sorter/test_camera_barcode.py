"""The label decoded from the camera photo as a second barcode reader (issue 8)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.sorter import SorterCore
from edge.sorter.model import Decision, OrphanRead, Reason
from simulator.testing import Directory, demo_belt, label_trusting_policy, rma

TRUSTING = label_trusting_policy()  # the parcels show only their label


def run(core: SorterCore, feed: dict[float, list[tuple[str, str]]]) -> list[object]:
    """One parcel (eye blocked 0..300 ms); ``feed``: at t, (source, code) barcode reads."""
    actions: list[object] = []
    actions += core.on_photo_eye(0.0, True) + core.on_photo_eye(300.0, False)
    for t in range(305, 6000, 5):
        for source, code in feed.get(float(t), []):
            if source == "scanner":
                actions += core.on_barcode(float(t), code)
            else:
                actions += core.on_barcode(float(t), code, parcel_id=1, source="camera")
        actions += core.advance(float(t))
    return actions


def decision(actions: list[object]) -> Decision:
    [d] = [a for a in actions if isinstance(a, Decision)]
    return d


def test_scanner_no_read_camera_read_identifies_and_records_the_source() -> None:
    d = decision(
        run(
            SorterCore(demo_belt(), Directory(rma("RMA-1")), TRUSTING),
            {310.0: [("camera", "RMA-1")]},
        )
    )
    assert (d.lane.name, d.reason, d.rma_number) == ("restock", Reason.MATCHED, "RMA-1")
    assert d.reads == ("camera:RMA-1",)
    assert dict(d.inputs)["barcode_source"] == "camera"
    assert "label read by camera;" in d.explanation


def test_scanner_and_camera_agree_is_one_read() -> None:
    feed = {310.0: [("camera", "RMA-1")], 500.0: [("scanner", "RMA-1")]}
    d = decision(run(SorterCore(demo_belt(), Directory(rma("RMA-1")), TRUSTING), feed))
    assert d.reason == Reason.MATCHED
    assert dict(d.inputs)["barcode_source"] == "camera+scanner"
    assert set(d.reads) == {"RMA-1", "camera:RMA-1"}


def test_camera_disagreeing_with_the_scanner_is_a_conflict() -> None:
    feed = {310.0: [("camera", "RMA-2")], 500.0: [("scanner", "RMA-1")]}
    core = SorterCore(demo_belt(), Directory(rma("RMA-1"), rma("RMA-2")), TRUSTING)
    d = decision(run(core, feed))
    assert d.reason == Reason.CONFLICTING_READS
    assert d.rma_number is None
    assert d.lane.name == "quarantine"


def test_camera_read_after_the_decision_is_an_orphan() -> None:
    core = SorterCore(demo_belt(), Directory(rma("RMA-1")), TRUSTING)
    actions = run(core, {5000.0: [("camera", "RMA-1")]})
    d = decision(actions)
    assert d.reason == Reason.NO_READ
    assert "barcode_source" not in dict(d.inputs)
    assert core.counters["orphan_reads"] == 1
    [orphan] = [a for a in actions if isinstance(a, OrphanRead)]
    assert orphan.code == "camera:RMA-1"


def test_scanner_only_decisions_carry_no_barcode_source() -> None:
    d = decision(
        run(
            SorterCore(demo_belt(), Directory(rma("RMA-1")), TRUSTING),
            {500.0: [("scanner", "RMA-1")]},
        )
    )
    assert d.reason == Reason.MATCHED
    assert d.reads == ("RMA-1",)
    assert "barcode_source" not in dict(d.inputs)


# before the decision (leading edge at 750 mm): the scanner while the parcel covers the
# tunnel (400 mm +- 50), the camera any time (by parcel id)
READ = st.one_of(
    st.tuples(st.just("scanner"), st.sampled_from([350.0, 400.0, 500.0, 700.0])),
    st.tuples(st.just("camera"), st.sampled_from([305.0, 310.0, 400.0, 700.0])),
)


@settings(max_examples=40, deadline=None)
@given(
    scans=st.lists(READ, max_size=6),
    other=st.one_of(st.none(), READ),
)
def test_any_mix_of_readers_one_code_matches_two_codes_conflict(
    scans: list[tuple[str, float]], other: tuple[str, float] | None
) -> None:
    feed: dict[float, list[tuple[str, str]]] = {}
    for source, t in scans:
        feed.setdefault(t, []).append((source, "RMA-1"))
    if other is not None:
        feed.setdefault(other[1], []).append((other[0], "RMA-2"))
    d = decision(
        run(SorterCore(demo_belt(), Directory(rma("RMA-1"), rma("RMA-2")), TRUSTING), feed)
    )
    if other is not None and scans:
        assert d.reason == Reason.CONFLICTING_READS and d.rma_number is None
    elif scans:
        assert (d.reason, d.rma_number) == (Reason.MATCHED, "RMA-1")
    elif other is None:
        assert d.reason == Reason.NO_READ
    sources = {s for s, _ in scans} | ({other[0]} if other else set())
    assert (dict(d.inputs).get("barcode_source") is not None) == ("camera" in sources)
