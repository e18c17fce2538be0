"""The core through its inputs: tracking windows, reads, grades, timing, faults."""

from __future__ import annotations

import pytest

from edge.sorter import SorterCore
from edge.sorter.model import (
    Alarm,
    BadRead,
    BeltCommand,
    Decision,
    Disposition,
    GateCancel,
    GateCommand,
    Inducted,
    LaneSpec,
    Mark,
    OrphanRead,
    ParcelExited,
    Reason,
)
from edge.sorter.policy import Policy, default_policy
from simulator.testing import (
    CHEAP_GOODS,
    DEMO_LANES,
    Directory,
    demo_belt,
    label_trusting_policy,
    line,
    rma,
)
from simulator.vbelt import VParcel, run_virtual
from tests.cases import field_case

UID = "04A2B3C4D5E680"
TRUSTING = label_trusting_policy()  # the parcels show only their label


def of(kind: type, actions: list[object]) -> list:
    return [a for a in actions if isinstance(a, kind)]


def one(run, index: int = 0):
    return run.results[index]


def test_c2_flickering_tag_in_one_window_is_one_read_of_one_parcel() -> None:
    case = field_case("C2_flicker")
    polls = tuple(p is not None for p in case["polls"])
    core = SorterCore(demo_belt(), Directory(rma("RMA-1", line(rfid_uid=UID))), TRUSTING)
    actions: list[object] = []
    actions += core.on_photo_eye(0.0, True) + core.on_photo_eye(300.0, False)
    # body 250..550 mm over the antenna at 400 mm from 550 ms on; one poll per 20 ms
    for k, seen in enumerate(polls):
        if seen:
            actions += core.on_rfid(550.0 + k * case["poll_ms"], UID.lower())
    for t in range(600, 6000, 5):
        actions += core.advance(float(t))
    [decision] = of(Decision, actions)
    assert core.counters["inducted"] == case["expect_parcels_same_window"] == 1
    assert decision.reads == (f"rfid:{UID}",)
    assert (decision.lane.name, decision.reason, decision.rma_number) == (
        "restock",
        Reason.MATCHED,
        "RMA-1",
    )


def test_c7_bouncing_eye_is_one_parcel_of_its_true_length() -> None:
    case = field_case("C7_gpio")[0]
    core = SorterCore(demo_belt(), Directory(rma("RMA-1")), TRUSTING)
    actions: list[object] = []
    for t, state in case["photo_eye_edges_ms"]:
        actions += core.on_photo_eye(float(t), state == "blocked")
    actions += core.on_barcode(475.0, "RMA-1")
    for t in range(160, 6000, 5):
        actions += core.advance(float(t))
    [exited] = of(ParcelExited, actions)
    assert core.counters["inducted"] == case["expect_parcels"] == 1
    assert exited.length_mm == pytest.approx(case["expect_length_ms_approx"] * 1.0)  # 1 mm/ms
    assert exited.final_lane.name == "restock"


def test_induct_is_reported_once_when_the_edge_is_accepted_with_the_bursts_start() -> None:
    core = SorterCore(demo_belt(debounce_ms=5.0), Directory(), TRUSTING)
    # C7-style bounce at the leading edge: 100 blocked, 101 clear, 102 blocked (stays)
    assert core.on_photo_eye(100.0, True) == []
    assert core.on_photo_eye(101.0, False) == []
    assert core.on_photo_eye(102.0, True) == []
    assert core.next_wakeup_ms() == 107.0  # 5 ms after the last raw edge
    assert core.advance(106.9) == []
    assert core.advance(107.0) == [Inducted(1, 100.0)]
    assert core.advance(108.0) == []
    # the trailing edge is no induct; the next parcel is number 2
    assert core.on_photo_eye(400.0, False) + core.advance(405.0) == []
    later = core.on_photo_eye(900.0, True) + core.advance(905.0)
    assert of(Inducted, later) == [Inducted(2, 900.0)]  # (and parcel 1's decision, at 850)


