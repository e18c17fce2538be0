"""Issue 20, the core: a read is given to a parcel only when its whole uncertainty interval
maps to that one parcel's body at the reader; late reads are never evidence.

Demo belt: 1 m/s, scan tunnel at 400 mm ± 50. A parcel inducted at ``t0`` (eye blocked at
``t0``, clear 300 ms later: 300 mm) covers the scanner (body ± 50 mm) while the belt has
travelled ``t0 + 350`` to ``t0 + 750`` mm, i.e. from ``t0 + 350`` to ``t0 + 750`` ms.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.sorter import Decision, ParcelExited, SorterCore
from edge.sorter.model import Action, Alarm, OrphanRead, Reason
from simulator.testing import Directory, demo_belt, line, rma

GTIN = "09501101020917"
UID = "04A2B3C4D5E680"


def gs1(serial: str) -> str:
    """The product's GS1 code: its GTIN and its serial."""
    return "]C101" + GTIN + "21" + serial


def directory(n: int) -> Directory:
    """RMA-<i> returns one unit whose serial is SN<i> (i = 1..n)."""
    return Directory(*(rma(f"RMA-{i}", line(f"SKU-{i}", serial=f"SN{i}")) for i in range(1, n + 1)))


def induct(core: SorterCore, t0: float, length_ms: float = 300.0) -> list[Action]:
    return core.on_photo_eye(t0, True) + core.on_photo_eye(t0 + length_ms, False)


def run(core: SorterCore, start: float, end: float = 6000.0) -> list[Action]:
    actions: list[Action] = []
    for t in range(int(start), int(end), 5):
        actions += core.advance(float(t))
    return actions


def decisions(actions: list[Action]) -> dict[int, tuple[Reason, tuple[str, ...]]]:
    return {a.parcel_id: (a.reason, a.reads) for a in actions if isinstance(a, Decision)}


def test_a_read_whose_interval_lies_in_one_parcel_is_its_evidence() -> None:
    core = SorterCore(demo_belt(), directory(1))
    induct(core, 0.0)
    # seen within [500, 600] ms: belt 500..600 mm, inside parcel 1's 350..750
    assert core.on_barcode(600.0, gs1("SN1"), latency_ms=100.0) == []
    actions = run(core, 605.0)
    assert decisions(actions) == {1: (Reason.MATCHED, ("gs1:09501101020917/SN1",))}
    assert (core.counters["ambiguous_reads"], core.counters["late_reads"]) == (0, 0)


def test_an_interval_over_a_gap_and_a_parcel_is_ambiguous_for_that_parcel() -> None:
    core = SorterCore(demo_belt(), directory(2))
    actions = induct(core, 0.0)
    actions += induct(core, 500.0)  # parcel 2 covers the scanner from 850 mm on
    actions += run(core, 805.0, 900.0)
    # seen within [800, 900] ms: the gap after parcel 1 (gone at 750), then parcel 2
    actions += core.on_barcode(900.0, gs1("SN2"), latency_ms=100.0)
    actions += run(core, 905.0)
    assert decisions(actions) == {
        1: (Reason.NO_READ, ()),
        2: (Reason.AMBIGUOUS_READ, ("ambiguous:gs1:09501101020917/SN2",)),
    }
    assert core.counters["ambiguous_reads"] == 1


def test_an_interval_over_two_parcels_is_ambiguous_for_both() -> None:
    core = SorterCore(demo_belt(), directory(2))
    induct(core, 0.0)
    induct(core, 350.0)  # 50 mm gap: parcel 2 covers the scanner from 700 mm on
    # seen within [600, 690] ms: parcel 1 alone at every instant, but the interval ends
    # 10 mm before parcel 2 starts: it is parcel 1's
    assert core.on_barcode(690.0, gs1("SN1"), latency_ms=90.0) == []
    # seen within [660, 710] ms: parcel 1 then both
    assert core.on_barcode(710.0, "RMA-2", latency_ms=50.0) == []
    actions = run(core, 715.0)
    assert decisions(actions) == {
        1: (Reason.AMBIGUOUS_READ, ("gs1:09501101020917/SN1", "ambiguous:RMA-2")),
        2: (Reason.AMBIGUOUS_READ, ("ambiguous:RMA-2",)),
    }


