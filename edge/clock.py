"""Clocks of the shell: monotonic milliseconds for timing, UTC for records."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)


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


STEP_THRESHOLD_MS = 1000.0
"""A wall-clock jump against monotonic time larger than this (ms) is a clock step."""


class UtcClock:
    """UTC times of monotonic times, following the system clock (records only).

    ``to_utc(t_ms)`` is the UTC read at start plus the monotonic time since, plus every
    wall-clock change seen since. Every :meth:`check` (each conversion and each status)
    compares the wall time elapsed since the last check with the monotonic time elapsed: a
    drift (NTP slewing, ppm) is absorbed silently, so records follow the system clock; a
    jump above ``threshold_ms`` (NTP stepping a Pi that booted without a battery clock, an
    operator setting the date) is also absorbed, logged and counted in :meth:`status`.
    Records made after a step carry the corrected UTC, including parcels inducted before
    it; intervals and gate times never use it (monotonic only). Under a
    :class:`ScaledClock` records advance in virtual time, as the belt does.

    Args:
        clock: the station's monotonic ms clock (a :class:`ScaledClock` runs faster: the
            wall clock is compared with the monotonic time in real ms).
        utc: reads the UTC wall clock (the system clock; the simulator steps a fake one).
        threshold_ms: smallest jump (ms of wall time) reported as a step.
    """

    def __init__(
        self,
        clock: Callable[[], float] = monotonic_ms,
        utc: Callable[[], datetime] = utc_now,
        *,
        threshold_ms: float = STEP_THRESHOLD_MS,
    ) -> None:
        self.clock = clock
        self.wall = utc
        self.threshold_ms = threshold_ms
        self._rate = clock_rate(clock)
        self._lock = threading.Lock()
        self._mono0 = self._last_mono = clock()
        self._utc0 = self._last_wall = utc()
        self.steps = 0
        self.last_step_s: float | None = None
        self.last_step_at: datetime | None = None

    def set_wall(self, utc: Callable[[], datetime]) -> None:
        """Read UTC from ``utc`` from now on, anchored afresh (no step counted)."""
        with self._lock:
            self.wall = utc
            self._mono0 = self._last_mono = self.clock()
            self._utc0 = self._last_wall = utc()

    def check(self) -> float:
        """Compare the wall clock with monotonic time now; returns the jump found, ms.

        A jump above ``threshold_ms`` is logged (warning) and counted as a step; a smaller
        one (slewing) only absorbed. Either way records follow the wall clock from now on.
        """
        with self._lock:
            mono, wall = self.clock(), self.wall()
            wall_elapsed_ms = (wall - self._last_wall) / timedelta(milliseconds=1)
            drift_ms = wall_elapsed_ms - (mono - self._last_mono) / self._rate
            self._last_mono, self._last_wall = mono, wall
            self._utc0 += timedelta(milliseconds=drift_ms)
            if abs(drift_ms) > self.threshold_ms:
                self.steps += 1
                self.last_step_s = round(drift_ms / 1000.0, 3)
                self.last_step_at = wall
                log.warning(
                    "system clock stepped %+.3f s against monotonic time (records follow it)",
                    drift_ms / 1000.0,
                    extra={"clock_step_s": self.last_step_s},
                )
            return drift_ms

    def to_utc(self, t_ms: float) -> datetime:
        """UTC time of monotonic ``t_ms`` (the wall clock checked first, see :meth:`check`)."""
        self.check()
        with self._lock:
            return self._utc0 + timedelta(milliseconds=t_ms - self._mono0)

    def status(self) -> dict[str, object]:
        """JSON-able clock health, after a :meth:`check`.

        ``{"steps": int, "last_step_s": float | None, "last_step_at": str | None}`` (the
        last step's size in s, and when, ISO 8601 UTC).
        """
        self.check()
        at = self.last_step_at
        return {
            "steps": self.steps,
            "last_step_s": self.last_step_s,
            "last_step_at": at.isoformat() if at is not None else None,
        }


def clock_rate(clock: object) -> float:
    """Virtual ms per real ms of a clock (1.0 unless it is a :class:`ScaledClock`)."""
    return float(getattr(clock, "rate", 1.0))
