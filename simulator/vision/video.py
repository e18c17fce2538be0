"""The simulator camera's video: generated parcel photos for OpenCV's capture (MJPG AVI).

:func:`write_parcel_video`: every frame shows an undamaged parcel without a label (true
grade A) at 1 mm/px, so a simulated station grading by camera restocks its known parcels
under the shipped policy. A few distinct parcels are rendered
(:func:`simulator.vision.generator.render`) and repeated with fresh sensor noise, so no two
consecutive frames are alike (the driver rejects a repeated frame as a frozen camera,
field case C9).

:func:`write_photo_video`: one photo per parcel, in induct order, made once the run's RMA
numbers exist: each shows the grade the scenario planned for the parcel (A intact, B minor
damage, C major damage, or a photo the grader must abstain on: glare, or another object
beside the parcel) and carries the parcel's label (its RMA number as Code 128, and the
product's GTIN as GS1-128), which the camera reads. Each photo is checked on the video
itself, decoded as the station decodes it, with the shipped grader
(:func:`edge.vision.grading.grade_frame`, the default thresholds at 1 mm/px): a photo the
grader would grade otherwise, or whose codes it would not read, is drawn again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.sorter.grading import GradingThresholds
from edge.vision.calibration import Calibration
from edge.vision.grading import UNKNOWN, grade_frame
from simulator.vision.generator import ParcelSpec, random_spec, render, render_empty

__all__ = [
    "FRAMES_PER_PARCEL",
    "PhotoPlan",
    "photo_spec",
    "write_parcel_video",
    "write_photo_video",
]

FRAMES_PER_PARCEL = 3
"""Frames the camera reads per trigger with the default config: 2 flushed + the photo."""

REDRAWS = 12
"""Photos drawn at most per parcel until the grader sees the planned grade."""


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
    h, w = bases[0].shape[:2]
    frames_out = []
    for i in range(frames):
        noise = rng.integers(-3, 4, (h, w, 1), dtype=np.int16)
        frames_out.append(np.clip(bases[i % distinct] + noise, 0, 255).astype(np.uint8))
    return _write(path, frames_out, fps)


def _write(path: Path, frames: Sequence[Any], fps: float) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot write {path}")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    return path


def _read(path: Path) -> list[Any]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    out: list[Any] = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                return out
            out.append(frame)
    finally:
        cap.release()


PhotoPlan = tuple[str, str | None, str | None]
"""One parcel's photo: (grade ``A`` / ``B`` / ``C`` / ``unreadable``, label text or None,
GTIN-14 printed under it or None)."""


def photo_spec(
    grade: str, label: str | None, rng: np.random.Generator, gtin: str | None = None
) -> ParcelSpec:
    """A parcel whose photo shows ``grade`` (A, B, C or ``unreadable``), with ``label``.

    Boxes of 440..520 x 200..280 mm (a run's RMA numbers make a long Code 128), near the
    image centre; ``gtin``: printed as ``(01)`` GS1-128 under the label's code;
    ``unreadable``: an intact box under glare or with another object beside it.
    """
    base = random_spec(rng, 0, label="-", conditions=False)
    damage = base.damage
    if grade == "A" or grade == "unreadable":
        damage = None
    elif damage is None:
        damage = "tear"
    unreadable = grade == "unreadable"
    glare = bool(rng.random() < 0.5)  # else another object beside the box
    return ParcelSpec(
        length_mm=float(rng.uniform(440, 520)),
        width_mm=float(rng.uniform(200, 280)),
        angle_deg=float(rng.uniform(-8, 8)),
        colour=base.colour,
        centre_mm=(float(rng.uniform(-10, 10)), float(rng.uniform(-10, 10))),
        gain=base.gain,
        blur_px=min(base.blur_px, 0.6),
        label=label,
        product_code=None if gtin is None else f"(01){gtin}",
        damage=damage,
        severity="major" if grade == "C" else "minor",
        seed=base.seed,
        glare=unreadable and glare,
        clutter=unreadable and not glare,
    )


def _fits(frame: Any, photo: PhotoPlan, thresholds: GradingThresholds) -> bool:
    """The grader grades ``frame`` as planned and reads every code on its label."""
    grade, label, gtin = photo
    g = grade_frame(frame, Calibration(1.0), thresholds)
    want = {f"]C0{label}"} if label is not None else set()
    if gtin is not None:
        want.add(f"]C101{gtin}")
    return g.grade == (UNKNOWN if grade == "unreadable" else grade) and want <= set(
        g.measures.barcodes
    )


def write_photo_video(
    path: Path,
    photos: Sequence[PhotoPlan],
    seed: int = 8,
    fps: float = 10.0,
    thresholds: GradingThresholds | None = None,
) -> Path:
    """Write the camera video of a run: one photo per parcel, in induct order.

    Args:
        path: the AVI file to write.
        photos: per parcel in induct order, its :data:`PhotoPlan`.
        seed: draws the parcels.
        fps: frame rate written (the station reads frames as fast as it wants).
        thresholds: the grader's thresholds the photos are checked with (default: the
            shipped ones).

    Frame 0 is the empty belt (the camera's self-test reads it); parcel k (1-based) fills
    frames 3k-1 .. 3k+1 (:data:`FRAMES_PER_PARCEL`), so the photo the camera takes for
    its k-th trigger (frame 3k after the self-test and two flushed frames) is parcel k's,
    one frame early or late included. Consecutive photos differ (no frozen-camera
    rejects); 3 frames of the empty belt end the video.

    Raises:
        RuntimeError: no photo of a parcel in :data:`REDRAWS` draws that the grader
            grades as planned (and whose codes it reads).
        OSError: the video cannot be written.
    """
    t = thresholds or GradingThresholds()
    rng = np.random.default_rng(seed)
    images = [_drawn(photo, rng, t) for photo in photos]
    empty = render_empty(ParcelSpec(label=None))
    bad: list[int] = []
    for _ in range(REDRAWS):
        frames = [empty]
        for image in images:
            frames += [image] * FRAMES_PER_PARCEL
        frames += [empty] * FRAMES_PER_PARCEL
        _write(path, frames, fps)
        decoded = _read(path)
        bad = [
            k
            for k, photo in enumerate(photos)
            if not _fits(decoded[FRAMES_PER_PARCEL * (k + 1)], photo, t)
        ]
        if not bad:
            return path
        for k in bad:  # the video's own coding changed the verdict: another photo
            images[k] = _drawn(photos[k], rng, t)
    raise RuntimeError(f"no photo graded as planned for parcels {[k + 1 for k in bad]}")


def _drawn(photo: PhotoPlan, rng: np.random.Generator, t: GradingThresholds) -> Any:
    """A photo for ``photo`` the grader grades as planned through JPEG (as the video).

    Raises:
        RuntimeError: none in :data:`REDRAWS` draws.
    """
    for _ in range(REDRAWS):
        image = render(photo_spec(photo[0], photo[1], rng, photo[2]))
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if ok and _fits(cv2.imdecode(buf, cv2.IMREAD_COLOR), photo, t):
            return image
    raise RuntimeError(f"no photo the grader grades {photo[0]} with label {photo[1]!r}")
