"""Camera interface: a photo of each parcel, fresh or explicitly invalid (field case C9).

A photo is only ever a frame taken after the parcel's trigger: never a frame left in the
capture buffer, one time-stamped before the trigger, an all-black frame or a repeat of the
previous frame (frozen camera). When no valid frame comes within the attempts allowed, the
:class:`Photo` is invalid with the reason, and the parcel is graded without a photo by
policy; a stale image is never passed on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["Camera", "FrameJudge", "FrameReject", "Photo", "PhotoCallback"]

FrameReject = Literal["read_failed", "before_trigger", "all_black", "same_as_previous"]
"""Why a frame was rejected: no frame from the device; captured before the trigger;
mean brightness at or below the black level; (nearly) identical to the previous frame."""


@dataclass(frozen=True)
class Photo:
    """The outcome of one triggered capture.

    Attributes:
        ok: True when ``frame`` is a valid fresh frame.
        t_trigger_ms: the trigger time (parcel at the camera), monotonic ms.
        t_frame_ms: capture time of ``frame``, monotonic ms, or None.
        frame: the image (BGR ``numpy`` array) when ``ok``, else None.
        reason: why the photo is invalid (the last frame's reject reason), or None.
        rejected: reject reasons of the frames read before the result, in order.
        tag: the caller's label for the trigger (e.g. the parcel id), or None.
    """

    ok: bool
    t_trigger_ms: float
    t_frame_ms: float | None = None
    frame: Any = field(default=None, repr=False, compare=False)
    reason: FrameReject | None = None
    rejected: tuple[FrameReject, ...] = ()
    tag: object = None


PhotoCallback = Callable[[Photo], None]
"""Receives each photo; called on the camera's worker thread."""


class FrameJudge:
    """Decides whether a frame may be a parcel's photo. Pure (numpy only).

    Args:
        black_level: a frame whose mean grey level (0-255) is at or below this is black.
        frozen_diff: a frame whose mean absolute difference to the previous frame (0-255)
            is at or below this is a repeat (0 accepts only bit-identical repeats as such).
    """

    def __init__(self, black_level: float = 8.0, frozen_diff: float = 0.5) -> None:
        self.black_level = black_level
        self.frozen_diff = frozen_diff

    def judge(
        self, frame: Any, t_frame_ms: float | None, t_trigger_ms: float, previous: Any
    ) -> FrameReject | None:
        """The reject reason of ``frame``, or None when it is a valid fresh frame."""
        import numpy as np

        if frame is None or t_frame_ms is None:
            return "read_failed"
        if t_frame_ms < t_trigger_ms:
            return "before_trigger"
        image = np.asarray(frame)
        if float(image.mean()) <= self.black_level:
            return "all_black"
        if previous is not None and np.shape(previous) == image.shape:
            diff = np.abs(image.astype(np.int16) - np.asarray(previous).astype(np.int16))
            if float(diff.mean()) <= self.frozen_diff:
                return "same_as_previous"
        return None


@runtime_checkable
class Camera(Protocol):
    """A parcel camera with a worker thread: ``trigger`` queues, ``on_photo`` delivers."""

    def self_test(self) -> dict[str, object]:
        """Open the device and read one frame; ``{"ok": bool, "detail": str}``; never raises."""
        ...

    def start(self, on_photo: PhotoCallback) -> None:
        """Start the worker thread."""
        ...

    def trigger(self, t_ms: float, tag: object = None) -> None:
        """Ask for a photo of whatever reaches the camera at monotonic time ``t_ms``."""
        ...

    def stop(self) -> None:
        """Stop the worker and release the device."""
        ...

    def status(self) -> dict[str, object]:
        """JSON-able health: ``state``, counters, ``last_error``."""
        ...
