"""The grading pipeline on generated photos with known answers.

Footprint tolerance: each side within 4 mm of the true size (1 px = 1 mm; the measured
bias is +0.5..+2.6 mm from anti-aliased edges and blur), within 5 mm at 0.8 mm/px.
``TH0`` is the shipped policy without the minimum confidences: the grade the measures
give, before the grader abstains for want of confidence.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from edge.sorter.grading import ConfidenceCurve, GradingThresholds
from edge.sorter.model import RmaLineRecord
from edge.sorter.physical import Claim
from edge.vision.calibration import Calibration
from edge.vision.grading import BackgroundModel, Measures, grade_frame, grade_measures, measure
from simulator.vision.generator import BELT_BGR, ParcelSpec, random_spec, render, render_empty

CAL = Calibration(1.0)
TH = GradingThresholds()
TH0 = replace(TH, min_confidence_a=0.0, min_confidence_b=0.0, min_confidence_c=0.0)
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
        TH0,
    )
    assert g.grade == "A", g.explanation
    assert g.checks == ()


@pytest.mark.parametrize("damage", ["crushed_corner", "dent", "open_flap", "tear"])
@pytest.mark.parametrize(("severity", "grade"), [("minor", "B"), ("major", "C")])
def test_damage_is_detected_and_graded(damage: str, severity: str, grade: str) -> None:
    spec = ParcelSpec(angle_deg=9, blur_px=0.7, damage=damage, severity=severity, seed=11)  # type: ignore[arg-type]
    g = grade_frame(render(spec), CAL, TH0)
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
    assert (g.grade, g.confidence, g.checks) == ("unknown", 0.0, ("no_parcel",))
    assert "no parcel" in g.explanation


def test_parcel_cut_by_the_image_border_is_unknown() -> None:
    g = grade_frame(render(ParcelSpec(centre_mm=(200.0, 0.0))), CAL, TH)
    assert g.grade == "unknown" and "not fully in view" in g.explanation


def test_footprint_against_the_expected_catalogue_dimensions() -> None:
    frame = render(ParcelSpec(360, 220, seed=1))
    assert grade_frame(frame, CAL, TH0, expected_mm=(220, 360)).grade == "A"
    wrong = grade_frame(frame, CAL, TH, expected_mm=(300, 150))
    assert wrong.grade == "unknown" and "wrong item" in wrong.explanation


def test_expected_footprint_comes_from_the_claimed_rma_line() -> None:
    seen = Measures(found=True, length_mm=382.0, width_mm=219.0, rect_fill=1.0, solidity=1.0)
    shoe = RmaLineRecord("SHOE-42", 1, length_mm=360, width_mm=220, height_mm=120)
    wrong = grade_measures(seen, TH0, claims=[Claim(shoe)])
    assert (wrong.grade, wrong.checks) == ("unknown", ("footprint",))
    assert "footprint 382x219 mm vs expected 360x220 mm: wrong item?" in wrong.explanation
    soft = replace(shoe, size_tol_mm=5)  # 20 + 5 mm: 22 mm off is within
    assert grade_measures(seen, TH0, claims=[Claim(soft)]).checks == ()
    assert grade_measures(seen, TH0, claims=[Claim(shoe, 2)]).checks == ()  # no box to match
    no_dims = RmaLineRecord("SHOE-42", 1)
    assert grade_measures(seen, TH0, claims=[Claim(no_dims)]).checks == ()


def test_thresholds_come_from_the_policy() -> None:
    frame = render(ParcelSpec(damage="crushed_corner", severity="minor", seed=8))
    assert grade_frame(frame, CAL, TH0).grade == "B"
    lenient = replace(TH0, min_rect_fill_a=0.9, min_rect_fill_b=0.85)
    assert grade_frame(frame, CAL, lenient).grade == "A"


def test_raw_score_is_one_half_on_a_limit_and_the_curve_calibrates_it() -> None:
    m = measure(render(ParcelSpec(seed=8)), CAL, TH)
    on_limit = replace(TH0, min_rect_fill_a=m.rect_fill, calibration=())
    g = grade_frame(render(ParcelSpec(seed=8)), CAL, on_limit)
    assert (g.raw_confidence, g.confidence) == (0.5, 0.5)
    curve = ConfidenceCurve("measures", "A", ((0.5, 0.2), (1.0, 0.9)))
    g = grade_frame(render(ParcelSpec(seed=8)), CAL, replace(on_limit, calibration=(curve,)))
    assert (g.raw_confidence, g.confidence) == (0.5, 0.2)


def test_a_grade_below_its_minimum_confidence_is_unknown() -> None:
    frame = render(ParcelSpec(seed=8))
    m = measure(frame, CAL, TH)
    sure = grade_frame(frame, CAL, TH)
    assert sure.grade == "A" and sure.confidence >= TH.min_confidence_a
    unsure = grade_frame(frame, CAL, replace(TH, min_confidence_a=1.0))
    assert (unsure.grade, unsure.measured_grade, unsure.checks) == (
        "unknown",
        "A",
        ("low_confidence",),
    )
    assert unsure.confidence == sure.confidence
    assert f"grade A at confidence {sure.confidence:.2f} below 1.00" in unsure.explanation
    assert m.checks == ()


def test_background_model_follows_a_lighting_change() -> None:
    spec = ParcelSpec(gain=1.2, gradient=0.0, seed=6)
    empty = render(replace(spec, label=None, length_mm=1.0, width_mm=1.0))
    model = BackgroundModel([render(replace(spec, gain=1.0, length_mm=1.0, width_mm=1.0))])
    assert model.median.shape == empty.shape
    m = measure(render(spec), CAL, TH, background=model)
    assert abs(m.length_mm - 360) <= TOL_MM and abs(m.width_mm - 220) <= TOL_MM
    assert grade_frame(render(spec), CAL, TH0, background=model).grade == "A"


# -- abstention: the grader says unknown when the photo is not one it was built for ------
@pytest.mark.parametrize(
    ("spec", "check"),
    [
        (ParcelSpec(glare=True, seed=21), "glare"),
        (ParcelSpec(motion_px=14, seed=22), "blur"),
        (ParcelSpec(clutter=True, seed=23), "clutter"),
        (ParcelSpec(centre_mm=(200.0, 0.0), seed=24), "partial_view"),
        (ParcelSpec(belt="rollers", seed=25), "background"),
        (ParcelSpec(colour="red", belt="dark", gain=0.2, seed=26), "no_parcel|weak_outline"),
    ],
    ids=["glare", "motion-blur", "clutter", "partial", "textured-belt", "weak-outline"],
)
def test_the_grader_abstains_and_says_why(spec: ParcelSpec, check: str) -> None:
    g = grade_frame(render(spec), CAL, TH, early_exit=False)
    assert g.grade == "unknown", g.explanation
    assert set(check.split("|")) & set(g.checks), g.explanation
    assert g.confidence == 0.0
    quick = grade_frame(render(spec), CAL, TH)  # the station's way: stops at shape checks
    assert (quick.grade, quick.confidence, quick.measures.barcodes) == (
        "unknown",
        0.0,
        g.measures.barcodes,
    )
    assert set(quick.checks) <= set(g.checks) and quick.checks, quick.explanation


def test_early_exit_stops_after_a_shape_check_and_names_only_what_it_measured() -> None:
    # a dark red box on a dark belt at a fifth of the light: only the label strip segments
    frame = render(ParcelSpec(colour="red", belt="dark", gain=0.2, seed=26))
    full = grade_frame(frame, CAL, TH, early_exit=False)
    quick = grade_frame(frame, CAL, TH)
    assert full.checks == ("scale", "weak_outline", "not_square")
    assert full.measures.complete and full.measured_grade == "A"
    assert quick.checks == ("scale", "not_square")
    assert not quick.measures.complete and quick.measured_grade is None
    assert (quick.measures.edge_contrast, quick.measures.dark_fraction) == (0.0, 0.0)
    assert quick.measures.barcodes == full.measures.barcodes == ("]C0RMA-000123",)
    assert "weak outline" not in quick.explanation and "measured" not in quick.explanation


def test_a_tilted_view_is_not_square() -> None:
    frame = render(ParcelSpec(seed=27, label=None))
    h, w = frame.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[60, 20], [w - 60, 20], [w, h], [0, h]])  # camera tilted about x
    tilted = cv2.warpPerspective(
        frame, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=BELT_BGR
    )
    g = grade_frame(tilted, CAL, TH)
    assert g.grade == "unknown" and "not_square" in g.checks, g.explanation


def test_a_wrong_scale_is_implausible() -> None:
    g = grade_frame(render(ParcelSpec(seed=28)), Calibration(5.0), TH)  # 1.8 m long?
    assert g.grade == "unknown" and "scale" in g.checks, g.explanation


def test_a_dark_logo_the_grader_cannot_tell_from_a_hole_is_unknown() -> None:
    frame = render(ParcelSpec(seed=29, label=None))
    cv2.circle(frame, (250, 200), 22, (20, 20, 20), -1)  # a black filled logo, 44 mm
    g = grade_frame(frame, CAL, TH)
    assert g.grade == "unknown" and "dark_marks" in g.checks, g.explanation


def test_the_rollers_work_with_a_capture_of_the_empty_belt() -> None:
    spec = ParcelSpec(belt="rollers", seed=30)
    model = BackgroundModel([render_empty(spec, seed=1), render_empty(spec, seed=2)])
    g = grade_frame(render(spec), CAL, TH0, background=model)
    assert g.grade == "A" and g.checks == (), g.explanation
    assert g.measures.belt_mismatch is not None and g.measures.belt_mismatch < TH.max_belt_mismatch


# -- what real photos have is not damage -------------------------------------------------
@pytest.mark.parametrize(
    "spec",
    [
        ParcelSpec(printed=True, seam=True, seed=31),
        ParcelSpec(tape="h", seam=True, seed=32),
        ParcelSpec(tape="warning", colour="light_kraft", seed=33),
        ParcelSpec(shadow_mm=(14.0, 10.0), seed=34),
        ParcelSpec(height_mm=200, camera_height_mm=1500, centre_mm=(70.0, 30.0), seed=35),
        ParcelSpec(belt="green", printed=True, seed=36),
        ParcelSpec(belt="grey", colour="blue", seed=37),
    ],
    ids=[
        "print-seam",
        "h-tape",
        "warning-tape",
        "shadow",
        "tall-off-axis",
        "green-belt",
        "grey-belt",
    ],
)
def test_an_intact_box_with_print_tape_shadow_or_height_is_never_damaged(spec: ParcelSpec) -> None:
    g = grade_frame(render(spec), CAL, TH0)
    assert g.grade in ("A", "unknown"), g.explanation
    assert g.measured_grade in ("A", None), g.explanation


def test_parallax_a_tall_box_off_axis_is_fitted_with_its_top_magnified() -> None:
    # the nadir (image centre) well outside the footprint: the side faces show, k = 1.2
    spec = ParcelSpec(
        240, 160, height_mm=250, camera_height_mm=1500, centre_mm=(270.0, 0.0),
        size=(1000, 480), seed=38, label=None,
    )  # fmt: skip
    m = measure(render(spec), CAL, TH)
    assert m.parallax == pytest.approx(spec.magnification - 1, abs=0.05), m
    assert abs(m.length_mm - 240) <= 8 and abs(m.width_mm - 160) <= 8, m
    assert m.rect_fill >= TH.min_rect_fill_a and m.solidity >= TH.min_solidity_a, m
    assert m.checks == (), m.checks


def test_a_tear_running_under_a_red_tape_is_not_taken_for_the_tape() -> None:
    # photo 237 of the held-out evaluation set (seed 2026): a major tear across the printed
    # text and a red warning tape; the tape, as dark as half the board, joined the tear into
    # one mark of the tape's vivid colour, which was skipped as print: graded A at 0.98
    rng = np.random.default_rng(2026)
    spec = [random_spec(rng, i) for i in range(238)][-1]
    assert (spec.damage, spec.severity, spec.tape) == ("tear", "major", "warning")
    g = grade_frame(render(spec), CAL, TH)
    assert (g.grade, g.measures.dark_fraction) == ("C", 0.0277), g.explanation
