"""Checkweigher interface: weight readings from a weighing indicator, and weighings of parcels.

A checkweigher here is a weigh platform under a section of the belt whose indicator streams
its displayed weight continuously over a serial line. A backend (e.g.
:mod:`edge.drivers.pyserial_scale`) decodes each frame of the stream into a
:class:`WeightReading` stamped with the monotonic time (ms) of the frame's first byte, and
pushes it to a callback on its own thread.

:class:`WeighingDetector` (pure: time is an argument, no I/O) turns the stream into
:class:`Weighing` events, one per plateau of a load: a parcel rides onto the platform (the
weight leaves the empty band), the indicator reports it stable for ``settle_readings``
consecutive readings that agree within ``step_g`` (a plateau), and the weighing is that
plateau's median weight with its first and last reading times. A later plateau in the same
load that differs by more than ``step_g`` (a second parcel arrived, one left) is another
weighing. A load that leaves the platform without ever settling, or that overloads it,
gives one weighing without a weight and with the problem. Which parcel a weighing belongs to
is the sorter core's business: the parcel whose body lay wholly on the platform during the
plateau, and only one (two parcels on the platform make the weight unusable).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from statistics import median
from typing import Final, Literal, Protocol, runtime_checkable

__all__ = [
    "UNIT_GRAMS",
    "Checkweigher",
    "Load",
    "ScaleCallback",
    "ScaleState",
    "Weighing",
    "WeighingDetector",
    "WeightReading",
    "to_grams",
]

UNIT_GRAMS: Final[dict[str, Decimal]] = {
    "g": Decimal(1),
    "kg": Decimal(1000),
    "t": Decimal(1_000_000),
    "lb": Decimal("453.59237"),
    "oz": Decimal("28.349523125"),
}
"""Grams per unit: the international avoirdupois pound is exactly 0.45359237 kg (1959
international yard and pound agreement; NIST SP 811 appendix B), the ounce 1/16 lb."""

Load = Literal["ok", "overload", "underload"]
"""``overload``: over the scale's capacity; ``underload``: under zero beyond its range."""

ScaleState = Literal["ok", "degraded", "stopped"]
"""``ok``: port open and valid frames arriving. ``degraded``: started but the port is not
usable or no valid frame came recently (unplugged, indicator off, wrong line settings).
``stopped``: not started or stopped."""


def to_grams(value: Decimal, unit: str) -> float:
    """``value`` in ``unit`` (a key of :data:`UNIT_GRAMS`) as grams.

    Raises:
        KeyError: for a unit not in :data:`UNIT_GRAMS`.
    """
    return float(value * UNIT_GRAMS[unit])


@dataclass(frozen=True, slots=True)
class WeightReading:
    """One frame of the indicator's continuous output.

    Attributes:
        t_ms: monotonic time of the frame's first byte, ms.
        value: the displayed weight as sent (signed), in ``unit``.
        unit: ``g``, ``kg``, ``t``, ``lb`` or ``oz``.
        weight_g: ``value`` in grams.
        stable: False while the indicator reports motion.
        net: True for a net weight (tare subtracted), False for gross.
        load: ``ok``, ``overload`` or ``underload`` (the weight is then meaningless).
        zeroed: False while the indicator has not captured zero since power-up.
        tare_g: the tare sent with the frame, grams, or None when the frame has none.
    """

    t_ms: float
    value: Decimal
    unit: str
    weight_g: float
    stable: bool
    net: bool = False
    load: Load = "ok"
    zeroed: bool = True
    tare_g: float | None = None

    @property
    def usable(self) -> bool:
        """True when the weight can be trusted: stable, in range, zero captured."""
        return self.stable and self.load == "ok" and self.zeroed


ScaleCallback = Callable[[WeightReading], None]
"""Receives each decoded reading; called on the backend's reader thread, must return fast."""


@dataclass(frozen=True, slots=True)
class Weighing:
    """One plateau of a load on the platform, or a load that could not be weighed.

    Attributes:
        t_ms: first reading of the plateau (or the problem's reading), monotonic ms.
        t_end_ms: last reading of the plateau, ms (the weighing is emitted then).
        t_on_ms: when the load came onto the platform (left the empty band), ms.
        weight_g: the plateau's median weight, grams; None when it could not be weighed.
        readings: readings in the plateau (0 without a weight).
        problem: None, or why there is no weight: ``not_settled`` (left the platform
            without a stable plateau), ``overload``, ``underload``, ``not_zeroed``.
    """

    t_ms: float
    t_end_ms: float
    t_on_ms: float
    weight_g: float | None
    readings: int = 0
    problem: str | None = None

    @property
    def stable(self) -> bool:
        """True when the weighing has a weight (a stable plateau)."""
        return self.weight_g is not None


