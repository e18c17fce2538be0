"""Synthetic camera frames written to a real video file, for OpenCV's own capture code.

:func:`write_video` encodes frames with ``cv2.VideoWriter`` (Motion-JPEG in AVI, which the
FFMPEG backend of ``opencv-python-headless`` reads back); the camera driver then opens the
file with ``cv2.VideoCapture`` as it would open ``/dev/video0``. :func:`scene` makes
distinct, textured frames; :data:`BLACK` an all-black one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["BLACK", "SIZE", "scene", "write_video"]

SIZE = (96, 64)  # width, height
BLACK = "black"


def scene(index: int) -> Any:
    """A distinct, deterministic BGR frame (a noisy gradient seeded by ``index``)."""
    rng = np.random.default_rng(index)
    w, h = SIZE
    base = np.linspace(40, 200, w, dtype=np.float32)[None, :, None]
    frame = base + rng.normal(0, 20, (h, w, 3)) + (index * 13) % 40
    return np.clip(frame, 0, 255).astype(np.uint8)


def write_video(path: Path, frames: Sequence[int | str], fps: float = 10.0) -> Path:
    """Write frames to ``path`` (AVI, MJPG); an int is :func:`scene` n, ``"black"`` black.

    Repeating an int repeats the identical frame (a frozen camera).
    """
    w, h = SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot write {path}")
    try:
        for item in frames:
            writer.write(np.zeros((h, w, 3), np.uint8) if item == BLACK else scene(int(item)))
    finally:
        writer.release()
    return path
