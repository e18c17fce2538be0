"""The station's grading worker: photos graded off the sort path, on their own thread.

The reactor hands each :class:`~edge.drivers.camera.Photo` to :meth:`PhotoGrader.submit`
and goes on; the worker stores the JPEG evidence, grades a valid frame
(:func:`edge.vision.grading.grade_frame`) and calls back with a :class:`GradedPhoto`. An
invalid photo (field case C9) is never graded and has no evidence: its result says
``no_photo`` and the policy's ``grade_without_photo`` applies. The thresholds are read
from a callable at each photo, so a policy pushed later applies to the next parcel.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2

from edge.drivers.camera import Photo
from edge.sorter.grading import GradingThresholds
from edge.vision.calibration import Calibration
from edge.vision.grading import BackgroundModel, GradeBackend, Grading, grade_frame
from edge.vision.photos import PhotoFile, PhotoStore

__all__ = ["NO_PHOTO", "GradedPhoto", "PhotoGrader", "grader_from_config"]

log = logging.getLogger(__name__)
NO_PHOTO = "no_photo"
PURGE_EVERY_S = 3600.0


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
        backend: the grading backend (None: the measures against the policy's limits).
    """

    def __init__(
        self,
        store: PhotoStore,
        calibration: Calibration,
        thresholds: Callable[[], GradingThresholds],
        to_utc: Callable[[float], datetime],
        background: BackgroundModel | None = None,
        grade: bool = True,
        backend: GradeBackend | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
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
            grading = grade_frame(
                photo.frame,
                self.calibration,
                self.thresholds(),
                self.background,
                backend=self.backend,
            )
            self.counters["graded"] += 1
        elapsed = (time.perf_counter() - started) * 1000.0
        self.last_grade_ms = round(elapsed, 1)
        return GradedPhoto(photo, grading, file, jpeg, elapsed)

    def _run(self) -> None:
        # No lower priority (nice) for this thread: it shares the GIL with the reactor and
        # the gate scheduler, so whenever a loaded CPU preempted it while it held the GIL,
        # they all waited for it (priority inversion: gate firings 150-300 ms late with two
        # busy processes beside the station, issue 20). OpenCV's work runs without the GIL;
        # the gate timer is kept apart by SCHED_FIFO (edge.scheduler), not by nice values.
        # One thread: on 320 px work images OpenCV's pool costs more than it gains, and
        # its workers would not carry this thread's nice value.
        cv2.setNumThreads(1)
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


def grader_from_config(
    vision: Any,
    data_dir: Path,
    thresholds: Callable[[], GradingThresholds],
    to_utc: Callable[[float], datetime],
) -> PhotoGrader:
    """The photo grader of a station's ``[vision]`` section (``edge.config.VisionSection``).

    Calibration from ``calibration`` (else ``mm_per_px``), the empty belt from
    ``background`` (a photo, or a folder of them: their per-pixel median), the backend by
    name (``measures`` or ``onnx`` with ``model``), photos under ``photo_dir`` (default
    ``<data_dir>/photos``).

    Raises:
        OSError: a background photo that cannot be read.
        ValueError: a bad calibration file or model.
    """
    from edge.vision.learned import load_backend

    cal = (
        Calibration.load(vision.calibration)
        if vision.calibration is not None
        else Calibration(vision.mm_per_px)
    )
    background = None
    if vision.background is not None:
        background = load_background(Path(vision.background))
    folder = vision.photo_dir or Path(data_dir) / "photos"
    store = PhotoStore(folder, vision.retention_days, vision.jpeg_quality)
    backend = load_backend(vision.backend, vision.model)
    return PhotoGrader(store, cal, thresholds, to_utc, background, vision.grade, backend)


def load_background(path: Path) -> BackgroundModel:
    """The empty belt from one photo or a folder of photos (``*.png``, ``*.jpg``).

    Raises:
        OSError: no photo, or one that cannot be read.
    """
    files = sorted(path.glob("*.png")) + sorted(path.glob("*.jpg")) if path.is_dir() else [path]
    if not files:
        raise OSError(f"no empty-belt photos in {path}")
    frames = []
    for f in files:
        image = cv2.imread(str(f))
        if image is None:
            raise OSError(f"cannot read background photo {f}")
        frames.append(image)
    try:
        return BackgroundModel(frames)
    except ValueError as exc:
        raise OSError(f"{path}: {exc}") from exc
