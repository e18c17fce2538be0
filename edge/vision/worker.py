"""The station's grading worker: photos graded off the sort path, on their own thread.

The reactor hands each :class:`~edge.drivers.camera.Photo` to :meth:`PhotoGrader.submit`
and goes on; the worker stores the JPEG evidence, grades a valid frame
(:func:`edge.vision.grading.grade_frame`) and calls back with a :class:`GradedPhoto`. An
invalid photo (field case C9) is never graded and has no evidence: its result says
``no_photo`` and the policy's ``grade_without_photo`` applies. The thresholds are read
from a callable at each photo, so a policy pushed later applies to the next parcel.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from edge.drivers.camera import Photo
from edge.sorter.policy import GradingThresholds
from edge.vision.calibration import Calibration
from edge.vision.grading import BackgroundModel, Grading, grade_frame
from edge.vision.photos import PhotoFile, PhotoStore

__all__ = ["NO_PHOTO", "GradedPhoto", "PhotoGrader"]

log = logging.getLogger(__name__)
NO_PHOTO = "no_photo"
PURGE_EVERY_S = 3600.0
NICE = 10


@dataclass(frozen=True)
class GradedPhoto:
    """A photo's outcome.

    Attributes:
        photo: the camera's photo (``photo.tag``: the trigger's tag).
        grading: the grade, or None when there was no valid photo or grading is off.
        file: the stored JPEG, or None. jpeg: its bytes (for the upload), or None.
        grade_ms: time spent grading, ms.
    """

    photo: Photo
    grading: Grading | None
    file: PhotoFile | None
    jpeg: bytes | None = None
    grade_ms: float = 0.0


class PhotoGrader:
    """Grades photos on a worker thread.

    Args:
        store: where the JPEG evidence goes.
        calibration: px to mm.
        thresholds: returns the current policy's grading thresholds.
        to_utc: maps a monotonic ms time to UTC (the photo's ``taken_at``).
        background: empty-belt model, or None (the frame border is used).
        grade: False to keep photos without grading.
    """

    def __init__(
        self,
        store: PhotoStore,
        calibration: Calibration,
        thresholds: Callable[[], GradingThresholds],
        to_utc: Callable[[float], datetime],
        background: BackgroundModel | None = None,
        grade: bool = True,
    ) -> None:
        self.store = store
        self.calibration = calibration
        self.thresholds = thresholds
        self.to_utc = to_utc
        self.background = background
        self.grade = grade
        self._queue: queue.Queue[Photo | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._on_result: Callable[[GradedPhoto], None] | None = None
        self._last_purge = float("-inf")
        self.counters = {"graded": 0, "no_photo": 0, "errors": 0}
        self.last_grade_ms = 0.0
        self.last_error: str | None = None

    def start(self, on_result: Callable[[GradedPhoto], None]) -> None:
        """Start the worker thread."""
        self._on_result = on_result
        self._thread = threading.Thread(target=self._run, name="grader", daemon=True)
        self._thread.start()

    def submit(self, photo: Photo) -> None:
        """Queue a photo (any thread; returns at once)."""
        self._queue.put(photo)

    def stop(self) -> None:
        """Stop the worker (photos still queued are dropped)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=5.0)

    def process(self, photo: Photo) -> GradedPhoto:
        """Store and grade one photo (the worker's step; callable directly in tests)."""
        if not photo.ok or photo.frame is None:
            self.counters["no_photo"] += 1
            return GradedPhoto(photo, None, None)
        t_ms = photo.t_frame_ms if photo.t_frame_ms is not None else photo.t_trigger_ms
        file, jpeg = self.store.save(photo.frame, self.to_utc(t_ms))
        grading = None
        started = time.perf_counter()
        if self.grade:
            grading = grade_frame(photo.frame, self.calibration, self.thresholds(), self.background)
            self.counters["graded"] += 1
        elapsed = (time.perf_counter() - started) * 1000.0
        self.last_grade_ms = round(elapsed, 1)
        return GradedPhoto(photo, grading, file, jpeg, elapsed)

    def _run(self) -> None:
        # Lower this thread's CPU priority (Linux: per-thread nice) so grading never
        # competes with the reactor, scheduler and drivers on a busy Pi.
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        while True:
            photo = self._queue.get()
            if photo is None:
                return
            try:
                result = self.process(photo)
            except Exception as exc:
                self.counters["errors"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("grading failed")
                result = GradedPhoto(photo, None, None)
            if self._on_result is not None:
                self._on_result(result)
            now = time.monotonic()
            if now - self._last_purge >= PURGE_EVERY_S:
                self._last_purge = now
                try:
                    self.store.purge()
                except OSError as exc:
                    log.warning("photo purge failed: %s", exc)

    def status(self) -> dict[str, object]:
        """JSON-able state: counters, last grading time (ms), photos stored and purged."""
        return {
            "state": "ok" if self._thread is not None else "stopped",
            **self.counters,
            **self.store.counters,
            "last_grade_ms": self.last_grade_ms,
            "last_error": self.last_error,
        }
