"""The learned backend: ONNX Runtime loading a tiny classifier the test builds itself.

The model (``onnx.helper``, no weights from anywhere): the mean brightness of the top face
crop, ``GlobalAveragePool`` -> ``Flatten`` -> ``MatMul`` by fixed weights -> ``Add`` ->
logits for (A, B, C, unknown) with metadata ``scores = logits``: bright boxes score A,
dark ones C. What is checked is our loading and mapping code, not a grader.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge.config import StationConfig
from edge.drivers.camera import Photo
from edge.sorter.grading import GradingThresholds
from edge.vision.calibration import Calibration
from edge.vision.grading import grade_frame
from edge.vision.learned import OnnxBackend, load_backend
from edge.vision.worker import grader_from_config
from simulator.vision.generator import ParcelSpec, render

CAL = Calibration(1.0)
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def build_model(
    path: Path,
    labels: str = "A,B,C,unknown",
    channels: int = 3,
    classes: int = 4,
    scores: str = "logits",
) -> Path:
    # score_k = w_k * mean + b_k: A rises with brightness, C falls, B in between
    w = np.zeros((channels, classes), np.float32)
    w[:, 0], w[:, 1], w[:, 2] = 40.0 / channels, 20.0 / channels, 0.0
    b = np.array([-20.0, -8.0, 0.0, -30.0][:classes], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["scores"]),
        ],
        "grader",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, channels, 32, 48])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, classes])],
        [
            helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.reshape(-1).tolist()),
            helper.make_tensor("b", TensorProto.FLOAT, b.shape, b.reshape(-1).tolist()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"labels": labels, "scores": scores})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_the_model_grades_bright_boxes_a_and_dark_ones_c(tmp_path: Path) -> None:
    backend = OnnxBackend(build_model(tmp_path / "m.onnx"))
    assert (backend.channels, backend.height, backend.width) == (3, 32, 48)
    assert backend.labels == ("A", "B", "C", "unknown")
    th = GradingThresholds()
    bright = grade_frame(render(ParcelSpec(colour="yellow", seed=1)), CAL, th, backend=backend)
    dark = grade_frame(
        render(ParcelSpec(colour="blue", gain=0.7, seed=1)), CAL, th, backend=backend
    )
    assert bright.backend == "onnx" and bright.measured_grade == "A"
    assert dark.measured_grade == "C"
    assert "model A" in bright.explanation
    # no curve for backend onnx: the raw probability is the confidence
    assert bright.confidence == pytest.approx(bright.raw_confidence, abs=1e-3)


def test_the_crop_is_the_top_face_upright(tmp_path: Path) -> None:
    backend = OnnxBackend(build_model(tmp_path / "m.onnx"))
    from edge.vision.grading import measure

    frame = render(ParcelSpec(angle_deg=12, colour="yellow", label=None, seed=2))
    m = measure(frame, CAL, GradingThresholds())
    crop = backend.crop(frame, m)
    assert crop.shape == (1, 3, 32, 48) and crop.dtype == np.float32
    # the yellow top fills the crop (BGR 60, 200, 220 / 255 at nominal light)
    assert crop[0, 2].mean() == pytest.approx(220 / 255, abs=0.08)
    assert crop[0, 0].mean() == pytest.approx(60 / 255, abs=0.08)


def test_abstention_checks_come_before_the_model(tmp_path: Path) -> None:
    backend = OnnxBackend(build_model(tmp_path / "m.onnx"))
    g = grade_frame(
        render(ParcelSpec(glare=True, seed=3)), CAL, GradingThresholds(), backend=backend
    )
    assert g.grade == "unknown" and "glare" in g.checks


def test_a_model_label_outside_a_b_c_means_unknown(tmp_path: Path) -> None:
    path = build_model(tmp_path / "m.onnx", labels="A,B,C,damaged_label")
    backend = OnnxBackend(path)
    backend.labels = ("unknown", "unknown", "unknown", "unknown")
    g = grade_frame(render(ParcelSpec(seed=4)), CAL, GradingThresholds(), backend=backend)
    assert g.grade == "unknown" and g.measured_grade == "unknown"


def test_models_off_the_contract_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not an ONNX model"):
        OnnxBackend(tmp_path / "junk.onnx")
    with pytest.raises(ValueError, match=r"output must be \[1, 3\]"):
        OnnxBackend(build_model(tmp_path / "three.onnx", labels="A,B,C", classes=4))
    with pytest.raises(ValueError, match="unknown grading backend"):
        load_backend("neural")
    with pytest.raises(ValueError, match="needs"):
        load_backend("onnx", None)
    assert load_backend("measures") is None


def test_the_backend_is_chosen_in_the_station_config(tmp_path: Path) -> None:
    base = {
        "station": {"id": "s1", "site": "site1", "data_dir": str(tmp_path)},
        "photo_eye": {"pin": 4},
        "scanner": {"url": "loop://"},
        "belt": {"speed_mm_s": 1000, "scan_pos_mm": 400, "length_mm": 3000},
        "lanes": [{"name": "restock", "disposition": "restock", "pos_mm": 1400, "gate_pin": 17}],
    }
    with pytest.raises(ValueError, match="needs model"):
        StationConfig.model_validate({**base, "vision": {"backend": "onnx"}})
    model = build_model(tmp_path / "m.onnx")
    cfg = StationConfig.model_validate({**base, "vision": {"backend": "onnx", "model": str(model)}})
    grader = grader_from_config(cfg.vision, tmp_path, GradingThresholds, lambda t: T0)
    assert isinstance(grader.backend, OnnxBackend)
    result = grader.process(
        Photo(True, 1.0, 2.0, render(ParcelSpec(colour="yellow", seed=5)), tag=1.0)
    )
    assert result.grading is not None and result.grading.backend == "onnx"
    plain = StationConfig.model_validate(base)
    assert (
        grader_from_config(plain.vision, tmp_path, GradingThresholds, lambda t: T0).backend is None
    )
