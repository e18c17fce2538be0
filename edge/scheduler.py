"""Fires actions at computed monotonic times (the gate timer), and measures its lateness.

One thread, one heap. ``call_at(t_ms, fn)`` runs ``fn`` as close to ``t_ms`` as the OS
allows; the lateness of each firing (ms, fire time minus deadline) is kept for ``status()``
and benchmarks and handed to ``on_fired`` (the station's Prometheus histogram).

Keeping deadlines on a loaded station:

* **Real-time priority**: the thread asks for ``SCHED_FIFO`` at ``priority`` when it starts
  (``os.sched_setscheduler`` on itself; granted to root or with ``CAP_SYS_NICE``, which the
  shipped systemd unit gives). When refused it runs at normal priority and
  ``status()["realtime"]`` says so and why, in one line.
* **Reserved core**: with ``cpu`` set, the thread pins itself to that CPU
  (``os.sched_setaffinity``), the one the kernel keeps free (``isolcpus=`` / a cpuset).
* **Armed ahead**: the thread wakes ``arm_ms`` before a deadline and spins the rest, where
  ``arm_ms`` follows how late its own wake-ups have been lately (the p100 of the last
  :data:`WAKE_WINDOW` overshoots plus :data:`SPIN_MS`, at most :data:`MAX_ARM_MS`): a
  wake-up delayed by load or by the GIL is absorbed before the deadline, not after it.
* **Bounded lateness**: ``call_at(..., late_limit_ms=m, on_late=g)`` runs ``g(late_ms)``
  instead of ``fn`` when the firing would be more than ``m`` ms late (a gate fired that late
  would hit the parcel or its neighbour: see :class:`edge.station.gates.GateBank`).
* **No collector pauses, short GIL hand-overs**: :func:`tune_runtime` freezes what start-up
  allocated, raises the young-generation threshold (the station allocates little per
  parcel) and shortens the interpreter's switch interval to :data:`SWITCH_INTERVAL_S`, so
  the woken timer thread gets the GIL from a running holder within 1 ms instead of 5.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable

from edge.clock import clock_rate, monotonic_ms

log = logging.getLogger(__name__)

SPIN_MS = 1.0
"""Busy-wait at least this close to the deadline for sub-millisecond accuracy."""

MAX_ARM_MS = 8.0
"""Never wake (and spin) more than this before a deadline, ms."""

WAKE_WINDOW = 64
"""Recent wake-up overshoots the arm-ahead time follows."""

DEFAULT_PRIORITY = 50
"""SCHED_FIFO priority asked for (1..99; the unit's ``CPUSchedulingPriority=``)."""

GC_THRESHOLD = (700, 10, 1000)
"""``gc.set_threshold`` after start: young collections as often as the default (each one
short: it scans at most ~700 new objects and the survivors of 10 of those), full
collections 100x rarer (the default 10). ``make bench`` (bench_timing: the scheduler's max
lateness while a thread makes cyclic garbage beside a station-sized frozen heap) measured
1.1 ms with these against 91-95 ms with the interpreter's defaults and no freeze, 34 ms
with the defaults after a freeze, 430-490 ms with (50_000, 50, 100) (large young
generations: each collection long) and 430-460 ms with (2000, 10, 100)."""

SWITCH_INTERVAL_S = 0.001
"""``sys.setswitchinterval`` after start (default 0.005 s): how long a thread waiting for
the GIL lets the holder run before asking for it. Measured on ``tight-gaps`` with two busy
processes: 3 of 3 runs within the margin at 1 ms, 1 of 3 at 5 ms."""


def tune_runtime(
    threshold: tuple[int, int, int] = GC_THRESHOLD, switch_interval_s: float = SWITCH_INTERVAL_S
) -> dict[str, object]:
    """Keep the interpreter out of the gate timer's way (collector and GIL hand-overs).

    Collects, ``gc.freeze()``, raises the collector's thresholds, shortens the GIL switch
    interval. Call once after start-up (everything allocated so far is moved to the permanent
    generation and never scanned again). Returns what was done, for the log.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*threshold)
    sys.setswitchinterval(switch_interval_s)
    return {
        "frozen": gc.get_freeze_count(),
        "threshold": list(gc.get_threshold()),
        "switch_interval_s": sys.getswitchinterval(),
    }


def set_realtime(priority: int) -> str:
    """Put the calling thread at ``SCHED_FIFO`` ``priority``; return the status line.

    Never raises: a refusal (no ``CAP_SYS_NICE``, no RT budget, not Linux) is the line
    ``"refused: <why>; ..."``.
    """
    if not hasattr(os, "sched_setscheduler"):
        return "refused: no SCHED_FIFO on this platform; gates fire at normal priority"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError as exc:
        return (
            f"refused: SCHED_FIFO {priority}: {exc.strerror or exc}; gates fire at normal "
            "priority (grant CAP_SYS_NICE, see hardware/INSTALL.md)"
        )
    return f"SCHED_FIFO {priority}"


class Scheduler:
    """Timer thread firing callbacks at monotonic-ms deadlines.

    Args:
        clock: monotonic time source in ms (injectable for tests and accelerated
            simulation: a :class:`edge.clock.ScaledClock` makes waits real-time shorter by
            its ``rate``).
        priority: SCHED_FIFO priority the thread asks for (None: stay at normal priority).
        cpu: the CPU the thread pins itself to (None: any).
        on_fired: called on the scheduler thread after each firing with its lateness (ms);
            must not block (the station's metrics histogram).
    """

    def __init__(
        self,
        clock: Callable[[], float] = monotonic_ms,
        *,
        priority: int | None = None,
        cpu: int | None = None,
        on_fired: Callable[[float], None] | None = None,
    ) -> None:
        self.clock = clock
        self.rate = clock_rate(clock)
        self.priority = priority
        self.cpu = cpu
        self.on_fired = on_fired
        self._heap: list[tuple[float, int, Callable[[], None], float, Callable[[float], None]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.lateness_ms: deque[float] = deque(maxlen=10_000)
        self._overshoot_ms: deque[float] = deque([0.0], maxlen=WAKE_WINDOW)
        self.realtime = "not started"
        self.refused_late = 0

    def start(self) -> None:
        """Start the timer thread."""
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; pending callbacks are dropped."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def alive(self) -> bool:
        """True while the timer thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def call_at(
        self,
        t_ms: float,
        fn: Callable[[], None],
        *,
        late_limit_ms: float = float("inf"),
        on_late: Callable[[float], None] | None = None,
    ) -> None:
        """Run ``fn`` at monotonic time ``t_ms`` (immediately when already past).

        When the firing is more than ``late_limit_ms`` late, ``on_late(late_ms)`` runs
        instead of ``fn`` (nothing runs when ``on_late`` is None).
        """
        instead = on_late if on_late is not None else _nothing
        with self._cv:
            heapq.heappush(self._heap, (t_ms, next(self._seq), fn, late_limit_ms, instead))
            self._cv.notify()

    def pending(self) -> int:
        """Number of callbacks waiting."""
        with self._cv:
            return len(self._heap)

    def arm_ms(self) -> float:
        """How long before a deadline the thread wakes and starts spinning, ms."""
        return min(MAX_ARM_MS, SPIN_MS + max(self._overshoot_ms))

    def status(self) -> dict[str, object]:
        """JSON-able state: lateness percentiles and max (ms), priority, arm-ahead time.

        ``realtime``: ``"SCHED_FIFO <prio>"``, ``"normal priority"`` or ``"refused: ..."``,
        then `` on CPU <n>`` when pinned;
        ``refused_late``: firings replaced by their ``on_late`` (too late to fire);
        ``gc_frozen`` / ``gc_threshold`` / ``switch_interval_s``: the interpreter's state
        (see :func:`tune_runtime`).
        """
        late = sorted(self.lateness_ms)

        def pct(p: float) -> float | None:
            return round(late[min(len(late) - 1, int(p * len(late)))], 3) if late else None

        return {
            "pending": self.pending(),
            "fired": len(late),
            "late_p50_ms": pct(0.5),
            "late_p99_ms": pct(0.99),
            "late_max_ms": round(late[-1], 3) if late else None,
            "refused_late": self.refused_late,
            "realtime": self.realtime,
            "arm_ms": round(self.arm_ms(), 3),
            "gc_frozen": gc.get_freeze_count(),
            "gc_threshold": list(gc.get_threshold()),
            "switch_interval_s": sys.getswitchinterval(),
        }

    def _run(self) -> None:
        self.realtime = "normal priority" if self.priority is None else set_realtime(self.priority)
        if self.cpu is not None:
            try:
                os.sched_setaffinity(0, {self.cpu})
                self.realtime += f" on CPU {self.cpu}"
            except (OSError, AttributeError) as exc:
                self.realtime += f"; CPU {self.cpu} refused: {exc}"
        if "refused" in self.realtime:
            log.warning("gate scheduler: %s", self.realtime)
        else:
            log.info("gate scheduler: %s", self.realtime)
        while True:
            with self._cv:
                while not self._stop:
                    if self._heap:
                        arm_ms = self.arm_ms()
                        wait_ms = self._heap[0][0] - self.clock()
                        if wait_ms <= arm_ms:
                            break
                        woke_for = self.clock() + (wait_ms - arm_ms)
                        self._cv.wait((wait_ms - arm_ms) / 1000.0 / self.rate)
                        self._overshoot_ms.append(max(0.0, self.clock() - woke_for))
                    else:
                        self._cv.wait()
                if self._stop:
                    return
                t_ms, _, fn, late_limit_ms, on_late = heapq.heappop(self._heap)
            while self.clock() < t_ms:
                pass
            late_ms = self.clock() - t_ms
            try:
                if late_ms > late_limit_ms:
                    self.refused_late += 1
                    on_late(late_ms)
                else:
                    fn()
            except Exception:
                log.exception("scheduled action failed")
            self.lateness_ms.append(late_ms)
            if self.on_fired is not None:
                try:
                    self.on_fired(late_ms)
                except Exception:
                    log.exception("lateness observer failed")


def _nothing(late_ms: float) -> None:
    """The default ``on_late``: fire nothing."""
