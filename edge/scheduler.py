"""Fires actions at computed monotonic times (the gate timer), and measures its jitter.

One thread, one heap. ``call_at(t_ms, fn)`` runs ``fn`` as close to ``t_ms`` as the OS
allows; the lateness of each firing (ms) is kept for ``status()`` and benchmarks.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable

from edge.clock import clock_rate, monotonic_ms

log = logging.getLogger(__name__)

SPIN_MS = 1.0  # busy-wait this close to the deadline for sub-millisecond accuracy


class Scheduler:
    """Timer thread firing callbacks at monotonic-ms deadlines.

    Args:
        clock: monotonic time source in ms (injectable for tests and accelerated
            simulation: a :class:`edge.clock.ScaledClock` makes waits real-time shorter by
            its ``rate``).
    """

    def __init__(self, clock: Callable[[], float] = monotonic_ms) -> None:
        self.clock = clock
        self.rate = clock_rate(clock)
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.lateness_ms: deque[float] = deque(maxlen=10_000)

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

    def call_at(self, t_ms: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` at monotonic time ``t_ms`` (immediately when already past)."""
        with self._cv:
            heapq.heappush(self._heap, (t_ms, next(self._seq), fn))
            self._cv.notify()

    def pending(self) -> int:
        """Number of callbacks waiting."""
        with self._cv:
            return len(self._heap)

    def status(self) -> dict[str, object]:
        """JSON-able state with lateness percentiles (ms)."""
        late = sorted(self.lateness_ms)

        def pct(p: float) -> float | None:
            return round(late[min(len(late) - 1, int(p * len(late)))], 3) if late else None

        return {
            "pending": self.pending(),
            "fired": len(late),
            "late_p50_ms": pct(0.5),
            "late_p99_ms": pct(0.99),
        }

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stop:
                    if self._heap:
                        wait_ms = self._heap[0][0] - self.clock()
                        if wait_ms <= SPIN_MS:
                            break
                        self._cv.wait((wait_ms - SPIN_MS) / 1000.0 / self.rate)
                    else:
                        self._cv.wait()
                if self._stop:
                    return
                t_ms, _, fn = heapq.heappop(self._heap)
            while self.clock() < t_ms:
                pass
            self.lateness_ms.append(self.clock() - t_ms)
            try:
                fn()
            except Exception:
                log.exception("scheduled action failed")