def test_induct_comes_from_the_next_input_when_it_arrives_after_the_debounce() -> None:
    core = SorterCore(demo_belt(), Directory(), TRUSTING)
    core.on_photo_eye(0.0, True)
    assert core.on_barcode(50.0, "RMA-1") == [Inducted(1, 0.0), OrphanRead("RMA-1", 50.0)]


def test_bouncing_eye_on_the_virtual_belt_keeps_every_parcel() -> None:
    parcels = [
        VParcel(150.0, 500.0, "RMA-1", bounce=True),
        VParcel(200.0, 400.0, None, bounce=True),
    ]
    run = run_virtual(demo_belt(), Directory(rma("RMA-1")), parcels, policy=TRUSTING)
    assert run.core.counters["inducted"] == 2
    assert [r.exited.length_mm for r in run.results if r.exited] == [150.0, 200.0]
    assert run.lanes() == ["restock", "quarantine"]


def test_duplicate_label_reads_are_one_read() -> None:
    run = run_virtual(
        demo_belt(), Directory(rma("RMA-1")), [VParcel(300.0, 500.0, "RMA-1", 4)], policy=TRUSTING
    )
    assert one(run).decision.reads == ("RMA-1",)
    assert one(run).reason == "matched"


@pytest.mark.parametrize(
    ("parcel", "reason"),
    [
        (VParcel(300.0, 500.0, "RMA-1", uid="DEADBEEF"), "wrong_item"),
        (VParcel(300.0, 500.0, "RMA-1"), "rfid_timeout"),
        (VParcel(300.0, 500.0, "RMA-2", uid=UID), "conflicting_reads"),
        (VParcel(300.0, 500.0, "RMA-1", uid=UID, rfid_polls=(False,) * 40), "rfid_timeout"),
        (VParcel(300.0, 500.0, "RMA-1", uid=UID), "matched"),
        (VParcel(300.0, 500.0, None, uid=UID), "matched"),
        (VParcel(300.0, 500.0, None), "no_read"),
    ],
)
def test_tag_and_label_together(parcel: VParcel, reason: str) -> None:
    rmas = Directory(rma("RMA-1", line(rfid_uid=UID)), rma("RMA-2"))
    run = run_virtual(demo_belt(), rmas, [parcel], policy=TRUSTING)
    r = one(run)
    assert r.reason == reason
    assert r.physical_lane == ("restock" if reason == "matched" else "quarantine")


def test_gs1_item_barcode_checks_the_line() -> None:
    rmas = Directory(rma("RMA-1", line(gtin="09501101020917", serial="SN0001")))
    scan = "]C101095011010209171725123110ABC123\x1d21SN0001"
    good = run_virtual(
        demo_belt(), rmas, [VParcel(300.0, 500.0, "RMA-1", gs1=scan)], policy=TRUSTING
    )
    assert one(good).reason == "matched"
    wrong = run_virtual(
        demo_belt(),
        rmas,
        [VParcel(300.0, 500.0, "RMA-1", gs1=scan.replace("SN0001", "SN0002"))],
        policy=TRUSTING,
    )
    assert one(wrong).reason == "wrong_item"


def test_invalid_uid_is_a_bad_read_not_an_identity() -> None:
    core = SorterCore(demo_belt(), Directory(), TRUSTING)
    assert core.on_rfid(10.0, "DD17380AF8") == [
        BadRead("rfid", "DD17380AF8", 10.0, "RFID UID 'DD17380AF8' is not 4, 7 or 10 bytes of hex")
    ]
    assert core.counters["bad_reads"] == 1


