"""GateBank: per-parcel holds, withdrawn parcels, release all, the gate-test pulse.

Real gpiozero gates on MockFactory pins; a scheduler on a manual clock (so firings happen
when the test moves time, never by wall-clock luck).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from edge.drivers.gpiozero_io import GpiozeroDiverterGate
from edge.scheduler import Scheduler
from edge.sorter.model import GateCommand
from edge.station.gates import GATE_TEST_HOLD, MAX_CANCELLED, GateBank, GateHeld
from simulator.testing import ManualClock, wait_until


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(0.0)


@pytest.fixture
def bank(factory: MockFactory, clock: ManualClock) -> Iterator[GateBank]:
    gates = {
        "restock": GpiozeroDiverterGate("restock", 17, True, factory),
        "recycle": GpiozeroDiverterGate("recycle", 22, False, factory),
    }
    scheduler = Scheduler(clock)
    scheduler.start()
    try:
        yield GateBank(gates, scheduler, clock)
    finally:
        scheduler.stop()
        for gate in gates.values():
            gate.close()


def test_overlapping_commands_hold_the_gate_until_the_last_parcel(
    bank: GateBank, factory: MockFactory
) -> None:
    pin = factory.pin(17)
    bank.open(1, "restock")
    bank.open(2, "restock")
    bank.close(1, "restock")
    assert pin.state == 1  # the second parcel still needs the diverter
    assert bank.holds("restock") == frozenset({2})
    bank.close(2, "restock")
    assert pin.state == 0


def test_withdrawn_parcel_is_released_and_never_energises(
    bank: GateBank, factory: MockFactory
) -> None:
    pin = factory.pin(17)
    bank.open(3, "restock")
    bank.cancel(3, "restock")
    assert pin.state == 0
    bank.open(3, "restock")  # its scheduled open fires late: nothing moves
    assert (pin.state, bank.holds("restock")) == (0, frozenset())
    bank.close(3, "restock")  # its last firing: the withdrawal is forgotten
    bank.open(3, "restock")
    assert pin.state == 1


def test_withdrawal_of_one_parcel_keeps_the_other_parcels_hold(
    bank: GateBank, factory: MockFactory
) -> None:
    bank.open(4, "restock")
    bank.open(5, "restock")
    bank.cancel(4, "restock")
    assert (factory.pin(17).state, bank.holds("restock")) == (1, frozenset({5}))


def test_withdrawn_parcels_are_remembered_boundedly(bank: GateBank, factory: MockFactory) -> None:
    for pid in range(1, MAX_CANCELLED + 2):  # withdrawals whose close never came
        bank.cancel(pid, "restock")
    bank.open(MAX_CANCELLED + 1, "restock")  # the newest is still withdrawn
    assert factory.pin(17).state == 0
    bank.open(1, "restock")  # the oldest was forgotten: a station runs for months
    assert factory.pin(17).state == 1


def test_scheduled_command_fires_at_its_times_and_a_broken_gate_never(
    bank: GateBank, factory: MockFactory, clock: ManualClock
) -> None:
    pin = factory.pin(17)
    assert bank.schedule(GateCommand(6, "restock", 100.0, 300.0)) is True
    assert bank.schedule(GateCommand(7, "refurbish", 100.0, 300.0)) is False
    assert bank.scheduler.pending() == 2
    clock.set(150.0)
    wait_until(lambda: pin.state == 1, timeout_s=5, what="gate energised at 100 ms")
    clock.set(300.0)
    wait_until(lambda: pin.state == 0, timeout_s=5, what="gate released at 300 ms")
    assert bank.holds("restock") == frozenset()


def test_release_all_drops_every_gate_of_either_polarity(
    bank: GateBank, factory: MockFactory
) -> None:
    bank.open(8, "restock")
    bank.open(9, "recycle")
    assert (factory.pin(17).state, factory.pin(22).state) == (1, 0)
    bank.release_all()
    assert (factory.pin(17).state, factory.pin(22).state) == (0, 1)
    assert bank.status() == {
        "restock": {"state": "ok", "energised": False, "fired": 1},
        "recycle": {"state": "ok", "energised": False, "fired": 1},
    }


def test_gate_test_pulses_ends_at_the_confirm_and_releases(
    bank: GateBank, factory: MockFactory, clock: ManualClock
) -> None:
    pin = factory.pin(17)
    result: list[float | None] = []
    tester = threading.Thread(
        target=lambda: result.append(bank.test("restock", 2000.0, 2500.0, lambda: None))
    )
    tester.start()
    wait_until(lambda: pin.state == 1, timeout_s=5, what="gate energised")
    assert bank.holds("restock") == frozenset({GATE_TEST_HOLD})
    bank.confirmed("recycle", 10.0)  # another lane's confirm: not this test's
    bank.confirmed("restock", 42.0)
    tester.join(5)
    assert result == [42.0]  # from energising at 0 ms to the confirm edge
    assert (pin.state, bank.holds("restock")) == (0, frozenset())


def test_gate_test_refused_while_held_or_by_the_callers_reason(
    bank: GateBank, factory: MockFactory
) -> None:
    bank.open(10, "restock")
    with pytest.raises(GateHeld, match=r"^gate restock is held"):
        bank.test("restock", 100.0, 200.0, lambda: None)
    assert bank.holds("restock") == frozenset({10})
    with pytest.raises(ValueError, match=r"^2 parcels on the belt$"):
        bank.test("recycle", 100.0, 200.0, lambda: "2 parcels on the belt")
    assert (factory.pin(22).state, bank.holds("recycle")) == (1, frozenset())  # never energised


# -- an open too late to fire ---------------------------------------------------------------
Late = list[tuple[int, str, float, float]]


@pytest.fixture
def late_bank(
    factory: MockFactory, clock: ManualClock
) -> Iterator[tuple[GateBank, Scheduler, Late]]:
    """A bank refusing opens more than 40 ms late; the refusals in the list."""
    late: Late = []
    gates = {"restock": GpiozeroDiverterGate("restock", 17, True, factory)}
    scheduler = Scheduler(clock)
    scheduler.start()
    try:
        yield (
            GateBank(
                gates,
                scheduler,
                clock,
                late_limit_ms=40.0,
                on_late=lambda pid, lane, t_ms, late_ms: late.append((pid, lane, t_ms, late_ms)),
            ),
            scheduler,
            late,
        )
    finally:
        scheduler.stop()
        gates["restock"].close()


def test_an_open_later_than_the_margin_is_not_fired(
    late_bank: tuple[GateBank, Scheduler, Late], factory: MockFactory, clock: ManualClock
) -> None:
    bank, scheduler, late = late_bank
    bank.schedule(GateCommand(7, "restock", 100.0, 400.0))
    clock.set(141.0)  # the scheduler gets to it 41 ms late: the gate would hit the parcel
    wait_until(lambda: late != [], timeout_s=10.0)
    assert late == [(7, "restock", 141.0, 41.0)]
    assert factory.pin(17).states[-1].state is False and bank.holds("restock") == set()
    clock.set(400.0)
    wait_until(lambda: scheduler.pending() == 0, timeout_s=10.0)
    assert factory.pin(17).state == 0 and bank.holds("restock") == set()
    status = scheduler.status()
    assert (status["fired"], status["refused_late"], status["late_max_ms"]) == (2, 1, 41.0)


def test_a_late_open_on_a_gate_already_open_for_the_lane_diverts_as_planned(
    late_bank: tuple[GateBank, Scheduler, Late], factory: MockFactory, clock: ManualClock
) -> None:
    bank, scheduler, late = late_bank
    bank.open(6, "restock")  # the parcel just ahead holds the gate open
    bank.schedule(GateCommand(7, "restock", 100.0, 400.0))
    clock.set(200.0)
    wait_until(lambda: scheduler.pending() == 1, timeout_s=10.0)
    assert late == [] and bank.holds("restock") == {6, 7}
    bank.close(6, "restock")
    assert factory.pin(17).state == 1  # parcel 7 still held


def test_a_late_open_of_a_schedule_re_timed_since_is_neither_fired_nor_reported(
    late_bank: tuple[GateBank, Scheduler, Late], factory: MockFactory, clock: ManualClock
) -> None:
    bank, scheduler, late = late_bank
    bank.schedule(GateCommand(7, "restock", 100.0, 400.0))
    bank.schedule(GateCommand(7, "restock", 300.0, 600.0))  # the belt slowed: re-timed
    clock.set(141.0)  # the first open comes 41 ms late: it is not the parcel's schedule now
    wait_until(lambda: scheduler.pending() == 3, timeout_s=10.0)
    assert late == [] and bank.holds("restock") == set()
    clock.set(300.0)  # the re-timed open, on time
    wait_until(lambda: scheduler.pending() == 2, timeout_s=10.0)
    assert factory.pin(17).state == 1 and bank.holds("restock") == {7}
    clock.set(600.0)  # the first close is outdated too; the re-timed one releases
    wait_until(lambda: scheduler.pending() == 0, timeout_s=10.0)
    assert late == [] and factory.pin(17).state == 0 and bank.holds("restock") == set()
    assert [s.state for s in factory.pin(17).states] == [False, True, False]


def test_a_late_open_while_the_estop_locks_the_gates_out_is_not_reported(
    late_bank: tuple[GateBank, Scheduler, Late], factory: MockFactory, clock: ManualClock
) -> None:
    bank, scheduler, late = late_bank
    bank.lock_out(True)  # the core withdraws the parcel as the E-stop reaches it
    bank.schedule(GateCommand(7, "restock", 100.0, 400.0))
    clock.set(141.0)
    wait_until(lambda: scheduler.pending() == 1, timeout_s=10.0)
    assert late == [] and factory.pin(17).state == 0 and bank.holds("restock") == set()
