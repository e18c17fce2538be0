"""Parcel camera on OpenCV (``opencv-python-headless``): triggered, fresh frames only (C9).

A capture at trigger time ``t``: first ``flush_frames`` frames are grabbed and dropped (the
capture keeps a small ring of buffered frames, which may predate the trigger), then frames
are read until one passes :class:`~edge.drivers.camera.FrameJudge` (taken at or after
``t``, not black, not a repeat of the previous frame), at most ``max_attempts``. After
``reopen_after_failures`` captures in a row without a valid photo (or a read failure) the
device is released and opened again.

Frame time (``timestamps``): ``"device"`` uses ``CAP_PROP_POS_MSEC`` plus
``device_clock_offset_ms``: for the V4L2 backend that is the kernel's buffer timestamp
(CLOCK_MONOTONIC, so the offset is 0), for a video file the media time (the simulator
passes the monotonic time its recording starts at). ``"read"`` stamps a frame when
``read()`` returns; then only flushing protects against buffered frames.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import cv2

from edge.clock import monotonic_ms
from edge.drivers.camera import FrameJudge, FrameReject, Photo, PhotoCallback

__all__ = ["APIS", "OpencvCamera"]

logger = logging.getLogger(__name__)

APIS: dict[str, int] = {
    "any": cv2.CAP_ANY,
    "v4l2": cv2.CAP_V4L2,
    "ffmpeg": cv2.CAP_FFMPEG,
    "images": cv2.CAP_IMAGES,
}
"""Capture API names accepted in the config, mapped to OpenCV's ``CAP_*`` constants."""