def test_c1_cascade_level_1_answer_is_never_an_item_key() -> None:
    case = field_case("C1_rfid_uid")[0]
    level1 = case["anticoll_level1_hex"][:8]  # "88047DB1" without its check byte
    core = SorterCore(demo_belt(), Directory(), TRUSTING)
    core.on_photo_eye(0.0, True)
    core.on_photo_eye(300.0, False)
    [bad] = core.on_rfid(550.0, level1)
    assert isinstance(bad, BadRead) and "cascade" in bad.error
    assert case["expect"] == "cascade_required"
    actions: list[object] = []
    for t in range(555, 3000, 5):
        actions += core.advance(float(t))
    [decision] = of(Decision, actions)
    assert (decision.reads, decision.reason) == ((), Reason.NO_READ)


def test_quantity_exceeded_on_the_second_parcel_of_a_one_item_line() -> None:
    rmas = Directory(rma("RMA-1", line(quantity=1)), rma("RMA-2", line(quantity=2)))
    parcels = [
        VParcel(300.0, 500.0, "RMA-1"),
        VParcel(300.0, 500.0, "RMA-1"),
        VParcel(300.0, 500.0, "RMA-2"),
        VParcel(300.0, 500.0, "RMA-2"),
    ]
    run = run_virtual(demo_belt(), rmas, parcels, policy=TRUSTING)
    assert [r.reason for r in run.results] == ["matched", "quantity_exceeded", "matched", "matched"]
    assert run.lanes() == ["restock", "quarantine", "restock", "restock"]


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("cancelled", "rma_cancelled"),
        ("expired", "rma_expired"),
        ("received", "rma_already_received"),
    ],
)
def test_rma_state_failures(state: str, reason: str) -> None:
    run = run_virtual(
        demo_belt(),
        Directory(rma("RMA-1", state=state)),
        [VParcel(300.0, 500.0, "RMA-1")],
        policy=TRUSTING,
    )
    assert (one(run).reason, one(run).physical_lane) == (reason, "quarantine")


CAMERA = {"camera_pos_mm": 700.0, "camera_tol_mm": 50.0}


@pytest.mark.parametrize(
    ("grade", "confidence", "category", "lane", "reason"),
    [
        ("A", 0.9, None, "restock", "matched"),
        ("B", 0.9, None, "refurbish", "matched"),
        ("C", 0.9, None, "recycle", "matched"),
        ("D", 0.9, None, "quarantine", "unknown_grade"),
        (None, 1.0, None, "quarantine", "unknown_grade"),
        ("A", 0.5, None, "quarantine", "unknown_grade"),
        ("B", 0.9, "hygiene", "recycle", "hygiene_opened"),
    ],
)
def test_camera_grade_decides_the_lane(
    grade: str | None, confidence: float, category: str | None, lane: str, reason: str
) -> None:
    policy = Policy(
        "conf-1",
        default_policy().rules,
        min_grade_confidence=0.8,
        verification=(CHEAP_GOODS,),
    )
    rmas = Directory(rma("RMA-1", line(category=category)))
    parcel = VParcel(300.0, 500.0, "RMA-1", grade=grade, confidence=confidence)
    run = run_virtual(demo_belt(**CAMERA), rmas, [parcel], policy)
    r = one(run)
    assert (r.decided_lane, r.reason, r.physical_lane) == (lane, reason, lane)
    inputs = dict(r.decision.inputs)
    assert inputs["grade_source"] == ("camera" if grade else "none")
    assert r.decision.policy_version == "conf-1"


def test_without_camera_the_policy_assumes_grade_a_and_says_so() -> None:
    run = run_virtual(
        demo_belt(),
        Directory(rma("RMA-1", reason="defective")),
        [VParcel(300.0, 500.0, "RMA-1")],
        policy=TRUSTING,
    )
    d = one(run).decision
    assert d.lane.name == "restock"
    assert dict(d.inputs) == {
        "identity": "matched",
        "rma_state": "authorized",
        "grade": "A",
        "grade_source": "assumed",
        "sku": "SKU-1",
        "category": "-",
        "rma_reason": "defective",
        "verification": "trusted",
        "rule": "1",
        "verification_rule": "0",
    }
    assert d.policy_version == "default-1"
    assert d.explanation == (
        "restock: matched; label names RMA-1; line 1 label trusted: verification rule 0 "
        "(cheap goods without identifiers, up to 20.00: label trusted); rule 1 (grade A)"
    )


