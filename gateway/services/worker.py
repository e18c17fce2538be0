"""A background thread running one job at a fixed interval (expiry, webhook delivery)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicWorker:
    """Runs ``job()`` every ``interval_s`` seconds in a daemon thread until stopped.

    A job that raises is logged and tried again at the next interval; it never kills the
    thread.

    Args:
        name: thread name, also used in the log.
        interval_s: seconds between the end of one round and the start of the next.
        job: the round to run.
        leader: asked before each round; the round is skipped unless it returns True (the
            job runs once across gateway replicas: :class:`gateway.services.leader.LeaderLease`).
            None: every round runs (a single gateway).
    """

    def __init__(
        self,
        name: str,
        interval_s: float,
        job: Callable[[], None],
        leader: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self._interval_s = interval_s
        self._job = job
        self._leader = leader
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (at most 5 s)."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                if self._leader is not None and not self._leader():
                    continue  # another replica runs it
                self._job()
            except Exception:
                log.exception("%s round failed", self.name)
