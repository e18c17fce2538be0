"""Gate-fire jitter of the shell's scheduler in real time, against a plain sleep()."""

from __future__ import annotations

import threading
import time

from benchmarks import Figure
from edge.clock import monotonic_ms
from edge.scheduler import Scheduler

N = 300
PERIOD_MS = 7.0


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def _sleep_lateness() -> list[float]:
    late = []
    for _ in range(N):
        target = monotonic_ms() + PERIOD_MS
        time.sleep(PERIOD_MS / 1000)
        late.append(monotonic_ms() - target)
    return late


def _scheduler_lateness() -> list[float]:
    sched = Scheduler()
    sched.start()
    done = threading.Event()
    t0 = monotonic_ms() + 20
    for i in range(N):
        sched.call_at(t0 + i * PERIOD_MS, lambda: None)
    sched.call_at(t0 + N * PERIOD_MS + 1, done.set)
    done.wait(10)
    sched.stop()
    return list(sched.lateness_ms)[:N]


def run() -> list[Figure]:
    """Lateness p50 / p99 (ms) of N timed firings: scheduler vs time.sleep."""
    base = _sleep_lateness()
    ours = _scheduler_lateness()
    return [
        Figure(
            "scheduler gate-fire lateness p50",
            _pct(ours, 0.5),
            "ms",
            "time.sleep lateness p50",
            _pct(base, 0.5),
            higher_is_better=False,
        ),
        Figure(
            "scheduler gate-fire lateness p99",
            _pct(ours, 0.99),
            "ms",
            "time.sleep lateness p99",
            _pct(base, 0.99),
            higher_is_better=False,
        ),
    ]