def test_the_shipped_policy_inspects_a_label_only_parcel_and_says_why() -> None:
    run = run_virtual(demo_belt(), Directory(rma("RMA-1")), [VParcel(300.0, 500.0, "RMA-1")])
    d = one(run).decision
    assert (d.reason, one(run).physical_lane) == ("unverified", "quarantine")
    assert [(u.line_no, u.evidence.value, u.verified) for u in d.units] == [(1, "label", False)]
    assert dict(d.inputs)["verification"] == "unverified"
    assert "verification_rule" not in dict(d.inputs)
    assert d.explanation == (
        "quarantine: unverified; label names RMA-1; line 1 unverified: no verification "
        "rule trusts it; not sortable on condition: unverified"
    )


def test_without_camera_and_no_assumed_grade_nothing_is_sorted() -> None:
    policy = Policy(
        "strict-1",
        default_policy().rules,
        assume_grade_without_camera=None,
        verification=(CHEAP_GOODS,),
    )
    run = run_virtual(
        demo_belt(), Directory(rma("RMA-1")), [VParcel(300.0, 500.0, "RMA-1")], policy
    )
    assert (one(run).reason, one(run).physical_lane) == ("unknown_grade", "quarantine")


def test_recalled_sku_is_quarantined() -> None:
    policy = label_trusting_policy(recalled_skus=("SKU-1",))
    run = run_virtual(
        demo_belt(), Directory(rma("RMA-1")), [VParcel(300.0, 500.0, "RMA-1")], policy
    )
    assert (one(run).reason, one(run).physical_lane) == ("recalled", "quarantine")


def test_lane_full_sends_the_parcel_on_to_quarantine() -> None:
    run = run_virtual(
        demo_belt(),
        Directory(rma("RMA-1")),
        [VParcel(300.0, 500.0, "RMA-1")],
        lane_full=["restock"],
        policy=TRUSTING,
    )
    assert (one(run).reason, one(run).physical_lane) == ("lane_full", "quarantine")
    assert one(run).commands == []


OVERFLOW_LANES = (
    LaneSpec("restock", Disposition.RESTOCK, 1500.0, "restock", overflow="restock2"),
    LaneSpec("restock2", Disposition.RESTOCK, 2000.0, "restock2", overflow="restock"),
    *DEMO_LANES[1:],
)


@pytest.mark.parametrize(
    ("full", "lane", "reason", "why"),
    [
        ([], "restock", "matched", None),
        (["restock"], "restock2", "matched", "lane restock full: overflow lane restock2"),
        # the overflow is full too (and names the first back): quarantine, no loop
        (["restock", "restock2"], "quarantine", "lane_full", "lane full"),
    ],
)
def test_a_full_lane_sends_its_parcels_to_its_overflow_lane_before_quarantine(
    full: list[str], lane: str, reason: str, why: str | None
) -> None:
    run = run_virtual(
        demo_belt(lanes=OVERFLOW_LANES),
        Directory(rma("RMA-1")),
        [VParcel(300.0, 500.0, "RMA-1")],
        TRUSTING,
        lane_full=full,
    )
    result = one(run)
    assert (result.decided_lane, result.physical_lane, result.reason) == (lane, lane, reason)
    assert result.decision is not None
    if why is not None:
        assert why in result.decision.explanation
    if lane == "restock2":  # its own gate, timed for its own position (2000 mm)
        [cmd] = result.commands
        # inducted at 1500 ms, lead at 2000 mm 2000 ms later, less stroke + margin (100 ms)
        assert (cmd.gate, cmd.open_at_ms) == ("restock2", 1500.0 + 2000.0 - 100.0)


