"""ArUco board calibration: the scale of a generated board photo, within 1 %."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.vision.calibration import Calibration, calibrate_aruco, main
from simulator.vision.generator import BELT_BGR, render_board


@pytest.mark.parametrize("mm_per_px", [0.8, 1.0, 1.25])
def test_board_gives_the_scale_within_1_percent(mm_per_px: float) -> None:
    cal = calibrate_aruco(render_board(mm_per_px=mm_per_px))
    assert cal.method == "aruco" and cal.markers == 12
    assert cal.mm_per_px == pytest.approx(mm_per_px, rel=0.01)
    # 200 px along the image x axis is 200 x scale mm on the belt, within 1 %.
    a, b = cal.to_mm([[220.0, 240.0], [420.0, 240.0]])
    assert float(np.linalg.norm(b - a)) == pytest.approx(200 * mm_per_px, rel=0.01)
    assert cal.rms_mm < 1.0


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    cal = calibrate_aruco(render_board())
    cal.save(tmp_path / "cal.json")
    assert Calibration.load(tmp_path / "cal.json") == cal
    (tmp_path / "bad.json").write_text(json.dumps({"scale": 1}))
    with pytest.raises(ValueError, match="not a calibration file"):
        Calibration.load(tmp_path / "bad.json")


def test_no_board_is_an_error() -> None:
    with pytest.raises(ValueError, match="board not found"):
        calibrate_aruco(np.full((480, 640, 3), BELT_BGR, np.uint8))


def test_command_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "board.png"
    cv2.imwrite(str(photo), render_board(mm_per_px=0.8))
    out = tmp_path / "calibration.json"
    assert main(["calibrate", str(photo), "--out", str(out)]) == 0
    assert Calibration.load(out).mm_per_px == pytest.approx(0.8, rel=0.01)
    assert "12 markers" in capsys.readouterr().out
    assert main(["board", str(tmp_path / "print.png")]) == 0
    assert cv2.imread(str(tmp_path / "print.png"), cv2.IMREAD_GRAYSCALE) is not None
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.full((480, 640, 3), BELT_BGR, np.uint8))
    assert main(["calibrate", str(empty), "--out", str(out)]) == 1
