"""GateBank: the only code that energises a diverter gate.

A gate is energised while at least one *hold* is on it, and released when the last one
ends: every parcel diverted by a gate holds it from its command's ``open_at_ms`` to its
``close_at_ms`` (two parcels for one lane close together keep it energised between them,
see :class:`edge.sorter.model.GateCommand`), and a gate test holds it for its pulse. A
withdrawn parcel (:class:`~edge.sorter.model.GateCancel`) drops its hold at once and never
takes one again. One lock covers holds, cancellations and gate-test waits, so the
scheduler thread (firings), the reactor thread (cancels), the link's command thread (gate
tests) and a signal handler (release all) never interleave on a gate.

An open the scheduler would fire more than ``late_limit_ms`` late (the gate margin: the
diverter would still be moving when the parcel arrives, or swing into its neighbour) is not
fired: ``on_late`` is told and the parcel runs on, unless its gate is already energised by
another parcel of the same lane (then it is diverted as planned).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from edge.clock import clock_rate, monotonic_ms
from edge.drivers.gpio import DiverterGate
from edge.scheduler import Scheduler
from edge.sorter.model import GateCommand
from edge.station.inputs import GateLate, StationInput

if TYPE_CHECKING:
    from edge.config import BeltSection

__all__ = ["GATE_TEST_HOLD", "GateBank", "GateHeld"]

log = logging.getLogger(__name__)

GATE_TEST_HOLD = -1
"""The hold a gate test puts on its gate (parcel ids are positive)."""

MAX_CANCELLED = 10_000
"""Withdrawn parcel ids remembered (each is forgotten at its command's close time)."""


class GateHeld(ValueError):
    """A gate test was refused: the gate is held (a divert or another test in progress)."""


class GateBank:
    """The station's usable gates, energised only through holds.

    Args:
        gates: the gates that passed their self-test, by lane.
        scheduler: fires :meth:`open` / :meth:`close` at a command's computed times.
        clock: the station's monotonic ms clock (gate-test timing).
        late_limit_ms: an open later than this (ms) is not fired (the belt's gate margin).
        on_late: ``(parcel_id, lane, t_ms, late_ms)``, on the scheduler thread, when an
            open was not fired; must not block (the daemon queues a ``GateLate`` input).
    """

    def __init__(
        self,
        gates: Mapping[str, DiverterGate],
        scheduler: Scheduler,
        clock: Callable[[], float] = monotonic_ms,
        *,
        late_limit_ms: float = float("inf"),
        on_late: Callable[[int, str, float, float], None] | None = None,
    ) -> None:
        self._gates = dict(gates)
        self.scheduler = scheduler
        self.clock = clock
        self.late_limit_ms = late_limit_ms
        self.on_late = on_late
        self._lock = threading.Lock()
        self._holds: dict[str, set[int]] = {lane: set() for lane in self._gates}
        self._cancelled: dict[int, None] = {}  # insertion-ordered set, bounded
        self._generation: dict[int, int] = {}  # parcel -> its latest schedule (re-timing)
        # gate tests waiting for their lane's divert-confirm: lane -> (event, edge times ms)
        self._confirm_waits: dict[str, tuple[threading.Event, list[float]]] = {}
        self.locked_out = False
        """True while the E-stop is engaged: no gate is energised (see :meth:`lock_out`)."""

    @classmethod
    def for_station(
        cls,
        gates: Mapping[str, DiverterGate],
        belt: BeltSection,
        clock: Callable[[], float],
        submit: Callable[[StationInput], None],
        scheduler: Scheduler | None = None,
    ) -> GateBank:
        """The station's bank: opens later than the belt's ``gate_margin_ms`` are not fired.

        Each is reported to the reactor through ``submit`` as a
        :class:`~edge.station.inputs.GateLate`. The gate timer is ``scheduler``, or a new
        :class:`~edge.scheduler.Scheduler` on ``clock`` at the belt's ``scheduler_priority``
        (SCHED_FIFO) and ``scheduler_cpu``.
        """
        timer = scheduler or Scheduler(
            clock, priority=belt.scheduler_priority, cpu=belt.scheduler_cpu
        )
        return cls(
            gates,
            timer,
            clock,
            late_limit_ms=belt.gate_margin_ms,
            on_late=lambda pid, lane, t_ms, late_ms: submit(GateLate(t_ms, pid, lane, late_ms)),
        )

    def __contains__(self, lane: object) -> bool:
        return lane in self._gates

    @property
    def lanes(self) -> tuple[str, ...]:
        """The lanes whose gate is usable, in config order."""
        return tuple(self._gates)

    def holds(self, lane: str) -> frozenset[int]:
        """The holds on ``lane``'s gate now (parcel ids; :data:`GATE_TEST_HOLD` for a test)."""
        with self._lock:
            return frozenset(self._holds.get(lane, ()))

    # -- parcels ------------------------------------------------------------------------------
    def schedule(self, command: GateCommand) -> bool:
        """Hold the gate from ``command.open_at_ms`` to ``command.close_at_ms``.

        A later command for the same parcel (re-timed by the core as the belt changed
        speed) replaces the earlier one: the earlier firings are ignored when they come. A
        time that is not finite (the belt stands) is not scheduled. Returns False (and
        fires nothing) when the gate is not usable: the parcel runs on.
        """
        if command.gate not in self._gates:  # never divert on a broken gate
            log.error("gate %s is not usable; parcel %d runs on", command.gate, command.parcel_id)
            return False
        pid, lane = command.parcel_id, command.gate
        with self._lock:
            gen = self._generation[pid] = self._generation.get(pid, 0) + 1
            while len(self._generation) > MAX_CANCELLED:
                del self._generation[next(iter(self._generation))]
        if math.isfinite(command.open_at_ms):
            self.scheduler.call_at(
                command.open_at_ms,
                lambda: self.open(pid, lane, gen),
                late_limit_ms=self.late_limit_ms,
                on_late=lambda late_ms: self._late(pid, lane, gen, late_ms),
            )
        if math.isfinite(command.close_at_ms):
            self.scheduler.call_at(command.close_at_ms, lambda: self.close(pid, lane, gen))
        return True

    def _late(self, parcel_id: int, lane: str, generation: int, late_ms: float) -> None:
        """The open of ``parcel_id`` came ``late_ms`` late, past the limit (scheduler thread).

        An outdated schedule (re-timed since), a withdrawn parcel or an E-stop does nothing.
        """
        with self._lock:
            if parcel_id in self._cancelled or self.locked_out:
                return
            if self._generation.get(parcel_id) != generation:
                return
            if self._holds[lane]:  # energised for a parcel just ahead (or this one, re-timed)
                self._holds[lane].add(parcel_id)
                self._gates[lane].energise()
                return
            self._cancel_locked(parcel_id)  # its close forgets it
        log.error("gate %s not fired for parcel %d: %.1f ms late", lane, parcel_id, late_ms)
        if self.on_late is not None:
            self.on_late(parcel_id, lane, self.clock(), late_ms)

    def open(self, parcel_id: int, lane: str, generation: int | None = None) -> None:
        """Parcel ``parcel_id`` takes its hold: the gate is energised (unless withdrawn).

        ``generation``: the schedule it comes from; an outdated one does nothing.
        """
        with self._lock:
            if parcel_id in self._cancelled or self.locked_out:
                return
            if generation is not None and self._generation.get(parcel_id) != generation:
                return
            self._holds[lane].add(parcel_id)
            self._gates[lane].energise()

    def close(self, parcel_id: int, lane: str, generation: int | None = None) -> None:
        """Parcel ``parcel_id`` drops its hold; the gate is released when no hold is left.

        ``generation``: the schedule it comes from; an outdated one does nothing.
        """
        with self._lock:
            if generation is not None and self._generation.get(parcel_id) != generation:
                return
            self._generation.pop(parcel_id, None)
            self._cancelled.pop(parcel_id, None)  # its last firing: forget the withdrawal
            self._unhold(lane, parcel_id)

    def cancel(self, parcel_id: int, lane: str) -> None:
        """Withdraw parcel ``parcel_id``: drop its hold now; it never takes one again."""
        with self._lock:
            self._cancel_locked(parcel_id)
            if lane in self._gates:
                self._unhold(lane, parcel_id)
        log.warning("gate %s withdrawn for parcel %d", lane, parcel_id)

    def _cancel_locked(self, parcel_id: int) -> None:
        """Remember ``parcel_id`` as withdrawn (lock held; bounded to :data:`MAX_CANCELLED`)."""
        self._cancelled[parcel_id] = None
        while len(self._cancelled) > MAX_CANCELLED:
            del self._cancelled[next(iter(self._cancelled))]

    def _unhold(self, lane: str, hold: int) -> None:
        """Drop ``hold`` (lock held); release the gate when none is left."""
        holds = self._holds[lane]
        holds.discard(hold)
        if not holds:
            self._gates[lane].release()

    # -- everything ---------------------------------------------------------------------------
    def release_all(self) -> None:
        """De-energise every gate now (fail safe: parcels run on to quarantine).

        Never waits for the lock (a signal handler calls it while another thread may hold
        it); holds stay recorded, so a parcel's close still ends its hold.
        """
        for gate in self._gates.values():
            try:
                gate.release()
            except Exception:
                log.exception("could not release gate %s", gate.name)

    def lock_out(self, locked: bool) -> None:
        """E-stop: ``True`` releases every gate now and refuses every energise until ``False``.

        Gate tests are refused too. The flag is set first, so a racing firing cannot win.
        """
        self.locked_out = locked
        if locked:
            self.release_all()

    def status(self) -> dict[str, dict[str, object]]:
        """Each usable gate's own status, by lane."""
        return {lane: gate.status() for lane, gate in self._gates.items()}

    # -- gate test ----------------------------------------------------------------------------
    def test(
        self, lane: str, pulse_ms: float, window_ms: float, refuse: Callable[[], str | None]
    ) -> float | None:
        """Pulse ``lane``'s gate for ``pulse_ms`` and wait for its divert-confirm.

        Blocks the calling thread (the link's command thread) for at most ``window_ms``
        (station-clock ms from energising). The gate is held with :data:`GATE_TEST_HOLD`
        (it cannot fight a scheduled firing) and released whatever happens.

        Args:
            lane: a usable lane (see ``in``).
            pulse_ms: how long the gate stays energised, ms (ends early once confirmed).
            window_ms: how long after energising a confirm counts, ms.
            refuse: called under the lock before energising; a reason (str) refuses the
                test (e.g. parcels on the belt), None allows it.

        Returns:
            ms from energising to the divert-confirm edge, or None when none came in time.

        Raises:
            GateHeld: the gate is held by a parcel or another test.
            ValueError: ``refuse`` gave a reason, or the E-stop is engaged.
            KeyError: ``lane`` has no usable gate.
        """
        gate = self._gates[lane]
        event, seen = threading.Event(), list[float]()
        with self._lock:
            holds = self._holds[lane]
            if holds or lane in self._confirm_waits:
                raise GateHeld(f"gate {lane} is held (a divert or a gate test in progress)")
            reason = "emergency stop engaged" if self.locked_out else refuse()
            if reason is not None:
                raise ValueError(reason)
            holds.add(GATE_TEST_HOLD)
            self._confirm_waits[lane] = (event, seen)
            try:
                t0 = self.clock()
                gate.energise()
            except BaseException:
                self._confirm_waits.pop(lane, None)
                self._unhold(lane, GATE_TEST_HOLD)
                raise
        log.info("gate test of lane %s: %s ms pulse", lane, pulse_ms)
        try:
            rate = clock_rate(self.clock)
            event.wait(pulse_ms / 1e3 / rate)  # the pulse; ends early once confirmed
            with self._lock:
                self._unhold(lane, GATE_TEST_HOLD)
            remaining_ms = max(0.0, t0 + window_ms - self.clock())
            confirmed = event.is_set() or event.wait(remaining_ms / 1e3 / rate)
        finally:
            with self._lock:
                self._unhold(lane, GATE_TEST_HOLD)
                self._confirm_waits.pop(lane, None)
        return round(seen[0] - t0, 1) if confirmed else None

    def confirmed(self, lane: str, t_ms: float) -> None:
        """``lane``'s divert-confirm input went active at ``t_ms`` (any thread).

        Ends a gate test waiting on that lane; otherwise does nothing (the core judges
        a parcel's confirm).
        """
        with self._lock:
            waiting = self._confirm_waits.get(lane)
            if waiting is not None and not waiting[0].is_set():
                waiting[1].append(t_ms)
                waiting[0].set()