def test_lane_full_after_the_decision_withdraws_a_gate_not_yet_opening() -> None:
    core = SorterCore(demo_belt(), Directory(rma("RMA-1")), TRUSTING)
    core.on_photo_eye(0.0, True)
    core.on_photo_eye(300.0, False)
    core.on_barcode(550.0, "RMA-1")
    [decision, cmd] = core.advance(750.0)
    assert isinstance(cmd, GateCommand) and cmd.open_at_ms == 1400.0
    assert core.on_lane_full(1000.0, "restock", True) == [GateCancel(1, "restock", 1000.0)]
    actions: list[object] = []
    for t in range(1000, 6000, 5):
        actions += core.advance(float(t))
    [exited] = of(ParcelExited, actions)
    assert exited.final_lane.name == "quarantine"
    assert exited.marks == (Mark.GATE_CANCELLED, Mark.LANE_FULL)
    assert decision.reason == Reason.MATCHED


@pytest.mark.parametrize(
    ("gap_mm", "second", "reasons", "lanes"),
    [
        # 50 mm apart: the first gate would catch the second parcel; neither is diverted.
        (50.0, "RMA-2", ["gap_violation", "gap_violation"], ["quarantine", "quarantine"]),
        # 150 mm: enough to divert one and let the next run past (stroke + margin = 100 mm)...
        (150.0, None, ["matched", "no_read"], ["restock", "quarantine"]),
        # ...and two parcels for one gate 150 mm apart share one energised stretch.
        (150.0, "RMA-2", ["matched", "matched"], ["restock", "restock"]),
        (90.0, None, ["gap_violation", "no_read"], ["quarantine", "quarantine"]),
    ],
)
def test_gap_violation(
    gap_mm: float, second: str | None, reasons: list[str], lanes: list[str]
) -> None:
    rmas = Directory(rma("RMA-1"), rma("RMA-2"))
    run = run_virtual(
        demo_belt(),
        rmas,
        [VParcel(300.0, 500.0, "RMA-1"), VParcel(300.0, gap_mm, second)],
        policy=TRUSTING,
    )
    assert [r.reason for r in run.results] == reasons
    assert run.lanes() == lanes


def test_gate_times_from_lane_distance_length_and_stroke() -> None:
    run = run_virtual(
        demo_belt(),
        Directory(rma("RMA-1")),
        [VParcel(300.0, 0.0, "RMA-1")],
        start_ms=0.0,
        policy=TRUSTING,
    )
    [cmd] = one(run).commands
    # lead at the 1500 mm gate at 1500 ms; open stroke 60 + margin 40 before, close
    # when the trailing edge has passed (1800 ms) plus margin.
    assert cmd == GateCommand(1, "restock", 1400.0, 1840.0, 1400.0, 1840.0)


def test_encoder_position_drives_length_and_gate_times() -> None:
    cfg = demo_belt(encoder_mm_per_count=0.5)
    core = SorterCore(cfg, Directory(rma("RMA-1")), TRUSTING)
    actions: list[object] = []
    # the belt really runs at 500 mm/s (1000 counts/s), not the nominal 1000 mm/s
    for t in range(0, 8000, 10):
        actions += core.on_encoder(float(t), t)
        if t == 1000:
            actions += core.on_photo_eye(1000.0, True)
        if t == 1600:
            actions += core.on_photo_eye(1600.0, False)  # 600 ms at 0.5 mm/ms: 300 mm
        if t == 2400:
            actions += core.on_barcode(2400.0, "RMA-1")  # centre at 400 mm
    [exited] = of(ParcelExited, actions)
    assert exited.length_mm == pytest.approx(300.0)
    [cmd] = of(GateCommand, actions)
    # lead reaches 1500 mm at 1000 + 3000 ms
    assert cmd.open_at_ms == pytest.approx(4000.0 - 100.0)
    assert cmd.close_at_ms == pytest.approx(4600.0 + 40.0)


