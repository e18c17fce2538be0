"""Grading pipeline: ms per 640x480 frame, beside JPEG-decoding + grey-converting them.

The frames are generated parcels (``simulator.vision.generator``, mixed grades, labels with
Code 128, the conditions real photos have) stored as JPEG, as the camera and the photo
store deliver them. Ours: decode + the whole :func:`edge.vision.grading.grade_frame`
(belt checks, segmentation, box fit, outline profiles, damage, label, zxing-cpp decode,
abstention, calibrated grade). Baseline: ``cv2.imdecode`` + ``cv2.cvtColor`` to grey of
the same frames in the same run (the least any pipeline does with a frame). Both run with
OpenCV single-threaded, as the station's grader thread does.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from benchmarks import Figure
from edge.sorter.grading import GradingThresholds
from edge.vision.calibration import Calibration
from edge.vision.grading import grade_frame
from simulator.vision.generator import random_spec, render

FRAMES = 40
ROUNDS = 3


def _jpegs() -> list[bytes]:
    rng = np.random.default_rng(77)
    out = []
    for i in range(FRAMES):
        ok, buf = cv2.imencode(".jpg", render(random_spec(rng, i)), [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        out.append(buf.tobytes())
    return out


def _best_ms_per_frame(fn: object, jpegs: list[bytes]) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for data in jpegs:
            fn(data)  # type: ignore[operator]
        best = min(best, (time.perf_counter() - t0) * 1000.0 / len(jpegs))
    return best


def run() -> list[Figure]:
    """Both figures, ms per frame (best of 3 rounds over 40 frames)."""
    cv2.setNumThreads(1)
    jpegs = _jpegs()
    cal, thresholds = Calibration(1.0), GradingThresholds()

    def baseline(data: bytes) -> object:
        frame: Any = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)

    def ours(data: bytes) -> object:
        frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return grade_frame(frame, cal, thresholds)

    base_ms = _best_ms_per_frame(baseline, jpegs)
    ours_ms = _best_ms_per_frame(ours, jpegs)
    return [
        Figure(
            "grading pipeline, ms per 640x480 frame",
            ours_ms,
            "ms",
            "JPEG decode + grey convert",
            base_ms,
            higher_is_better=False,
        )
    ]
