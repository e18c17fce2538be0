from __future__ import annotations

import pytest

from edge.sorter import (
    BeltConfig,
    Decision,
    Disposition,
    GateCommand,
    LaneSpec,
    ParcelExited,
    Reason,
    RmaRecord,
    SorterCore,
)
from edge.sorter.model import Alarm, OrphanRead
from simulator.testing import Directory, demo_belt, label_trusting_policy, line
from simulator.testing import rma as kit_rma

LANES = (
    LaneSpec("restock", Disposition.RESTOCK, 1500.0, "restock"),
    LaneSpec("recycle", Disposition.RECYCLE, 2300.0, "recycle"),
    LaneSpec("quarantine", Disposition.QUARANTINE, 4000.0, None),
)
CFG = demo_belt(lanes=LANES)
TRUSTING = label_trusting_policy()  # the parcels show only their label


def rma(number: str, state: str, revision: int) -> RmaRecord:
    return kit_rma(number, state=state, revision=revision, reason=None)


def drive(core: SorterCore, t0: float, length_mm: float, codes: list[str]) -> list[object]:
    """One parcel: eye blocked at t0 for its length; codes read with its centre at the scanner."""
    actions: list[object] = []
    actions += core.on_photo_eye(t0, True)
    actions += core.on_photo_eye(t0 + length_mm, False)  # 1000 mm/s: 1 mm per ms
    for code in codes:
        actions += core.on_barcode(t0 + 400 + length_mm / 2, code)
    for t in range(int(t0), int(t0) + 8000, 5):
        actions += core.advance(float(t))
    return actions


def of(kind: type, actions: list[object]) -> list:
    return [a for a in actions if isinstance(a, kind)]


def test_known_rma_is_restocked_with_gate_timed_on_the_parcel() -> None:
    core = SorterCore(CFG, Directory(rma("RMA-1", "authorized", 1)), TRUSTING)
    actions = drive(core, 1000.0, 300.0, ["RMA-1"])
    [decision] = of(Decision, actions)
    assert (decision.lane.name, decision.reason, decision.rma_number) == (
        "restock",
        Reason.MATCHED,
        "RMA-1",
    )
    [cmd] = of(GateCommand, actions)
    # leading edge at the gate: 1000 + 1500 ms; open stroke + margin before it.
    assert cmd.gate == "restock"
    assert cmd.open_at_ms == pytest.approx(2500.0 - 100.0)
    # trailing edge past the gate: +300 ms, then margin.
    assert cmd.close_at_ms == pytest.approx(2800.0 + 40.0)
    [exited] = of(ParcelExited, actions)
    assert exited.length_mm == pytest.approx(300.0)
    assert exited.exited_at_ms == pytest.approx(2840.0)
    assert core.lane_counts == {"restock": 1, "recycle": 0, "quarantine": 1 - 1}


@pytest.mark.parametrize(
    ("codes", "rmas", "reason"),
    [
        ([], (), Reason.NO_READ),
        (["RMA-404"], (), Reason.UNKNOWN_RMA),
        (
            ["RMA-1", "RMA-2"],
            (rma("RMA-1", "authorized", 1), rma("RMA-2", "authorized", 2)),
            Reason.CONFLICTING_READS,
        ),
        (["RMA-1"], (rma("RMA-1", "cancelled", 3),), Reason.RMA_CANCELLED),
        (["RMA-1"], (rma("RMA-1", "expired", 3),), Reason.RMA_EXPIRED),
        (["RMA-1"], (rma("RMA-1", "received", 3),), Reason.RMA_ALREADY_RECEIVED),
    ],
)
def test_undecidable_parcels_go_to_quarantine_without_a_gate(codes, rmas, reason) -> None:
    core = SorterCore(CFG, Directory(*rmas), TRUSTING)
    actions = drive(core, 0.0, 250.0, codes)
    [decision] = of(Decision, actions)
    assert decision.lane.name == "quarantine"
    assert decision.reason == reason
    assert of(GateCommand, actions) == []
    [exited] = of(ParcelExited, actions)
    assert exited.exited_at_ms == pytest.approx(4000.0 + 250.0)


def test_same_code_read_twice_is_one_read() -> None:
    core = SorterCore(CFG, Directory(rma("RMA-1", "authorized", 1)), TRUSTING)
    [decision] = of(Decision, drive(core, 0.0, 300.0, ["RMA-1", "RMA-1"]))
    assert decision.reason == Reason.MATCHED
    assert decision.reads == ("RMA-1",)


def test_read_with_no_parcel_in_the_tunnel_is_an_orphan() -> None:
    core = SorterCore(CFG, Directory(), TRUSTING)
    actions = core.on_barcode(100.0, "RMA-1")
    assert actions == [OrphanRead("RMA-1", 100.0)]
    assert core.counters["orphan_reads"] == 1


def test_reads_go_to_the_parcel_over_the_scanner() -> None:
    core = SorterCore(
        CFG, Directory(rma("A", "authorized", 1), rma("B", "authorized", 2)), TRUSTING
    )
    actions: list[object] = []
    # parcel 1: 0..300 ms at the eye; parcel 2: 700..1000 ms.
    actions += core.on_photo_eye(0.0, True) + core.on_photo_eye(300.0, False)
    actions += core.on_barcode(550.0, "A")  # parcel 1 body 250..550 mm covers 400
    actions += core.on_photo_eye(700.0, True) + core.on_photo_eye(1000.0, False)
    actions += core.on_barcode(1250.0, "B")  # parcel 2 body 250..550 mm covers 400
    for t in range(0, 7000, 5):
        actions += core.advance(float(t))
    decisions = {d.parcel_id: d for d in of(Decision, actions)}
    assert decisions[1].rma_number == "A" and decisions[2].rma_number == "B"