def test_jam_stops_the_belt_withdraws_gates_and_resumes_by_command() -> None:
    cfg = demo_belt(jam_ms=350.0)
    core = SorterCore(cfg, Directory(rma("RMA-1")), TRUSTING)
    actions: list[object] = []
    actions += core.on_photo_eye(0.0, True) + core.on_photo_eye(300.0, False)
    actions += core.on_barcode(550.0, "RMA-1")
    actions += core.advance(800.0)  # decided: restock, gate to open at 1400 ms
    assert len(of(GateCommand, actions)) == 1
    actions += core.on_photo_eye(1000.0, True)  # the next parcel sticks at the eye
    actions += core.advance(1349.0)
    assert of(BeltCommand, actions) == []
    jam = core.advance(1352.0)
    assert jam == [
        BeltCommand(False, 1350.0, "jam"),
        Alarm("jam", True, 1350.0),
        GateCancel(1, "restock", 1350.0),
    ]
    assert core.status()["jammed"] is True
    assert core.advance(9000.0) == []  # the belt stands: nothing moves, nothing exits
    resumed = core.on_resume(10_000.0)
    assert resumed == [BeltCommand(True, 10_000.0, "resume"), Alarm("jam", False, 10_000.0)]
    rest = core.on_photo_eye(10_100.0, False)
    for t in range(10_100, 20_000, 5):
        rest += core.advance(float(t))
    exits = {e.decision.parcel_id: e for e in of(ParcelExited, rest)}
    first = exits[1]
    assert first.final_lane.name == "quarantine" and first.marks == (Mark.GATE_CANCELLED,)
    # the belt stood still 1350..10000 ms: the end (4000 + 300 mm) is reached 8650 ms late
    assert first.exited_at_ms == pytest.approx(4300.0 + 8650.0)
    # the stuck parcel: 350 mm before the stop, 100 mm after the resume
    assert exits[2].length_mm == pytest.approx(450.0)


def test_gate_times_follow_the_belt_when_it_slows_after_the_decision() -> None:
    core = SorterCore(demo_belt(encoder_mm_per_count=1.0), Directory(rma("RMA-1")), TRUSTING)
    actions: list[object] = []
    for t in range(0, 1001, 100):  # 1 m/s: 1 count per ms
        actions += core.on_encoder(float(t), t)
        if t == 0:
            actions += core.on_photo_eye(0.0, True)
        if t == 300:
            actions += core.on_photo_eye(300.0, False)
        if t == 500:
            actions += core.on_barcode(550.0, "RMA-1")
    [first] = of(GateCommand, actions)
    assert (first.open_at_ms, first.close_at_ms) == (1400.0, 1840.0)
    # from 1000 ms the belt runs at half speed: 50 counts in the next 100 ms
    [retimed] = core.on_encoder(1100.0, 1050)
    # lead at 1500 mm: 1100 + 450 mm / 0.5 mm/ms = 2000 ms, less stroke + margin (100 ms);
    # trail at 1800 mm: 1100 + 750 / 0.5 = 2600 ms, plus margin (40 ms)
    assert retimed == GateCommand(
        1, "restock", 1900.0, 2640.0, first.open_at_pos_mm, first.close_at_pos_mm
    )
    assert core.on_encoder(1200.0, 1100) == []  # same speed: nothing moves
    # it stands still: the open is not scheduled until the belt moves again
    [standing] = core.on_encoder(1300.0, 1100)
    assert (standing.open_at_ms, standing.close_at_ms) == (float("inf"), float("inf"))
    [moving] = core.on_encoder(1400.0, 1200)  # 1 m/s again from 1200 mm
    assert (moving.open_at_ms, moving.close_at_ms) == (1600.0, 2040.0)
    rest: list[object] = []
    for t in range(1500, 4000, 100):
        rest += core.on_encoder(float(t), 1200 + (t - 1400))
    [exited] = of(ParcelExited, rest)
    assert (exited.final_lane.name, exited.marks) == ("restock", ())


