"""A learned grading backend: a small image classifier run by ONNX Runtime.

Behind the same interface as the measures backend (:class:`edge.vision.grading.GradeBackend`):
the photo is measured and the abstention checks run as always (a learned model never
grades a photo the grader was not built for); only the last step, from the parcel's top
face to a grade, is the model's. Chosen in the station config by name
(``[vision] backend = "onnx"``, ``model = "grader.onnx"``); no weights ship with the
product.

Model contract (checked when loading; ONNX Runtime API: ``onnxruntime.InferenceSession``):

* one input, float32 ``[1, C, H, W]`` (C 1 = grey or 3 = BGR, H and W fixed), the top
  face warped upright to H x W, values 0..1;
* one output, float32 ``[1, K]``: a score per label; the labels are the model's metadata
  property ``labels`` (comma-separated, default ``A,B,C``; any other label, e.g.
  ``unknown``, means abstain); metadata ``scores = logits`` asks for a softmax, otherwise
  the scores are probabilities.

The raw score is the winning label's probability; the policy's confidence curve for
backend ``onnx`` calibrates it (``python -m edge.vision.site tune --backend onnx``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.sorter.grading import GradingThresholds
from edge.vision.grading import Measures

__all__ = ["OnnxBackend", "load_backend"]


class OnnxBackend:
    """Grades the top face with an ONNX classifier (see the module doc).

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (1: grading stays off the sort path's cores).

    Raises:
        ImportError: onnxruntime is not installed (the ``learned`` extra).
        ValueError: the file is not a model of the contract above.
    """

    name = "onnx"

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: not an ONNX model ({exc})") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{path}: a grading model has one input and one output")
        shape = inputs[0].shape
        if (
            len(shape) != 4
            or inputs[0].type != "tensor(float)"
            or not all(isinstance(d, int) for d in shape[1:])
            or shape[1] not in (1, 3)
        ):
            raise ValueError(f"{path}: input must be float [1, 1|3, H, W], not {shape}")
        self.input = inputs[0].name
        self.channels, self.height, self.width = int(shape[1]), int(shape[2]), int(shape[3])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.labels = tuple(s.strip() for s in meta.get("labels", "A,B,C").split(","))
        self.logits = meta.get("scores", "probabilities") == "logits"
        out_shape = outputs[0].shape
        if len(out_shape) != 2 or (
            isinstance(out_shape[1], int) and out_shape[1] != len(self.labels)
        ):
            raise ValueError(f"{path}: output must be [1, {len(self.labels)}], not {out_shape}")

    def crop(self, frame: Any, m: Measures) -> Any:
        """The model's input: the top face (``m.box_px``) warped upright, ``[1, C, H, W]``."""
        box: Any = np.asarray(m.box_px, np.float32)
        sides = np.linalg.norm(box - np.roll(box, -1, axis=0), axis=1)
        if sides[0] < sides[1]:  # long side first: the parcel lies along the belt
            box = np.roll(box, -1, axis=0)
        dst = np.asarray(
            [[0, 0], [self.width, 0], [self.width, self.height], [0, self.height]], np.float32
        )
        warp = cv2.getPerspectiveTransform(box, dst)
        img = cv2.warpPerspective(frame, warp, (self.width, self.height), flags=cv2.INTER_AREA)
        if self.channels == 1:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
        return (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]

    def classify(
        self, frame: Any, m: Measures, thresholds: GradingThresholds
    ) -> tuple[str, float, str]:
        """Grade, raw score (the winner's probability) and the scores as text."""
        (scores,) = self.session.run(None, {self.input: self.crop(frame, m)})
        s = np.asarray(scores, np.float64).reshape(-1)
        if self.logits:
            e = np.exp(s - s.max())
            s = e / e.sum()
        best = int(np.argmax(s))
        note = "model " + " ".join(f"{lab} {p:.2f}" for lab, p in zip(self.labels, s, strict=True))
        label = self.labels[best]
        if label not in ("A", "B", "C"):
            return "unknown", float(s[best]), note
        return label, float(s[best]), note


def load_backend(name: str, model: Path | None = None) -> Any:
    """The grading backend called ``name`` (``measures`` or ``onnx``), or None for measures.

    Raises:
        ValueError: an unknown name, or ``onnx`` without a model file.
    """
    if name == "measures":
        return None
    if name == "onnx":
        if model is None:
            raise ValueError("the onnx grading backend needs [vision] model = <file.onnx>")
        return OnnxBackend(model)
    raise ValueError(f"unknown grading backend {name!r} (measures, onnx)")
