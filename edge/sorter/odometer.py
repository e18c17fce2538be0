"""Belt position over time: from encoder counts, or from belt speed and run/stop state.

The odometer is a piecewise-linear map from monotonic time (ms) to belt travel (mm since
start). Each segment starts at ``(t_ms, pos_mm)`` and moves at ``speed_mm_s`` (0 while the
belt is stopped). With an encoder, every count sample starts a new segment whose speed is
the one measured over the last sample interval; without one, segments change only when the
core stops or runs the belt. Positions in the future are extrapolated from the last
segment; :meth:`time_at` returns None when the belt is not moving (the time is unknown).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """From ``t_ms`` on, the belt is at ``pos_mm`` and moves at ``speed_mm_s``."""

    t_ms: float
    pos_mm: float
    speed_mm_s: float


class Odometer:
    """Belt travel (mm) as a function of time (ms).

    Args:
        speed_mm_s: nominal belt speed, mm/s (> 0); used until encoder samples say otherwise.
        mm_per_count: belt travel per encoder count, mm, or None without an encoder.
        history: how many segments to keep for looking up past positions.
    """

    def __init__(
        self, speed_mm_s: float, mm_per_count: float | None = None, history: int = 2048
    ) -> None:
        self.nominal_speed_mm_s = speed_mm_s
        self.mm_per_count = mm_per_count
        self._history = history
        self._segments: list[Segment] = [Segment(float("-inf"), 0.0, speed_mm_s)]
        self._starts: list[float] = [float("-inf")]
        self._last_count: tuple[float, int] | None = None
        self._offset = 0.0
        self.running = True

    # -- inputs -----------------------------------------------------------------------
    def on_count(self, t_ms: float, count: int) -> None:
        """An encoder sample: ``count`` (cumulative, may wrap never) at ``t_ms``.

        Raises:
            ValueError: without an encoder configured.
        """
        if self.mm_per_count is None:
            raise ValueError("no encoder configured ([encoder] mm_per_pulse)")
        pos = count * self.mm_per_count
        if self._last_count is None:
            # First sample: anchor the count to the position the belt has now.
            self._offset = self.position_mm(t_ms) - pos
            speed = self.nominal_speed_mm_s if self.running else 0.0
        else:
            t_prev, c_prev = self._last_count
            dt = t_ms - t_prev
            speed = (count - c_prev) * self.mm_per_count * 1000.0 / dt if dt > 0 else 0.0
        self._last_count = (t_ms, count)
        self._push(Segment(t_ms, pos + self._offset, max(0.0, speed)))

    def set_running(self, t_ms: float, running: bool) -> None:
        """The core stopped (False) or restarted (True) the belt drive at ``t_ms``."""
        if running == self.running:
            return
        self.running = running
        speed = self.nominal_speed_mm_s if running else 0.0
        if self.mm_per_count is not None and self._last_count is not None and running:
            return  # the encoder will report the motion
        self._push(Segment(t_ms, self.position_mm(t_ms), speed))

    # -- queries ----------------------------------------------------------------------
    def position_mm(self, t_ms: float) -> float:
        """Belt travel (mm) at ``t_ms`` (interpolated, or extrapolated past the last sample)."""
        i = bisect.bisect_right(self._starts, t_ms) - 1
        seg = self._segments[max(i, 0)]
        if seg.t_ms == float("-inf"):
            return t_ms * seg.speed_mm_s / 1000.0
        return seg.pos_mm + (t_ms - seg.t_ms) * seg.speed_mm_s / 1000.0

    def time_at(self, pos_mm: float, not_before_ms: float) -> float | None:
        """Earliest time >= ``not_before_ms`` at which the belt reaches ``pos_mm``.

        Predicted from the current segment; None while the belt is not moving and the
        position has not been reached.
        """
        now_pos = self.position_mm(not_before_ms)
        if pos_mm <= now_pos:
            # Already reached: find when, within the kept history.
            return self._past_time_at(pos_mm, not_before_ms)
        seg = self._segments[-1]
        if seg.speed_mm_s <= 0:
            return None
        start_t = max(not_before_ms, seg.t_ms)
        return start_t + (pos_mm - self.position_mm(start_t)) * 1000.0 / seg.speed_mm_s

    def speed_mm_s(self) -> float:
        """Current belt speed estimate, mm/s."""
        return self._segments[-1].speed_mm_s

    # -- internals --------------------------------------------------------------------
    def _push(self, seg: Segment) -> None:
        if seg.t_ms < self._segments[-1].t_ms:
            return  # out-of-order sample: ignore rather than rewrite history
        self._segments.append(seg)
        self._starts.append(seg.t_ms)
        if len(self._segments) > self._history:
            del self._segments[1:2]
            del self._starts[1:2]

    def _past_time_at(self, pos_mm: float, upto_ms: float) -> float:
        for seg in reversed(self._segments):
            if seg.t_ms == float("-inf"):
                return pos_mm * 1000.0 / seg.speed_mm_s if seg.speed_mm_s > 0 else upto_ms
            start_pos = seg.pos_mm
            if pos_mm >= start_pos:
                if seg.speed_mm_s <= 0:
                    return seg.t_ms
                return min(upto_ms, seg.t_ms + (pos_mm - start_pos) * 1000.0 / seg.speed_mm_s)
        return upto_ms