class OpencvCamera:
    """OpenCV capture device. Implements :class:`~edge.drivers.camera.Camera`.

    Args:
        source: device path (``/dev/video0``), index (``"0"``) or video file / pattern.
        api: key of :data:`APIS`.
        width, height: requested frame size in pixels, or None for the device default.
        flush_frames: frames grabbed and dropped at each trigger.
        max_attempts: frames read at most per trigger after the flush.
        timestamps: ``"device"`` or ``"read"`` (see module doc).
        device_clock_offset_ms: added to ``CAP_PROP_POS_MSEC`` in ``"device"`` mode, ms.
        black_level, frozen_diff: see :class:`~edge.drivers.camera.FrameJudge`.
        reopen_after_failures: failed captures in a row before the device is reopened.
        clock: monotonic time source, ms.
    """

    def __init__(
        self,
        source: str,
        api: str = "v4l2",
        width: int | None = None,
        height: int | None = None,
        flush_frames: int = 2,
        max_attempts: int = 5,
        timestamps: str = "device",
        device_clock_offset_ms: float = 0.0,
        black_level: float = 8.0,
        frozen_diff: float = 0.5,
        reopen_after_failures: int = 3,
        clock: Callable[[], float] = monotonic_ms,
    ) -> None:
        if api not in APIS:
            raise ValueError(f"api must be one of {sorted(APIS)}, got {api!r}")
        if timestamps not in ("device", "read"):
            raise ValueError("timestamps must be 'device' or 'read'")
        self.source, self.api = source, api
        self.width, self.height = width, height
        self.flush_frames, self.max_attempts = flush_frames, max_attempts
        self.timestamps = timestamps
        self.device_clock_offset_ms = device_clock_offset_ms
        self.judge = FrameJudge(black_level, frozen_diff)
        self.reopen_after_failures = reopen_after_failures
        self.clock = clock
        self._cap: Any = None
        self._previous: Any = None
        self._failures = 0
        self._queue: queue.Queue[tuple[float, object] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._on_photo: PhotoCallback | None = None
        self._state = "stopped"
        self.last_error: str | None = None
        self.counters: dict[str, int] = {
            "triggers": 0,
            "photos": 0,
            "invalid_photos": 0,
            "reopens": 0,
            "opens": 0,
        }
        self.rejects: dict[str, int] = {}

    # -- device ----------------------------------------------------------------------
    def _open(self) -> None:
        source: str | int = int(self.source) if self.source.isdigit() else self.source
        cap = cv2.VideoCapture(source, APIS[self.api])
        if not cap.isOpened():
            cap.release()
            raise OSError(f"cannot open camera {self.source!r} with api {self.api}")
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        with contextlib.suppress(Exception):
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer stale frames where supported
        self._cap = cap
        self._previous = None
        self.counters["opens"] += 1

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            with contextlib.suppress(Exception):
                cap.release()

    def _reopen(self) -> None:
        self.counters["reopens"] += 1
        logger.warning("camera: reopening %s after repeated failures", self.source)
        self._release()
        try:
            self._open()
        except OSError as exc:
            self.last_error = str(exc)
            self._state = "degraded"

    def self_test(self) -> dict[str, object]:
        """Open the device and read one frame. Never raises."""
        try:
            if self._cap is None:
                self._open()
            ok, frame = self._cap.read()
        except Exception as exc:
            self._state, self.last_error = "failed", f"open failed: {exc}"
            return {"ok": False, "detail": self.last_error}
        if not ok or frame is None:
            self._state, self.last_error = "failed", "opened but no frame"
            return {"ok": False, "detail": self.last_error}
        self._previous = frame
        self._state = "ok"
        h, w = frame.shape[:2]
        return {"ok": True, "detail": f"{w}x{h} frames from {self.source}"}

    # -- capture ---------------------------------------------------------------------
    def _read(self) -> tuple[Any, float | None]:
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None, None
        if self.timestamps == "read":
            return frame, self.clock()
        pos_ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
        return frame, round(pos_ms + self.device_clock_offset_ms, 3)  # to the microsecond

    def capture(self, t_trigger_ms: float, tag: object = None) -> Photo:
        """Take the photo for a trigger at ``t_trigger_ms`` (blocking; worker thread).

        Returns a valid :class:`Photo`, or an invalid one with the reason; never raises.
        """
        self.counters["triggers"] += 1
        rejected: list[FrameReject] = []
        photo: Photo | None = None
        try:
            if self._cap is None:
                self._open()
            for _ in range(self.flush_frames):
                self._cap.grab()
            for _ in range(self.max_attempts):
                frame, t_frame = self._read()
                reason = self.judge.judge(frame, t_frame, t_trigger_ms, self._previous)
                if frame is not None:
                    self._previous = frame
                if reason is None:
                    photo = Photo(True, t_trigger_ms, t_frame, frame, None, tuple(rejected), tag)
                    break
                rejected.append(reason)
                self.rejects[reason] = self.rejects.get(reason, 0) + 1
                if reason == "read_failed":
                    break
        except Exception as exc:
            self.last_error = f"capture failed: {exc}"
            rejected.append("read_failed")
        if photo is not None:
            self.counters["photos"] += 1
            self._failures = 0
            self._state = "ok"
            return photo
        self.counters["invalid_photos"] += 1
        self._failures += 1
        last = rejected[-1] if rejected else "read_failed"
        self.last_error = self.last_error if last == "read_failed" else f"invalid photo: {last}"
        self._state = "degraded"
        if self._failures >= self.reopen_after_failures or last == "read_failed":
            self._failures = 0
            self._reopen()
        return Photo(False, t_trigger_ms, None, None, last, tuple(rejected[:-1]), tag)

    # -- worker ----------------------------------------------------------------------
    def start(self, on_photo: PhotoCallback) -> None:
        """Start the worker thread that serves :meth:`trigger`."""
        if self._thread is not None:
            raise RuntimeError("camera already started")
        self._on_photo = on_photo
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def trigger(self, t_ms: float, tag: object = None) -> None:
        """Queue a capture for a parcel at the camera at monotonic ``t_ms``."""
        self._queue.put((t_ms, tag))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            t_ms, tag = item
            wait_s = (t_ms - self.clock()) / 1000.0
            if wait_s > 0:
                threading.Event().wait(wait_s)
            photo = self.capture(t_ms, tag)
            if self._on_photo is not None:
                try:
                    self._on_photo(photo)
                except Exception:
                    logger.exception("camera photo callback raised")

    def stop(self) -> None:
        """Stop the worker and release the device."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=2.0)
        self._release()
        self._state = "stopped"

    def status(self) -> dict[str, object]:
        """JSON-able health: ``state``, ``source``, counters, ``rejects`` by reason."""
        return {
            "state": self._state,
            "backend": "opencv",
            "source": self.source,
            **self.counters,
            "rejects": dict(self.rejects),
            "last_error": self.last_error,
        }
