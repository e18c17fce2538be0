"""Photo-eyes, gates, lane inputs, belt encoder and outputs on gpiozero devices.

The pin factory is chosen by name in the station config (``rpigpio`` on Pi 4 and earlier,
``lgpio`` on Pi 5, ``mock`` in simulation); never by silent fallback.

Edge times: every input (photo-eye, divert-confirm, lane-full, encoder) reports the time
and level its pin factory gives the edge (gpiozero's ``Pin.when_changed(ticks, state)``),
not the time the Python callback happens to run, mapped onto the station's monotonic ms
clock by :class:`EdgeClock`. What the ticks are, per factory (``EdgeClock.source``):

* ``lgpio`` -> ``kernel``: the GPIO character device's line event timestamp
  (``gpio_v2_line_event.timestamp_ns``, CLOCK_MONOTONIC; lgpio alerts carry it, gpiozero's
  ``LGPIOPin`` passes it in seconds) and the level the kernel saw. Works on Pi 4 and Pi 5.
* ``rpigpio`` -> ``callback``: RPi.GPIO gives no timestamp; gpiozero stamps the edge with
  ``time.monotonic()`` in RPi.GPIO's event thread and re-reads the level (the best
  available: earlier than the reactor, later than the edge by that thread's latency).
* ``mock`` -> ``mock``: ``MockPin``'s time of the change; the simulator's pins
  (:class:`simulator.hw.pins.RecordingMockPin`) set it to the belt's physical edge time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice, RotaryEncoder
from gpiozero.pins import Factory

from edge.clock import clock_rate, monotonic_ms, on_monotonic
from edge.drivers.gpio import LevelCallback

log = logging.getLogger(__name__)


def make_pin_factory(name: str) -> Factory:
    """Build the gpiozero pin factory called ``name`` (mock, rpigpio, lgpio).

    Raises:
        ValueError: on an unknown name.
        ImportError: when the backend library is not installed (e.g. RPi.GPIO off a Pi).
    """
    if name == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if name == "rpigpio":
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory()
    if name == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    raise ValueError(f"unknown pin factory {name!r} (mock, rpigpio, lgpio)")


TIMESTAMP_SOURCES = {"LGPIOFactory": "kernel", "RPiGPIOFactory": "callback", "MockFactory": "mock"}
"""What a factory's edge ticks are, by factory class name (or a base class's)."""

MAX_EDGE_AGE_MS = 10_000.0
"""An edge reported older than this (ms, station clock) is stamped ``now - MAX_EDGE_AGE_MS``
and counted in ``EdgeClock.clamped`` (ticks on another clock than the factory says)."""


def timestamp_source(factory: Factory) -> str:
    """``kernel``, ``callback`` or ``mock``: what ``factory``'s edge ticks are (see module)."""
    for cls in type(factory).__mro__:
        if cls.__name__ in TIMESTAMP_SOURCES:
            return TIMESTAMP_SOURCES[cls.__name__]
    return "callback"  # any other factory: gpiozero's default ticks at the callback


class EdgeClock:
    """Maps a pin factory's edge ``ticks`` onto the station's monotonic ms clock.

    An edge's time is ``clock() - age``, where ``age`` is
    ``factory.ticks_diff(factory.ticks(), ticks)`` (seconds; gpiozero's own way of
    comparing ticks, so wrap-around and the factory's time base are its business), scaled
    by the clock's rate (a :class:`edge.clock.ScaledClock` runs ``rate`` virtual ms per real
    ms). Negative ages (0) and ages over :data:`MAX_EDGE_AGE_MS` are clamped and counted.
    A clock not on CLOCK_MONOTONIC (:func:`edge.clock.on_monotonic`: a test's manual clock)
    cannot place ticks: edges are stamped with it as the callback runs (``source``
    ``clock``).

    Args:
        factory: the gpiozero pin factory whose pins report the edges.
        clock: the station's monotonic ms clock.
    """

    def __init__(self, factory: Factory, clock: Callable[[], float] = monotonic_ms) -> None:
        self.factory = factory
        self.clock = clock
        self.rate = clock_rate(clock)
        self.mapped = on_monotonic(clock)
        self.source = timestamp_source(factory) if self.mapped else "clock"
        self.clamped = 0

    def to_ms(self, ticks: Any) -> float:
        """Station monotonic ms of an edge the factory stamped ``ticks``."""
        now_ms = self.clock()
        if not self.mapped:
            return now_ms
        age_ms = float(self.factory.ticks_diff(self.factory.ticks(), ticks)) * 1000.0 * self.rate
        if not 0.0 <= age_ms <= MAX_EDGE_AGE_MS:
            self.clamped += 1
            age_ms = min(max(age_ms, 0.0), MAX_EDGE_AGE_MS)
        return now_ms - age_ms