def test_a_late_read_is_never_evidence_and_raises_station_overloaded() -> None:
    core = SorterCore(demo_belt(), directory(1))
    induct(core, 0.0)
    # inside parcel 1's window, but its reader knows it was delivered late
    actions = core.on_barcode(600.0, gs1("SN1"), latency_ms=80.0, late=True)
    assert actions == [Alarm("station_overloaded", True, 600.0)]
    actions = run(core, 605.0, 70_000.0)
    [decision] = [a for a in actions if isinstance(a, Decision)]
    assert (decision.reason, decision.reads, decision.units, decision.lane.name) == (
        Reason.AMBIGUOUS_READ,
        ("late:gs1:09501101020917/SN1",),
        (),
        "quarantine",
    )
    assert decision.explanation.startswith(
        "quarantine: ambiguous_read; 1 read(s) could belong to a neighbouring parcel "
        "(1 delivered late: station overloaded)"
    )
    assert Alarm("station_overloaded", False, 60_600.0) in actions
    assert (core.counters["late_reads"], core.counters["ambiguous_reads"]) == (1, 1)


def test_a_read_stamped_after_its_parcel_was_decided_never_goes_to_the_next_one() -> None:
    core = SorterCore(demo_belt(), directory(2))
    actions = induct(core, 0.0)
    actions += induct(core, 500.0)  # parcel 1 decided at 750 ms
    actions += run(core, 805.0, 900.0)
    # seen within [500, 900] ms (within the reader's bound, say): parcel 1 or parcel 2
    actions += core.on_barcode(900.0, gs1("SN1"), latency_ms=400.0)
    assert decisions(actions) == {1: (Reason.NO_READ, ())}
    actions += run(core, 905.0)
    assert decisions(actions)[2] == (
        Reason.AMBIGUOUS_READ,
        ("ambiguous:gs1:09501101020917/SN1",),
    )


def test_a_read_stamped_after_its_parcel_left_the_belt_never_goes_to_the_next_one() -> None:
    core = SorterCore(demo_belt(), directory(2))
    actions = induct(core, 0.0)
    actions += run(core, 305.0, 4500.0)
    actions += induct(core, 4500.0)  # parcel 1 (no read) left at 4300 ms, at the end
    assert [a.decision.parcel_id for a in actions if isinstance(a, ParcelExited)] == [1]
    # seen within [400, 4900] ms (a reader stalled for 4.5 s): parcel 1 or parcel 2
    actions += core.on_barcode(4900.0, gs1("SN1"), latency_ms=4500.0)
    actions += run(core, 4905.0, 12_000.0)
    assert decisions(actions)[2] == (
        Reason.AMBIGUOUS_READ,
        ("ambiguous:gs1:09501101020917/SN1",),
    )


def test_a_read_wholly_in_a_decided_parcel_is_an_orphan() -> None:
    core = SorterCore(demo_belt(), directory(2))
    induct(core, 0.0)
    induct(core, 500.0)
    run(core, 305.0, 800.0)  # parcel 1 decided at 750 ms
    # seen within [700, 740] ms: parcel 1's, delivered after its decision
    assert core.on_barcode(740.0, gs1("SN1"), latency_ms=40.0) == [
        OrphanRead("gs1:09501101020917/SN1", 740.0)
    ]
    assert core.counters["orphan_reads"] == 1


def test_an_rfid_read_carries_its_poll_interval_too() -> None:
    core = SorterCore(demo_belt(), directory(2))
    actions = induct(core, 0.0)
    actions += induct(core, 500.0)
    actions += run(core, 805.0, 900.0)
    # the poll ran from 800 to 880 ms (thread preempted mid-poll): gap, then parcel 2
    actions += core.on_rfid(880.0, UID, latency_ms=80.0)
    actions += run(core, 885.0)
    assert decisions(actions)[2] == (Reason.AMBIGUOUS_READ, (f"ambiguous:rfid:{UID}",))


# -- property: random delivery delays, within and beyond the bound ------------------------

MAX_LATENCY_MS = 50.0
DEVICE_LATENCY_MS = 10.0

