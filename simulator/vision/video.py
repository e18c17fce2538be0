"""The simulator camera's video: generated parcel photos for OpenCV's capture (MJPG AVI).

Every frame shows an undamaged, labelled parcel (true grade A) at 1 mm/px, so a simulated
station grading by camera restocks its known parcels under the shipped policy. A few
distinct parcels are rendered (:func:`simulator.vision.generator.render`) and repeated
with fresh sensor noise, so no two consecutive frames are alike (the driver rejects a
repeated frame as a frozen camera, field case C9).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from simulator.vision.generator import ParcelSpec, random_spec, render

__all__ = ["write_parcel_video"]


def write_parcel_video(
    path: Path, frames: int, seed: int = 8, distinct: int = 6, fps: float = 10.0
) -> Path:
    """Write ``frames`` grade-A parcel frames (640x480) to ``path``; returns ``path``."""
    rng = np.random.default_rng(seed)
    bases = []
    for i in range(distinct):
        spec = random_spec(rng, i)
        spec = ParcelSpec(
            length_mm=spec.length_mm,
            width_mm=spec.width_mm,
            angle_deg=spec.angle_deg,
            colour=spec.colour,
            label=None,
            seed=spec.seed,
        )
        bases.append(render(spec).astype(np.int16))
    w, h = 640, 480
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot write {path}")
    try:
        for i in range(frames):
            noise = rng.integers(-3, 4, (h, w, 1), dtype=np.int16)
            writer.write(np.clip(bases[i % distinct] + noise, 0, 255).astype(np.uint8))
    finally:
        writer.release()
    return path