def test_holds_stop_the_belt_once_and_it_runs_when_the_last_is_lifted() -> None:
    core = SorterCore(demo_belt(), Directory(rma("RMA-1")), TRUSTING)
    actions: list[object] = []
    actions += core.on_photo_eye(0.0, True) + core.on_photo_eye(300.0, False)
    actions += core.on_barcode(550.0, "RMA-1")
    actions += core.advance(800.0)
    assert len(of(GateCommand, actions)) == 1
    assert core.hold(1000.0, "pause") == [
        BeltCommand(False, 1000.0, "pause"),
        GateCancel(1, "restock", 1000.0),
    ]
    assert core.hold(1100.0, "estop") == [Alarm("estop", True, 1100.0)]
    assert core.release(2000.0, "pause") == []  # the E-stop still holds it
    assert core.on_resume(3000.0) == [
        BeltCommand(True, 3000.0, "estop"),
        Alarm("estop", False, 3000.0),
    ]
    assert core.status()["holds"] == []
    rest: list[object] = []
    for t in range(3000, 9000, 5):
        rest += core.advance(float(t))
    [exited] = of(ParcelExited, rest)
    assert exited.final_lane.name == "quarantine" and exited.marks == (Mark.GATE_CANCELLED,)
    # stood still 1000..3000 ms: the end (4000 + 300 mm) is reached 2000 ms late
    assert exited.exited_at_ms == pytest.approx(4300.0 + 2000.0)


CONFIRM_LANES = (
    LaneSpec("restock", DEMO_LANES[0].disposition, 1500.0, "restock", confirm=True),
    *DEMO_LANES[1:],
)


@pytest.mark.parametrize(
    ("seen", "marks", "alarms"), [(True, (), 0), (False, (Mark.DIVERT_UNCONFIRMED,), 1)]
)
def test_divert_confirmation(seen: bool, marks: tuple[Mark, ...], alarms: int) -> None:
    run = run_virtual(
        demo_belt(lanes=CONFIRM_LANES),
        Directory(rma("RMA-1")),
        [VParcel(300.0, 500.0, "RMA-1", confirm=seen)],
        policy=TRUSTING,
    )
    r = one(run)
    assert r.exited is not None and r.exited.marks == marks
    raised = [a for _, a in run.actions if isinstance(a, Alarm) and a.kind == "divert_unconfirmed"]
    assert len(raised) == alarms
    assert run.core.counters["divert_unconfirmed"] == alarms


def test_decision_records_the_inputs_and_reads_for_a_failure() -> None:
    run = run_virtual(
        demo_belt(),
        Directory(rma("RMA-1", line(rfid_uid=UID))),
        [VParcel(300.0, 500.0, "RMA-1", uid="DEADBEEF")],
        policy=TRUSTING,
    )
    d = one(run).decision
    assert d.reads == ("rfid:DEADBEEF", "RMA-1")  # the tag enters its field first
    assert dict(d.inputs)["identity"] == "wrong_item"
    assert d.explanation.startswith("quarantine: wrong_item; item does not match RMA-1")


def test_a_tag_two_parcels_could_own_identifies_neither() -> None:
    rmas = Directory(rma("RMA-1", line(rfid_uid=UID)))
    core = SorterCore(demo_belt(rfid_tol_mm=100.0), rmas, TRUSTING)
    core.on_photo_eye(0.0, True)
    core.on_photo_eye(200.0, False)  # parcel 1: 200 mm
    core.on_photo_eye(230.0, True)  # parcel 2: 30 mm behind it
    core.on_photo_eye(430.0, False)
    # at 640 ms parcel 1 spans 440..640 mm, parcel 2 210..410 mm: both within 100 mm of 400
    assert core.on_rfid(640.0, UID) == []
    assert core.counters["ambiguous_reads"] == 1
    actions: list[object] = []
    for t in range(655, 6000, 5):
        actions += core.advance(float(t))
    decisions = of(Decision, actions)
    assert [(d.reason, d.reads) for d in decisions] == [
        (Reason.AMBIGUOUS_READ, (f"ambiguous:rfid:{UID}",)),
        (Reason.AMBIGUOUS_READ, (f"ambiguous:rfid:{UID}",)),
    ]
