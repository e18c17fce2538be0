"""A background thread running one job at a fixed interval (expiry, webhook delivery)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicWorker:
    """Runs ``job()`` every ``interval_s`` seconds in a daemon thread until stopped.

    A job that returns True had a full round (an outbox that took as many rows as one
    round may: a backlog): the next round then starts at once, and so on until one is not
    full, so that delivery keeps up with what the gateway queues (a busy line queues far
    more webhooks and shop pushes per second than one round per interval would send).
    A job that raises is logged and tried again at the next interval; it never kills the
    thread.

    Args:
        name: thread name, also used in the log.
        interval_s: seconds between the end of one burst of rounds and the next.
        job: the round to run; True when it was full.
        leader: asked before each round; the round is skipped unless it returns True (the
            job runs once across gateway replicas: :class:`gateway.services.leader.LeaderLease`).
            None: every round runs (a single gateway).
        yield_to: asked before each round; while it returns True (the ingest of the
            conveyor's events is behind: :meth:`gateway.mqtt_bridge.MqttBridge.behind`)
            the round waits, for at most ``max_defer_s`` after the last round ended: then
            one runs anyway (the thread looks again then, not only every ``interval_s``),
            so the job is slowed, never starved. None: rounds never wait.
        max_defer_s: the longest wait for ``yield_to``, s (0: rounds never wait).
        clock: monotonic seconds (a test's clock).
    """

    def __init__(
        self,
        name: str,
        interval_s: float,
        job: Callable[[], object],
        leader: Callable[[], bool] | None = None,
        *,
        yield_to: Callable[[], bool] | None = None,
        max_defer_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._interval_s = interval_s
        self._job = job
        self._leader = leader
        self._yield_to = yield_to
        self._max_defer_s = max_defer_s
        self._clock = clock
        self._last_round_at: float | None = None  # clock() when the last round ended
        self._deferring = False  # the last burst ended by giving way to the ingest
        #: rounds put off because ``yield_to`` said the ingest was behind
        self.deferred = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (at most 5 s); a worker never started just stops."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def run_rounds(self) -> int:
        """Run rounds back to back while each is full; return how many ran.

        Before each round the leader is asked (none runs unless it returns True), then
        ``yield_to`` (a round it defers ends the burst: the thread's next look, at
        :meth:`next_wait_s`, asks again); a stop ends the burst after the current round.

        Raises:
            Exception: whatever the job raised (the thread logs it and goes on).
        """
        rounds = 0
        self._deferring = False
        while not self._stop.is_set():
            if self._leader is not None and not self._leader():
                break  # another replica runs it
            if self._defers():
                self.deferred += 1
                self._deferring = True
                break
            rounds += 1
            try:
                full = self._job() is True
            finally:  # (from its end: a round slower than max_defer_s still gives way)
                self._last_round_at = self._clock()
            if not full:
                break
        return rounds

    def next_wait_s(self) -> float:
        """Seconds until the thread looks again (``interval_s``, or less).

        Less after a burst that gave way to the ingest: the round it put off then runs
        when ``max_defer_s`` after the last round is up, not up to one interval later.
        """
        if not self._deferring or self._last_round_at is None:
            return self._interval_s
        left = self._max_defer_s - (self._clock() - self._last_round_at)
        return max(0.0, min(self._interval_s, left))

    def _defers(self) -> bool:
        """Whether the next round waits for ``yield_to`` (within ``max_defer_s``)."""
        if self._yield_to is None or self._max_defer_s <= 0 or self._last_round_at is None:
            return False
        if self._clock() - self._last_round_at >= self._max_defer_s:
            return False  # waited long enough: one round now, whatever the ingest does
        return bool(self._yield_to())

    def _run(self) -> None:
        while not self._stop.wait(self.next_wait_s()):
            try:
                self.run_rounds()
            except Exception:
                log.exception("%s round failed", self.name)
