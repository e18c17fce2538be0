"""Belt encoder counts to the core: a sampler thread, one typed input per sample.

Every ``period_ms`` (station-clock ms; a :class:`~edge.clock.ScaledClock` shortens the real
wait) the sampler reads the encoder's cumulative count and submits an
:class:`~edge.station.inputs.EncoderCount`; the core's odometer turns counts into belt
position and speed (a sample with no new count is a standing belt), and the core re-times
the pending gate commands from position (``SorterCore.advance``). 25 ms at 0.5 mm per
count and 1 m/s is 50 counts a sample: a 2 % speed resolution, 40 inputs a second.

A sample is stamped with the time of its last counted edge when the encoder gives it
(:class:`~edge.drivers.gpio.EdgeStampedEncoder`: the pin factory's edge time, issue 20), so
a sampler thread delayed by load does not make the belt look faster or slower than it is;
a sample with no new count (or whose edge is not after the previous sample) is stamped
with the clock's now.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edge.clock import clock_rate
from edge.drivers.gpio import BeltEncoder, EdgeStampedEncoder
from edge.station.inputs import EncoderCount, StationInput

__all__ = ["EncoderSampler"]

log = logging.getLogger(__name__)


class EncoderSampler:
    """Samples ``encoder.pulses`` every ``period_ms`` and submits it to the reactor.

    Args:
        encoder: the belt encoder.
        submit: hands an input to the reactor (thread-safe).
        clock: the station's monotonic ms clock (each sample's ``t_ms``).
        period_ms: sampling period, station ms (1..1000).

    Raises:
        ValueError: for a period outside 1..1000 ms.
    """

    def __init__(
        self,
        encoder: BeltEncoder,
        submit: Callable[[StationInput], None],
        clock: Callable[[], float],
        period_ms: float = 25.0,
    ) -> None:
        if not 1.0 <= period_ms <= 1000.0:
            raise ValueError(f"period_ms must be 1..1000, not {period_ms}")
        self.encoder = encoder
        self.submit = submit
        self.clock = clock
        self.period_ms = period_ms
        self.samples = 0
        self._last: tuple[float, int] | None = None  # (t_ms, count) last submitted
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sampling (a daemon thread), with one sample at once."""
        self.sample()
        self._thread = threading.Thread(target=self._run, name="encoder", daemon=True)
        self._thread.start()

    def sample(self) -> None:
        """Submit the count now, stamped with its last edge's time when known (module doc)."""
        now = self.clock()
        t_ms, count = now, self.encoder.pulses
        if isinstance(self.encoder, EdgeStampedEncoder):
            t_edge, count = self.encoder.sample()
            last = self._last
            if t_edge is not None and last is not None and count != last[1]:
                t_ms = t_edge if last[0] < t_edge <= now else now
        self._last = (t_ms, count)
        self.samples += 1
        self.submit(EncoderCount(t_ms, count))

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        wait_s = self.period_ms / 1e3 / clock_rate(self.clock)
        while not self._stop.wait(wait_s):
            try:
                self.sample()
            except Exception:  # a flaky read must not end sampling
                log.exception("encoder sample failed")
