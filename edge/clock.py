"""Clocks of the shell: monotonic milliseconds for timing, UTC for records."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def monotonic_ms() -> float:
    """Monotonic time in milliseconds (float); only differences are meaningful."""
    return time.monotonic_ns() / 1e6


def utc_now() -> datetime:
    """Timezone-aware current UTC time, for records."""
    return datetime.now(UTC)


class ScaledClock:
    """Accelerated monotonic time for simulation: ``rate`` virtual ms per real ms.

    Callable like :func:`monotonic_ms`. ``origin_ns`` (a ``time.monotonic_ns()`` value) is
    where virtual and real time coincide; processes given the same origin and rate share
    one virtual clock (CLOCK_MONOTONIC is system-wide). Components that wait in real time
    divide virtual durations by ``rate`` (see :class:`edge.scheduler.Scheduler`).
    """

    def __init__(self, rate: float = 1.0, origin_ns: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.origin_ns = time.monotonic_ns() if origin_ns is None else origin_ns

    def __call__(self) -> float:
        """Virtual monotonic time, ms."""
        return self.origin_ns / 1e6 + (time.monotonic_ns() - self.origin_ns) / 1e6 * self.rate

    def real_s(self, virtual_ms: float) -> float:
        """Real seconds a virtual duration of ``virtual_ms`` takes."""
        return virtual_ms / 1000.0 / self.rate


def clock_rate(clock: object) -> float:
    """Virtual ms per real ms of a clock (1.0 unless it is a :class:`ScaledClock`)."""
    return float(getattr(clock, "rate", 1.0))