class WeighingDetector:
    """Turns readings into :class:`Weighing` events (see the module doc). Pure, one feeder.

    Args:
        empty_g: a reading at or below this (grams) is an empty platform.
        settle_readings: consecutive stable, usable readings that make a plateau (>= 1).
        step_g: readings of one plateau agree within this (grams); a new plateau must
            differ from the last by more than this (default: ``empty_g``, at least 1 g).

    Raises:
        ValueError: on a negative ``empty_g`` or ``step_g``, or ``settle_readings`` < 1.
    """

    def __init__(
        self, empty_g: float = 20.0, settle_readings: int = 3, step_g: float | None = None
    ) -> None:
        if empty_g < 0 or (step_g is not None and step_g < 0):
            raise ValueError("empty_g and step_g must not be negative")
        if settle_readings < 1:
            raise ValueError("settle_readings must be >= 1")
        self.empty_g = empty_g
        self.settle_readings = settle_readings
        self.step_g = step_g if step_g is not None else max(1.0, empty_g)
        self._loaded = False
        self._t_on_ms = 0.0
        self._run: list[WeightReading] = []
        self._plateau_g: float | None = None
        self._emitted = False
        self._problem: str | None = None

    @property
    def loaded(self) -> bool:
        """True while a load is on the platform."""
        return self._loaded

    def feed(self, reading: WeightReading) -> list[Weighing]:
        """Account one reading; returns the weighings it completes (zero or one)."""
        if reading.load == "ok" and reading.weight_g <= self.empty_g:
            return self._unloaded(reading)
        if not self._loaded:
            self._loaded, self._t_on_ms = True, reading.t_ms
            self._run, self._plateau_g, self._emitted, self._problem = [], None, False, None
        if reading.load != "ok" or not reading.zeroed:
            problem = reading.load if reading.load != "ok" else "not_zeroed"
            self._run = []
            if self._problem is None:
                self._problem = problem
                self._emitted = True
                return [Weighing(reading.t_ms, reading.t_ms, self._t_on_ms, None, 0, problem)]
            return []
        if not reading.stable:
            self._run = []
            return []
        if self._run and abs(reading.weight_g - self._run[0].weight_g) > self.step_g:
            self._run = []
        self._run.append(reading)
        if len(self._run) != self.settle_readings:
            return []
        weight = float(median(r.weight_g for r in self._run))
        if self._plateau_g is not None and abs(weight - self._plateau_g) <= self.step_g:
            return []  # the same plateau, still
        self._plateau_g, self._emitted = weight, True
        first, last = self._run[0], self._run[-1]
        return [Weighing(first.t_ms, last.t_ms, self._t_on_ms, weight, len(self._run))]

    def _unloaded(self, reading: WeightReading) -> list[Weighing]:
        if not self._loaded:
            return []
        self._loaded = False
        self._run = []
        if self._emitted:
            return []
        return [Weighing(reading.t_ms, reading.t_ms, self._t_on_ms, None, 0, "not_settled")]


@runtime_checkable
class Checkweigher(Protocol):
    """A weighing indicator that streams readings to a callback from its own thread."""

    def self_test(self) -> dict[str, object]:
        """Open the port and wait for one valid frame: ``{"ok": bool, "detail": str}``.

        Never raises.
        """
        ...

    def start(self, on_reading: ScaleCallback) -> None:
        """Start reading; ``on_reading`` gets each decoded :class:`WeightReading`."""
        ...

    def stop(self) -> None:
        """Stop reading and release the port; returns within about one second."""
        ...

    def status(self) -> dict[str, object]:
        """JSON-able health.

        Keys at least: ``state`` (:data:`ScaleState`), ``port``, ``readings``,
        ``bad_frames``, ``reopen_count`` (ints), ``last_reading`` (a mapping or None) and
        ``last_error`` (str or None).
        """
        ...
