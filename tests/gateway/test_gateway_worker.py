"""The periodic worker's bursts: rounds back to back while each is full (a backlog)."""

from __future__ import annotations

from gateway.services.outbox import DeliveryRound
from gateway.services.worker import PeriodicWorker


def test_rounds_run_back_to_back_while_full_then_wait() -> None:
    answers = iter([True, True, False, None])
    calls: list[int] = []

    def job() -> object:
        calls.append(1)
        return next(answers)

    worker = PeriodicWorker("w", 60.0, job)
    assert worker.run_rounds() == 3  # full, full, then not full: the burst ends
    assert worker.run_rounds() == 1  # a job that answers nothing: one round
    assert len(calls) == 4


def test_a_follower_replica_runs_no_round_and_a_stop_ends_the_burst() -> None:
    calls: list[int] = []

    def job() -> bool:
        calls.append(1)
        if len(calls) == 2:
            worker.stop()  # (from inside a round; never started, so nothing to join)
        return True

    assert PeriodicWorker("w", 60.0, job, leader=lambda: False).run_rounds() == 0
    worker = PeriodicWorker("w", 60.0, job)
    assert worker.run_rounds() == 2  # always full, but stopped after the second
    assert len(calls) == 2


def test_a_delivery_round_is_full_when_it_claimed_its_limit() -> None:
    assert DeliveryRound(claimed=50, delivered=0, limit=50).full  # all failed: still full
    assert not DeliveryRound(claimed=49, delivered=49, limit=50).full


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rounds_give_way_while_the_ingest_is_behind_for_at_most_the_longest_wait() -> None:
    clock, behind, calls = _Clock(), [True], []
    answers = iter([True] * 2 + [True, False])  # full rounds; the last burst ends by itself

    def job() -> bool:
        calls.append(clock.now)
        return next(answers)

    worker = PeriodicWorker("w", 1.0, job, yield_to=lambda: behind[0], max_defer_s=5.0, clock=clock)
    assert worker.run_rounds() == 1  # no round ran yet: the first one runs
    assert (calls, worker.deferred) == ([100.0], 1)  # ...and the burst gives way after it
    for now in (101.0, 102.0, 104.999):
        clock.now = now
        assert worker.run_rounds() == 0
    assert worker.deferred == 4
    clock.now = 105.0  # 5 s since the last round: one runs, whatever the ingest does
    assert worker.run_rounds() == 1
    assert (calls, worker.deferred) == ([100.0, 105.0], 5)
    behind[0] = False  # caught up: back to back again while full
    clock.now = 106.0
    assert worker.run_rounds() == 2
    assert (calls, worker.deferred) == ([100.0, 105.0, 106.0, 106.0], 5)


def test_rounds_never_wait_without_a_longest_wait_or_a_signal() -> None:
    calls: list[int] = []

    def job() -> bool:
        calls.append(1)
        return len(calls) % 3 != 0  # full, full, then not full

    never = PeriodicWorker("w", 1.0, job, yield_to=lambda: True, max_defer_s=0.0)
    assert never.run_rounds() == 3
    unsignalled = PeriodicWorker("w", 1.0, job, max_defer_s=5.0)
    assert unsignalled.run_rounds() == 3
    assert (never.deferred, unsignalled.deferred, len(calls)) == (0, 0, 6)


def test_a_round_slower_than_the_longest_wait_still_gives_way_after_it() -> None:
    clock = _Clock()

    def job() -> bool:
        clock.now += 6.0  # a round to slow endpoints (10 s timeouts) outlasts max_defer_s
        return False

    worker = PeriodicWorker("w", 1.0, job, yield_to=lambda: True, max_defer_s=5.0, clock=clock)
    assert worker.run_rounds() == 1  # 100 .. 106
    clock.now += 1.0  # measured from the round's end: 1 s, the ingest still behind
    assert (worker.run_rounds(), worker.deferred) == (0, 1)
    clock.now = 111.0
    assert (worker.run_rounds(), worker.deferred) == (1, 1)


def test_the_thread_looks_again_when_the_longest_wait_is_up_not_a_poll_later() -> None:
    clock, calls = _Clock(), []

    def job() -> bool:
        calls.append(clock.now)
        return False

    worker = PeriodicWorker("w", 2.0, job, yield_to=lambda: True, max_defer_s=5.0, clock=clock)
    assert worker.next_wait_s() == 2.0  # nothing ran, nothing put off: the interval
    assert worker.run_rounds() == 1
    assert worker.next_wait_s() == 2.0  # the round was not put off
    waits = []
    while len(calls) < 2:  # the thread's loop: wait, then a burst
        waits.append(worker.next_wait_s())
        clock.now += waits[-1]
        worker.run_rounds()
    assert waits == [2.0, 2.0, 1.0]  # at 102 and 104 put off, the round at 105
    assert calls == [100.0, 105.0]
    assert worker.deferred == 2