parcels_st = st.lists(
    st.tuples(
        st.floats(150.0, 450.0),  # length, mm (= ms at 1 m/s)
        st.floats(20.0, 400.0),  # gap before it, mm
        st.floats(0.0, 1.0),  # where along its body the code is seen (0: lead, 1: trail)
        st.floats(0.0, 400.0),  # the reader thread's delay, ms
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(parcels_st)
def test_no_unit_is_verified_for_a_parcel_not_under_the_reader_at_the_true_read_time(
    parcels: list[tuple[float, float, float, float]],
) -> None:
    # Parcel i holds RMA-i's unit (serial SN<i>); its code is seen while the scanner is
    # within its body; the driver delivers it ``delay`` later with its honest interval
    # (delay + the device's latency) and flags it late beyond the bound.
    core = SorterCore(demo_belt(), directory(len(parcels)))
    events: list[tuple[float, int, str, tuple[object, ...]]] = []
    t = 0.0
    under: dict[int, tuple[float, float]] = {}  # parcel -> times it is under the reader
    reads: dict[int, tuple[float, float]] = {}  # parcel -> its read's stamp and latency
    for i, (length, gap, where, delay) in enumerate(parcels, start=1):
        t += gap
        events.append((t, 0, "eye", (True,)))
        events.append((t + length, 0, "eye", (False,)))
        first, last = t + 400.0, t + 400.0 + length  # lead at 400 mm .. trail at 400 mm
        under[i] = (first, last)
        seen = first + where * (last - first)
        latency = delay + DEVICE_LATENCY_MS
        reads[i] = (seen + delay, latency)
        events.append((seen + delay, 1, "scan", (gs1(f"SN{i}"), latency, latency > 50.0)))
        t += length
    actions: list[Action] = []
    for when, _, kind, args in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == "eye":
            actions += core.on_photo_eye(when, bool(args[0]))
        else:
            code, latency, late = args
            assert isinstance(code, str) and isinstance(latency, float)
            actions += core.on_barcode(when, code, latency_ms=latency, late=bool(late))
    actions += run(core, max(e[0] for e in events) + 5.0, t + 6000.0)
    verified = {
        (a.parcel_id, u.identifier)
        for a in actions
        if isinstance(a, Decision)
        for u in a.units
        if u.verified
    }
    for parcel_id, identifier in verified:
        assert identifier == f"SN{parcel_id}", (parcel_id, identifier)
    taken = {  # reads each parcel took as its own (not ambiguous:, not late:)
        a.parcel_id: {r for r in a.reads if r.startswith("gs1:")}
        for a in actions
        if isinstance(a, Decision)
    }
    for parcel_id, reads_taken in taken.items():
        assert reads_taken <= {f"gs1:{GTIN}/SN{parcel_id}"}, (parcel_id, reads_taken)
    # and a read whose interval provably lies in its own parcel alone is its evidence
    covers = {i: (first - 50.0, last + 50.0) for i, (first, last) in under.items()}
    for i, (stamp, latency) in reads.items():
        start = stamp - latency
        others = [c for j, c in covers.items() if j != i]
        if (
            latency <= MAX_LATENCY_MS
            and covers[i][0] + 1.0 < start
            and stamp + 1.0 < covers[i][1]  # delivered before its decision
            and all(c1 + 1.0 < start or stamp + 1.0 < c0 for c0, c1 in others)
        ):
            assert taken[i] == {f"gs1:{GTIN}/SN{i}"}, (i, stamp, latency)


# -- the camera: a triggered photo is checked against the parcel's position --------------


def photo_run(seen_ms: float) -> tuple[dict[int, tuple[Reason, tuple[str, ...]]], SorterCore]:
    # camera at 700 mm ± 50: parcel 1 (0 ms, 300 mm) is there from 650 to 1050 ms, parcel 2
    # (inducted at 400 ms) from 1050 ms on; the grader's result for parcel 1's trigger
    # (800 ms) says when its frame was captured
    core = SorterCore(demo_belt(camera_pos_mm=700.0), directory(2))
    actions = induct(core, 0.0)
    actions += core.on_barcode(550.0, gs1("SN1"))
    actions += induct(core, 400.0)
    actions += core.on_grade(800.0, "A", 0.9, parcel_id=1, seen_ms=seen_ms)
    actions += core.on_footprint(800.0, 300.0, 200.0, 1, seen_ms=seen_ms)
    actions += run(core, 805.0)
    return decisions(actions), core


def test_a_photo_captured_while_its_parcel_was_at_the_camera_grades_it() -> None:
    found, core = photo_run(seen_ms=900.0)
    assert found[1] == (Reason.MATCHED, ("gs1:09501101020917/SN1",))
    assert core.counters["ambiguous_reads"] == 0


def test_a_photo_captured_late_grades_and_measures_nobody() -> None:
    # captured at 1060 ms: parcel 1's trailing edge and parcel 2's leading edge
    found, core = photo_run(seen_ms=1060.0)
    assert found[1] == (
        Reason.AMBIGUOUS_READ,
        ("gs1:09501101020917/SN1", "ambiguous:grade:A", "ambiguous:footprint:300x200"),
    )
    assert core.counters["ambiguous_reads"] == 2
