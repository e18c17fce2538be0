"""UtcClock: records follow the system clock; a step is detected, logged and counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge.clock import UtcClock
from simulator.testing import ManualClock

T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


class Wall:
    """A manual wall clock."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_slewing_is_absorbed_and_a_step_is_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mono, wall = ManualClock(10_000.0), Wall()
    utc = UtcClock(mono, wall)
    assert utc.to_utc(10_000.0) == T0
    mono.advance(1000.0)
    wall.now += timedelta(milliseconds=1000.5)  # NTP slews half a millisecond
    assert utc.check() == pytest.approx(0.5)
    assert utc.to_utc(11_000.0) == T0 + timedelta(milliseconds=1000.5)
    assert utc.status()["steps"] == 0
    mono.advance(10.0)
    wall.now += timedelta(seconds=3600, milliseconds=10)  # NTP steps an hour forward
    # a parcel inducted before the step gets the corrected UTC when reported after it
    assert utc.to_utc(10_500.0) == T0 + timedelta(seconds=3600, milliseconds=500.5)
    assert utc.status() == {
        "steps": 1,
        "last_step_s": 3600.0,
        "last_step_at": (T0 + timedelta(seconds=3601, milliseconds=10.5)).isoformat(),
    }
    assert "system clock stepped +3600.000 s" in caplog.text


def test_a_scaled_clock_is_no_step() -> None:
    class Fast(ManualClock):
        rate = 4.0  # 4 virtual ms per real ms, as ScaledClock

    mono, wall = Fast(0.0), Wall()
    utc = UtcClock(mono, wall)
    mono.advance(4000.0)
    wall.now += timedelta(seconds=1)
    assert utc.check() == pytest.approx(0.0)
    assert utc.status()["steps"] == 0
    assert utc.to_utc(4000.0) == T0 + timedelta(seconds=4)  # records in virtual time
