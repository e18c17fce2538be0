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
