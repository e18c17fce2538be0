"""Inputs carry the edge's own time and level from the pin factory, not the callback's.

The pin factory is gpiozero's own ``MockFactory`` with the simulator's
:class:`~simulator.hw.pins.TimedMockPin`; only its tick source is pinned (the lowest layer:
what a factory's ``ticks()`` reads), so edge times come out exact.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from edge.clock import ScaledClock
from edge.drivers.gpiozero_io import (
    MAX_EDGE_AGE_MS,
    EdgeClock,
    GpiozeroEncoder,
    GpiozeroInput,
    GpiozeroPhotoEye,
    timestamp_source,
)
from simulator.hw.pins import TimedMockPin, ticks_of

NOW_TICKS = 100.0  # the factory's ticks() (s) while the callbacks run
NOW_MS = 5000.0  # the station clock meanwhile


class _PinnedClock:
    """The station clock, on CLOCK_MONOTONIC but stopped at ``t_ms`` (like the ticks)."""

    on_monotonic = True

    def __init__(self, t_ms: float = NOW_MS) -> None:
        self.t_ms = t_ms

    def __call__(self) -> float:
        return self.t_ms


CLOCK = _PinnedClock()


class _PinnedTicksFactory(MockFactory):  # type: ignore[misc]
    """``MockFactory`` whose ``ticks()`` reads :data:`NOW_TICKS` (its clock, pinned)."""

    @staticmethod
    def ticks() -> float:
        return NOW_TICKS


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = _PinnedTicksFactory(pin_class=TimedMockPin)
    try:
        yield f
    finally:
        f.close()


def test_photo_eye_edges_are_stamped_with_the_pin_factorys_ticks(factory: MockFactory) -> None:
    eye = GpiozeroPhotoEye(17, "high", factory, clock=CLOCK)
    edges: list[tuple[float, bool]] = []
    eye.start(lambda t_ms, blocked: edges.append((t_ms, blocked)))
    pin = factory.pin(17)
    pin.drive_at(True, NOW_TICKS - 0.25)  # the beam was broken 250 ms before the callback
    pin.drive_at(False, NOW_TICKS - 0.125)
    assert edges == [(4750.0, True), (4875.0, False)]
    assert eye.status() == {"state": "ok", "blocked": False, "edges": 2, "timestamps": "mock"}
    eye.close()


def test_the_level_is_the_edges_own_with_polarity(factory: MockFactory) -> None:
    full = GpiozeroInput("restock.full", 22, False, factory, clock=CLOCK)
    seen: list[tuple[float, bool]] = []
    full.start(lambda t_ms, active: seen.append((t_ms, active)))
    factory.pin(22).drive_at(True, NOW_TICKS - 0.5)  # active low: high is inactive
    factory.pin(22).drive_at(False, NOW_TICKS)
    assert seen == [(4500.0, False), (5000.0, True)]
    full.close()


def test_a_scaled_clock_maps_real_ticks_to_virtual_ms(factory: MockFactory) -> None:
    clock = ScaledClock(rate=4.0)
    edge_clock = EdgeClock(factory, clock)
    before = clock()
    t_ms = edge_clock.to_ms(NOW_TICKS - 0.25)  # 250 real ms ago = 1000 virtual ms
    assert before - 1000.0 <= t_ms <= clock() - 1000.0


def test_ages_outside_the_bounds_are_clamped_and_counted(factory: MockFactory) -> None:
    edge_clock = EdgeClock(factory, CLOCK)
    assert edge_clock.to_ms(NOW_TICKS + 1.0) == NOW_MS  # from the future: now
    assert edge_clock.to_ms(NOW_TICKS - 3600.0) == NOW_MS - MAX_EDGE_AGE_MS
    assert edge_clock.clamped == 2


def test_ticks_of_inverts_the_mapping(factory: MockFactory) -> None:
    assert ticks_of(4750.0, CLOCK, NOW_TICKS) == NOW_TICKS - 0.25
    assert EdgeClock(factory, CLOCK).to_ms(ticks_of(4750.0, CLOCK, 100.0)) == (4750.0)


def test_encoder_sample_is_as_of_the_last_counted_edge(factory: MockFactory) -> None:
    enc = GpiozeroEncoder(5, None, 2.0, factory, clock=CLOCK)
    assert enc.sample() == (None, 0)
    pin = factory.pin(5)
    for t in (0.5, 0.375, 0.25):
        pin.drive_at(True, NOW_TICKS - t)
        pin.drive_at(False, NOW_TICKS - t + 0.0625)
    assert enc.sample() == (4750.0, 3)
    assert enc.status()["timestamps"] == "mock"
    enc.close()


def test_timed_pin_remembers_its_past_levels(factory: MockFactory) -> None:
    pin = factory.pin(9)
    pin.drive_at(True, 10.0)
    pin.drive_at(False, 10.5)
    assert [pin.level_at(t) for t in (9.0, 10.0, 10.25, 10.5, 11.0)] == [
        False,
        True,
        True,
        False,
        False,
    ]


def test_a_manual_clock_stamps_edges_as_the_callback_runs(factory: MockFactory) -> None:
    edge_clock = EdgeClock(factory, lambda: 42.0)  # not on CLOCK_MONOTONIC
    assert (edge_clock.to_ms(NOW_TICKS - 0.25), edge_clock.source) == (42.0, "clock")


def test_timestamp_source_by_factory() -> None:
    class LGPIOFactory:  # the class names gpiozero's factories carry
        pass

    class RPiGPIOFactory:
        pass

    assert timestamp_source(LGPIOFactory()) == "kernel"  # type: ignore[arg-type]
    assert timestamp_source(RPiGPIOFactory()) == "callback"  # type: ignore[arg-type]
    assert timestamp_source(MockFactory()) == "mock"
