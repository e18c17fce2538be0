"""Debouncing of a binary input such as a photo-eye.

A level is accepted once it has held for ``stable_ms``; the accepted transition is
timestamped at the first raw edge of the burst that led to it, so bounce does not shorten or
lengthen the measured parcel (``../shared/cases`` C7).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Edge:
    """An accepted (debounced) transition: ``level`` True = blocked, at ``t_ms``."""

    t_ms: float
    level: bool


class Debouncer:
    """Stable-for-N-milliseconds debouncer.

    Args:
        stable_ms: how long (ms) a raw level must hold before it is accepted; > 0.
        initial: the accepted level at start (False = clear).

    Raises:
        ValueError: when ``stable_ms`` is not positive.
    """

    def __init__(self, stable_ms: float, initial: bool = False) -> None:
        if stable_ms <= 0:
            raise ValueError(f"stable_ms must be > 0, got {stable_ms}")
        self.stable_ms = stable_ms
        self.level = initial
        self._raw = initial
        self._raw_since_ms: float | None = None
        self._burst_start_ms: float | None = None

    def feed(self, t_ms: float, raw: bool) -> list[Edge]:
        """Record a raw level change at ``t_ms``; returns transitions that became stable first."""
        accepted = self.poll(t_ms)
        if raw != self._raw:
            self._raw = raw
            self._raw_since_ms = t_ms
            if self._burst_start_ms is None:
                self._burst_start_ms = t_ms
        return accepted

    def poll(self, t_ms: float) -> list[Edge]:
        """Return the transition that became stable by ``t_ms``, if any."""
        # Same expression as next_due_ms(), so a poll at that time always accepts.
        if self._raw_since_ms is None or t_ms < self._raw_since_ms + self.stable_ms:
            return []
        start = self._burst_start_ms if self._burst_start_ms is not None else self._raw_since_ms
        self._raw_since_ms = None
        self._burst_start_ms = None
        if self._raw == self.level:
            return []  # bounced back to the accepted level and stayed there
        self.level = self._raw
        return [Edge(start, self.level)]

    def next_due_ms(self) -> float | None:
        """Time (ms) at which the current raw level will have been stable, or None."""
        if self._raw_since_ms is None:
            return None
        return self._raw_since_ms + self.stable_ms