class _EdgeInput(DigitalInputDevice):  # type: ignore[misc]
    """``DigitalInputDevice`` that hands each pin change's (ticks, state) to ``on_edge``."""

    on_edge: Callable[[Any, Any], None] | None = None

    def _pin_changed(self, ticks: Any, state: Any) -> None:
        if self.on_edge is not None:
            self.on_edge(ticks, state)
        super()._pin_changed(ticks, state)

    def active_of(self, state: Any) -> bool:
        """True when pin level ``state`` means active (polarity applied)."""
        return bool(self._state_to_value(state))


class GpiozeroInput:
    """A binary input (divert-confirm, lane-full) on a GPIO pin, raw edges timestamped.

    Args:
        name: what it is, e.g. ``"restock.confirm"``.
        pin: BCM pin number.
        active_high: True when the input reads high while active.
        pin_factory: the gpiozero pin factory.
        clock: monotonic ms time source.
    """

    def __init__(
        self,
        name: str,
        pin: int,
        active_high: bool,
        pin_factory: Factory,
        clock: Callable[[], float] = monotonic_ms,
    ) -> None:
        self.name = name
        self.pin = pin
        self.clock = clock
        self.edge_clock = EdgeClock(pin_factory, clock)
        self._device = _EdgeInput(
            pin, pull_up=None, active_state=active_high, pin_factory=pin_factory
        )
        self._on_change: LevelCallback | None = None
        self.edges = 0

    def start(self, on_change: LevelCallback) -> None:
        """Report every raw change as (t_ms, active) to ``on_change``.

        ``t_ms`` is the edge's own time and ``active`` its own level, from the pin
        factory (see the module's *Edge times*), not the callback's time and a re-read.
        """
        self._on_change = on_change
        self._device.on_edge = self._changed

    def _changed(self, ticks: Any, state: Any) -> None:
        t_ms = self.edge_clock.to_ms(ticks)
        self.edges += 1
        if self._on_change is not None:
            self._on_change(t_ms, self._device.active_of(state))

    @property
    def active(self) -> bool:
        """Current raw level: True when active."""
        return bool(self._device.value)

    def close(self) -> None:
        """Release the pin."""
        self._device.close()

    def status(self) -> dict[str, object]:
        """JSON-able state; ``timestamps``: where edge times come from (module docstring)."""
        return {
            "state": "ok",
            "active": self.active,
            "edges": self.edges,
            "timestamps": self.edge_clock.source,
        }


class GpiozeroPhotoEye(GpiozeroInput):
    """Induct photo-eye on a GPIO input: raw edges as (t_ms, blocked); debounce is the core's.

    Args:
        pin: BCM pin number.
        blocked_level: "high" when the sensor output is high while the beam is blocked.
        pin_factory: the gpiozero pin factory.
        clock: monotonic ms time source used to stamp edges.
    """

    def __init__(
        self,
        pin: int,
        blocked_level: str,
        pin_factory: Factory,
        clock: Callable[[], float] = monotonic_ms,
    ) -> None:
        super().__init__("photo_eye", pin, blocked_level == "high", pin_factory, clock)
        self.blocked_level = blocked_level

    def self_test(self) -> dict[str, object]:
        """The input was claimed (the pin exists and is free): ``{"ok": True, "detail"}``."""
        return {"ok": True, "detail": f"GPIO{self.pin}, blocked={self.blocked_level}"}

    @property
    def blocked(self) -> bool:
        """Current (raw) level: True when the beam is blocked."""
        return self.active

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        return {
            "state": "ok",
            "blocked": self.blocked,
            "edges": self.edges,
            "timestamps": self.edge_clock.source,
        }


class GpiozeroDiverterGate:
    """Diverter gate on a GPIO output, off at start and off on close.

    Args:
        name: gate id (the lane name).
        pin: BCM pin number.
        active_high: True when energising means driving the pin high.
        pin_factory: the gpiozero pin factory.
    """

    def __init__(self, name: str, pin: int, active_high: bool, pin_factory: Factory) -> None:
        self.name = name
        self.pin = pin
        self._device = DigitalOutputDevice(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
        )
        self.fired = 0

    def energise(self) -> None:
        """Divert."""
        self._device.on()
        self.fired += 1

    def release(self) -> None:
        """Back to rest (no divert)."""
        self._device.off()

    @property
    def energised(self) -> bool:
        """True while the gate is commanded to divert."""
        return bool(self._device.value)

    def close(self) -> None:
        """De-energise, then release the pin."""
        if self._device.closed:
            return
        try:
            self._device.off()
        finally:
            self._device.close()

    @property
    def inactive_level(self) -> int:
        """The pin level (0 / 1) of the de-energised gate."""
        return 0 if self._device.active_high else 1

    def self_test(self) -> dict[str, object]:
        """Drive the gate off and read the pin back; never pulses the diverter.

        Returns ``{"ok": bool, "detail": str}``: not ok when the pin does not read back
        the de-energised level (a shorted or stuck output); such a gate is never used.
        """
        try:
            self._device.off()
            level = int(bool(self._device.pin.state))
        except Exception as exc:
            return {"ok": False, "detail": f"pin read-back failed: {exc}"}
        if level != self.inactive_level:
            return {
                "ok": False,
                "detail": f"GPIO{self.pin} reads {level} after off, expected {self.inactive_level}",
            }
        return {"ok": True, "detail": f"GPIO{self.pin} off (level {level})"}

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        return {"state": "ok", "energised": self.energised, "fired": self.fired}


