"""A gate whose link fails (its PLC off the network): parcels to quarantine, alarm, recovery."""

from __future__ import annotations

from edge.sorter import SorterCore
from edge.sorter.model import Alarm, Decision, GateCancel, GateCommand, Mark, ParcelExited, Reason
from simulator.testing import Directory, demo_belt, label_trusting_policy, rma


def of(kind: type, actions: list[object]) -> list:
    return [a for a in actions if isinstance(a, kind)]


def run_to(core: SorterCore, start: int, end: int) -> list[object]:
    actions: list[object] = []
    for t in range(start, end, 5):
        actions += core.advance(float(t))
    return actions


def induct(core: SorterCore, t0: float, rma_number: str) -> None:
    core.on_photo_eye(t0, True)
    core.on_photo_eye(t0 + 300.0, False)
    core.on_barcode(t0 + 550.0, rma_number)


def test_a_fault_withdraws_the_parcel_in_flight_and_quarantines_the_next_until_it_clears() -> None:
    core = SorterCore(
        demo_belt(), Directory(rma("RMA-1"), rma("RMA-2"), rma("RMA-3")), label_trusting_policy()
    )
    induct(core, 0.0, "RMA-1")
    [decision, cmd] = core.advance(750.0)
    assert isinstance(cmd, GateCommand) and (cmd.open_at_ms, cmd.gate) == (1400.0, "restock")
    # the link fails while the gate is open for parcel 1
    actions = run_to(core, 750, 1500) + core.on_gate_fault(1500.0, "restock", True)
    assert actions[-2:] == [
        GateCancel(1, "restock", 1500.0),
        Alarm("gate_fault", True, 1500.0, lane="restock"),
    ]
    assert core.status()["lanes_faulted"] == ["restock"]
    assert core.on_gate_fault(1510.0, "restock", True) == []  # once per fault
    induct(core, 2000.0, "RMA-2")  # decided while the fault lasts
    actions = run_to(core, 2000, 3000)
    [second] = of(Decision, actions)
    assert (second.lane.name, second.reason) == ("quarantine", Reason.GATE_FAULT)
    assert "gate cannot be driven (device fault)" in second.explanation
    assert of(GateCommand, actions) == []
    assert core.on_gate_fault(3000.0, "restock", False)[-1] == Alarm(
        "gate_fault", False, 3000.0, lane="restock"
    )
    induct(core, 3000.0, "RMA-3")  # the link is back: sorted again
    actions = run_to(core, 3000, 12000)
    [third] = of(Decision, actions)
    assert (third.lane.name, third.reason) == ("restock", Reason.MATCHED)
    exits = {e.decision.parcel_id: e for e in of(ParcelExited, actions)}
    assert exits[1].final_lane.name == "quarantine"
    assert exits[1].marks == (Mark.GATE_CANCELLED, Mark.GATE_FAULT)
    assert decision.reason == Reason.MATCHED
    assert exits[2].final_lane.name == "quarantine" and exits[2].marks == ()
    assert core.status()["lanes_faulted"] == []
