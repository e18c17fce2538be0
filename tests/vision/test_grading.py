"""The grading pipeline on generated photos with known answers.

Footprint tolerance: each side within 4 mm of the true size (1 px = 1 mm; the measured
bias is +0.5..+2.6 mm from anti-aliased edges and blur), within 5 mm at 0.8 mm/px.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge.sorter.policy import GradingThresholds
from edge.vision.calibration import Calibration
from edge.vision.grading import BackgroundModel, grade_frame, measure
from simulator.vision.generator import BELT_BGR, ParcelSpec, render

CAL = Calibration(1.0)
TH = GradingThresholds()
TOL_MM = 4.0


@pytest.mark.parametrize(
    ("length", "width", "angle", "blur"),
    [(360, 220, 0, 0.0), (400, 180, 12, 0.8), (300, 250, -8, 1.2), (420, 260, 5, 0.5)],
)
def test_footprint_within_4_mm(length: float, width: float, angle: float, blur: float) -> None:
    m = measure(render(ParcelSpec(length, width, angle, blur_px=blur, seed=3)), CAL, TH)
    assert m.found and not m.touches_border
    assert abs(m.length_mm - length) <= TOL_MM, m
    assert abs(m.width_mm - width) <= TOL_MM, m


def test_footprint_uses_the_calibration_scale() -> None:
    spec = ParcelSpec(300, 200, 7, mm_per_px=0.8, seed=4)
    m = measure(render(spec), Calibration(0.8), TH)
    assert abs(m.length_mm - 300) <= 5.0 and abs(m.width_mm - 200) <= 5.0, m


@pytest.mark.parametrize("colour", ["kraft", "blue", "red", "green", "yellow", "light_kraft"])
@pytest.mark.parametrize(("gain", "gradient"), [(0.8, -0.2), (1.2, 0.2)])
def test_undamaged_parcel_is_grade_a_in_any_colour_and_light(
    colour: str, gain: float, gradient: float
) -> None:
    g = grade_frame(
        render(ParcelSpec(colour=colour, gain=gain, gradient=gradient, angle_deg=6, seed=9)),
        CAL,
        TH,
    )
    assert g.grade == "A", g.explanation
    assert g.confidence > 0.5


@pytest.mark.parametrize("damage", ["crushed_corner", "dent", "open_flap", "tear"])
@pytest.mark.parametrize(("severity", "grade"), [("minor", "B"), ("major", "C")])
def test_damage_is_detected_and_graded(damage: str, severity: str, grade: str) -> None:
    spec = ParcelSpec(angle_deg=9, blur_px=0.7, damage=damage, severity=severity, seed=11)  # type: ignore[arg-type]
    g = grade_frame(render(spec), CAL, TH)
    assert g.grade == grade, g.explanation
    expected_note = {
        "crushed_corner": "corner/shape",
        "dent": "dent/flap",
        "open_flap": "corner/shape",
        "tear": "tear/tape",
    }[damage]
    assert expected_note in g.explanation


def test_tear_raises_the_dark_fraction_only() -> None:
    clean = measure(render(ParcelSpec(seed=2)), CAL, TH)
    torn = measure(render(ParcelSpec(seed=2, damage="tear", severity="major")), CAL, TH)
    assert clean.dark_fraction == 0.0
    assert torn.dark_fraction > TH.max_dark_fraction_b
    assert abs(torn.rect_fill - clean.rect_fill) < 0.01


@pytest.mark.parametrize("angle", [0.0, 10.0, -14.0])
def test_label_barcode_is_decoded_on_a_rotated_parcel(angle: float) -> None:
    spec = ParcelSpec(angle_deg=angle, blur_px=0.6, label="RMA-004711", seed=5)
    m = measure(render(spec), CAL, TH)
    assert m.label_present
    assert m.barcodes == ("]C0RMA-004711",)  # as a scanner in AIM mode sends it
    assert "label read RMA-004711" in grade_frame(render(spec), CAL, TH).explanation


def test_no_label_means_no_label_and_no_barcode() -> None:
    m = measure(render(ParcelSpec(label=None, seed=5)), CAL, TH)
    assert not m.label_present and m.barcodes == ()


def test_empty_belt_is_unknown_with_no_parcel() -> None:
    empty = np.full((480, 640, 3), BELT_BGR, np.uint8)
    g = grade_frame(empty, CAL, TH)
    assert (g.grade, g.confidence) == ("unknown", 0.0)
    assert "no parcel" in g.explanation


def test_parcel_cut_by_the_image_border_is_unknown() -> None:
    g = grade_frame(render(ParcelSpec(centre_mm=(200.0, 0.0))), CAL, TH)
    assert g.grade == "unknown" and "not fully in view" in g.explanation


def test_footprint_against_the_expected_catalogue_dimensions() -> None:
    frame = render(ParcelSpec(360, 220, seed=1))
    assert grade_frame(frame, CAL, TH, expected_mm=(220, 360)).grade == "A"
    wrong = grade_frame(frame, CAL, TH, expected_mm=(300, 150))
    assert wrong.grade == "unknown" and "wrong item" in wrong.explanation


def test_thresholds_come_from_the_policy() -> None:
    frame = render(ParcelSpec(damage="crushed_corner", severity="minor", seed=8))
    assert grade_frame(frame, CAL, TH).grade == "B"
    lenient = replace(TH, min_rect_fill_a=0.9, min_rect_fill_b=0.85)
    assert grade_frame(frame, CAL, lenient).grade == "A"


def test_confidence_is_one_half_on_a_limit() -> None:
    m = measure(render(ParcelSpec(seed=8)), CAL, TH)
    on_limit = replace(TH, min_rect_fill_a=m.rect_fill)
    g = grade_frame(render(ParcelSpec(seed=8)), CAL, on_limit)
    assert g.confidence == 0.5


def test_background_model_follows_a_lighting_change() -> None:
    spec = ParcelSpec(gain=1.2, gradient=0.0, seed=6)
    empty = render(replace(spec, label=None, length_mm=1.0, width_mm=1.0))
    model = BackgroundModel([render(replace(spec, gain=1.0, length_mm=1.0, width_mm=1.0))])
    assert model.median.shape == empty.shape
    m = measure(render(spec), CAL, TH, background=model)
    assert abs(m.length_mm - 360) <= TOL_MM and abs(m.width_mm - 220) <= TOL_MM
    assert grade_frame(render(spec), CAL, TH, background=model).grade == "A"