class _StampedRotaryEncoder(RotaryEncoder):  # type: ignore[misc]
    """``RotaryEncoder`` that keeps the ticks of the last edge on A or B (``last_ticks``)."""

    last_ticks: Any = None

    def _change_state(self, ticks: Any, edge: Any) -> None:
        self.last_ticks = ticks
        super()._change_state(ticks, edge)


class GpiozeroEncoder:
    """Belt encoder: gpiozero ``RotaryEncoder`` (quadrature, A and B) or pulses on A only.

    The time of the last counted edge is the pin factory's (see the module's *Edge times*):
    :meth:`sample` gives ``(t_ms, pulses)`` as of that edge, not as of the read.

    Args:
        pin_a: BCM pin of channel A.
        pin_b: BCM pin of channel B, or None for a single-channel pulse counter.
        mm_per_pulse: belt travel per counted step, mm.
        pin_factory: the gpiozero pin factory.
        clock: the station's monotonic ms clock (edge times are mapped onto it).
    """

    def __init__(
        self,
        pin_a: int,
        pin_b: int | None,
        mm_per_pulse: float,
        pin_factory: Factory,
        clock: Callable[[], float] = monotonic_ms,
    ) -> None:
        self.mm_per_pulse = mm_per_pulse
        self.edge_clock = EdgeClock(pin_factory, clock)
        self._pulses = 0
        self._last_ticks: Any = None
        self._rotary: _StampedRotaryEncoder | None = None
        self._input: _EdgeInput | None = None
        if pin_b is not None:
            self._rotary = _StampedRotaryEncoder(
                pin_a, pin_b, max_steps=0, wrap=False, pin_factory=pin_factory
            )
        else:
            self._input = _EdgeInput(
                pin_a, pull_up=None, active_state=True, pin_factory=pin_factory
            )
            self._input.on_edge = self._pulse

    def _pulse(self, ticks: Any, state: Any) -> None:
        if self._input is not None and self._input.active_of(state):
            self._pulses += 1
            self._last_ticks = ticks

    @property
    def pulses(self) -> int:
        """Steps counted since start (negative when a quadrature belt ran backwards)."""
        return self._rotary.steps if self._rotary is not None else self._pulses

    def sample(self) -> tuple[float | None, int]:
        """``(t_ms of the last counted edge, or None before the first; pulses)``."""
        ticks = self._rotary.last_ticks if self._rotary is not None else self._last_ticks
        pulses = self.pulses
        return (None if ticks is None else self.edge_clock.to_ms(ticks)), pulses

    def position_mm(self) -> float:
        """Belt travel since start, mm."""
        return self.pulses * self.mm_per_pulse

    def close(self) -> None:
        """Release the pins."""
        for dev in (self._rotary, self._input):
            if dev is not None:
                dev.close()

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        return {
            "state": "ok",
            "pulses": self.pulses,
            "position_mm": self.position_mm(),
            "timestamps": self.edge_clock.source,
        }


class GpiozeroOutput:
    """A plain on/off output (belt-run contactor, stack-light lamp), off at start and close.

    Args:
        name: what it drives, e.g. ``"belt_run"`` or ``"stack_light.red"``.
        pin: BCM pin number.
        active_high: True when on means driving the pin high.
        pin_factory: the gpiozero pin factory.
    """

    def __init__(self, name: str, pin: int, active_high: bool, pin_factory: Factory) -> None:
        self.name = name
        self.pin = pin
        self._device = DigitalOutputDevice(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
        )

    def set(self, on: bool) -> None:
        """Switch the output on or off."""
        if self._device.closed:
            return
        self._device.value = on

    @property
    def on(self) -> bool:
        """True while switched on."""
        return not self._device.closed and bool(self._device.value)

    def close(self) -> None:
        """Switch off, then release the pin."""
        if self._device.closed:
            return
        try:
            self._device.off()
        finally:
            self._device.close()

    def status(self) -> dict[str, object]:
        """JSON-able state."""
        return {"on": self.on}
