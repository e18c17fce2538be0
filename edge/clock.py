"""Clocks of the shell: monotonic milliseconds for timing, UTC for records."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def monotonic_ms() -> float:
    """Monotonic time in milliseconds (float); only differences are meaningful."""
    return time.monotonic_ns() / 1e6


def utc_now() -> datetime:
    """Timezone-aware current UTC time, for records."""
    return datetime.now(UTC)


def on_monotonic(clock: object) -> bool:
    """True when ``clock`` runs on CLOCK_MONOTONIC (its ms differences are real or scaled).

    :func:`monotonic_ms`, a :class:`ScaledClock`, or any clock with a true
    ``on_monotonic`` attribute; a test's manual clock is not (pin factories' edge ticks
    cannot be placed on it).
    """
    return (
        clock is monotonic_ms
        or isinstance(clock, ScaledClock)
        or bool(getattr(clock, "on_monotonic", False))
    )


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


class UtcClock:
    """UTC times of monotonic times: the UTC reading at start plus the monotonic time since.

    Args:
        clock: the station's monotonic ms clock.
        utc: reads the UTC wall clock (once, at construction).
    """

    def __init__(
        self, clock: Callable[[], float] = monotonic_ms, utc: Callable[[], datetime] = utc_now
    ) -> None:
        self._mono0 = clock()
        self._utc0 = utc()

    def to_utc(self, t_ms: float) -> datetime:
        """UTC time of monotonic ``t_ms``."""
        return self._utc0 + timedelta(milliseconds=t_ms - self._mono0)

    def step(self, seconds: float) -> None:
        """The UTC clock stepped by ``seconds`` (records only; timing is monotonic)."""
        self._utc0 += timedelta(seconds=seconds)


def clock_rate(clock: object) -> float:
    """Virtual ms per real ms of a clock (1.0 unless it is a :class:`ScaledClock`)."""
    return float(getattr(clock, "rate", 1.0))
