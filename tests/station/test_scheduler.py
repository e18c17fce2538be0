"""The gate scheduler: real-time priority line, late limit, lateness observer and status."""

from __future__ import annotations

import gc
import sys
import threading

from edge.scheduler import (
    GC_THRESHOLD,
    MAX_ARM_MS,
    SPIN_MS,
    SWITCH_INTERVAL_S,
    Scheduler,
    set_realtime,
    tune_runtime,
)
from simulator.testing import ManualClock, wait_until


def test_fires_in_deadline_order_and_reports_each_lateness() -> None:
    clock = ManualClock(0.0)
    seen: list[float] = []
    fired: list[str] = []
    scheduler = Scheduler(clock, on_fired=seen.append)
    scheduler.start()
    try:
        scheduler.call_at(20.0, lambda: fired.append("b"))
        scheduler.call_at(10.0, lambda: fired.append("a"))
        clock.set(25.0)
        wait_until(lambda: len(seen) == 2, timeout_s=10.0)
        assert (fired, seen) == (["a", "b"], [15.0, 5.0])
        status = scheduler.status()
        assert (status["fired"], status["late_max_ms"], status["refused_late"]) == (2, 15.0, 0)
    finally:
        scheduler.stop()


def test_a_firing_past_its_limit_runs_on_late_instead() -> None:
    clock = ManualClock(0.0)
    ran: list[str] = []
    late: list[float] = []
    scheduler = Scheduler(clock)
    scheduler.start()
    try:
        scheduler.call_at(10.0, lambda: ran.append("fn"), late_limit_ms=5.0, on_late=late.append)
        scheduler.call_at(30.0, lambda: ran.append("ok"), late_limit_ms=5.0, on_late=late.append)
        clock.set(16.0)
        wait_until(lambda: late != [], timeout_s=10.0)
        clock.set(34.0)
        wait_until(lambda: ran != [], timeout_s=10.0)
        assert (ran, late, scheduler.refused_late) == (["ok"], [6.0], 1)
    finally:
        scheduler.stop()


def test_the_thread_asks_for_sched_fifo_and_says_what_it_got() -> None:
    scheduler = Scheduler(priority=None)
    scheduler.start()
    try:
        wait_until(lambda: scheduler.realtime != "not started", timeout_s=10.0)
        assert scheduler.realtime == "normal priority"
    finally:
        scheduler.stop()
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(set_realtime(100)))  # 1..99 only
    worker.start()
    worker.join()
    assert result[0].startswith("refused: SCHED_FIFO 100: Invalid argument; gates fire at")
    assert "CAP_SYS_NICE" in result[0]


def test_arm_ahead_follows_late_wake_ups_within_bounds() -> None:
    scheduler = Scheduler()
    assert scheduler.arm_ms() == SPIN_MS
    scheduler._overshoot_ms.append(2.5)
    assert scheduler.arm_ms() == SPIN_MS + 2.5
    scheduler._overshoot_ms.append(50.0)
    assert scheduler.arm_ms() == MAX_ARM_MS


def test_tune_runtime_freezes_raises_the_thresholds_and_shortens_the_switch() -> None:
    before, interval = gc.get_threshold(), sys.getswitchinterval()
    try:
        done = tune_runtime()
        assert done["threshold"] == list(GC_THRESHOLD) and int(str(done["frozen"])) > 0
        assert done["switch_interval_s"] == SWITCH_INTERVAL_S == 0.001
        status = Scheduler().status()
        assert (status["gc_threshold"], status["switch_interval_s"]) == (list(GC_THRESHOLD), 0.001)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
        sys.setswitchinterval(interval)