def test_decision_too_late_for_the_gate_is_quarantine() -> None:
    core = SorterCore(CFG, Directory(rma("RMA-1", "authorized", 1)), TRUSTING)
    core.on_photo_eye(0.0, True)
    core.on_photo_eye(300.0, False)
    core.on_barcode(550.0, "RMA-1")
    # the reactor stalls until after the latest open time (1500 - 100 ms)
    actions = core.advance(1450.0)
    [decision] = of(Decision, actions)
    assert decision.reason == Reason.LATE_DECISION and decision.lane.name == "quarantine"
    assert of(GateCommand, actions) == []


def test_next_wakeup_is_the_decision_time() -> None:
    core = SorterCore(CFG, Directory(), TRUSTING)
    assert core.next_wakeup_ms() is None
    core.on_photo_eye(0.0, True)
    assert core.next_wakeup_ms() == 5.0  # debounce confirmation
    core.advance(5.0)
    core.on_photo_eye(300.0, False)
    core.advance(305.0)
    # trailing edge leaves the scan tunnel: (400 + 50 + 300) mm at 1 mm/ms
    assert core.next_wakeup_ms() == pytest.approx(750.0)


def test_belt_config_requires_one_end_of_line_quarantine() -> None:
    with pytest.raises(ValueError, match="end-of-line"):
        BeltConfig(speed_mm_s=1000.0, scan_pos_mm=400.0, lanes=LANES[:2])
    with pytest.raises(ValueError, match="downstream of the scan tunnel"):
        BeltConfig(speed_mm_s=1000.0, scan_pos_mm=1600.0, lanes=LANES)


C4_DATA = "0109501101020917" + "17251231" + "10ABC123" + "\x1d" + "21SN0001"


def _c4_directory() -> Directory:
    return Directory(kit_rma("RMA-1", line(gtin="09501101020917", serial="SN0001")))


ITEM = "gs1:09501101020917/SN0001"


@pytest.mark.parametrize(
    ("codes", "reads"),
    [
        (["]C1" + C4_DATA], (ITEM,)),
        ([C4_DATA], (ITEM,)),
        (["]C0" + C4_DATA], (ITEM,)),
        (["RMA-1", "]C1" + C4_DATA], ("RMA-1", ITEM)),
        (["RMA-1", C4_DATA], ("RMA-1", ITEM)),
        (["RMA-1", "]C0" + C4_DATA], ("RMA-1", ITEM)),
        (["]C0RMA-1", C4_DATA], ("RMA-1", ITEM)),
    ],
)
def test_c4_gs1_scan_matches_with_or_without_aim_prefix(
    codes: list[str], reads: tuple[str, ...]
) -> None:
    core = SorterCore(CFG, _c4_directory(), TRUSTING)
    [decision] = of(Decision, drive(core, 0.0, 250.0, codes))
    assert (decision.reason, decision.rma_number) == (Reason.MATCHED, "RMA-1")
    assert decision.reads == reads
    assert [(u.evidence.value, u.verified, u.identifier) for u in decision.units] == [
        ("serial", True, "SN0001")
    ]


def test_c4_gtin_without_the_serial_leaves_a_serialised_unit_unverified() -> None:
    core = SorterCore(CFG, _c4_directory(), TRUSTING)
    codes = ["RMA-1", "0109501101020917" + "17251231" + "10ABC123"]
    [decision] = of(Decision, drive(core, 0.0, 250.0, codes))
    assert (decision.reason, decision.lane.name) == (Reason.UNVERIFIED, "quarantine")
    assert decision.reads == ("RMA-1", "gs1:09501101020917/")
    assert [(u.evidence.value, u.verified, u.identifier) for u in decision.units] == [
        ("gtin", False, "09501101020917")
    ]
    assert "line 1 unverified: only its serial verifies it" in decision.explanation


def test_a_gate_too_late_to_fire_sends_the_parcel_to_quarantine_late_gate() -> None:
    core = SorterCore(CFG, Directory(rma("RMA-1", "authorized", 1)), TRUSTING)
    actions = core.on_photo_eye(1000.0, True) + core.on_photo_eye(1300.0, False)
    actions += core.on_barcode(1550.0, "RMA-1")
    actions += core.advance(2000.0)
    [cmd] = of(GateCommand, actions)
    assert (cmd.gate, cmd.open_at_ms) == ("restock", 2400.0)
    late = core.on_gate_late(2441.0, 1, 41.0)  # the shell did not fire it: 41 ms > 40 margin
    assert [(type(a).__name__, getattr(a, "kind", None)) for a in late] == [
        ("Alarm", "station_overloaded"),
        ("GateCancel", None),
    ]
    [alarm] = of(Alarm, late)
    assert (alarm.active, alarm.t_ms, alarm.lane, alarm.parcel_id) == (True, 2441.0, None, 1)
    actions = [a for t in range(2445, 8000, 5) for a in core.advance(float(t))]
    [exited] = of(ParcelExited, actions)
    assert (exited.decision.lane.name, exited.decision.reason) == ("quarantine", "late_gate")
    assert exited.final_lane.name == "quarantine" and exited.lane is None
    assert exited.decision.explanation.startswith(
        "quarantine: late_gate; gate would have opened 41 ms late (margin 40 ms); was restock"
    )
    assert core.counters["late_gates"] == 1 and core.next_wakeup_ms() == 62_441.0
    assert of(Alarm, core.advance(62_441.0)) == [Alarm("station_overloaded", False, 62_441.0)]
