"""The physical rule: empty box, short shipment and size, with exact grams and millimetres.

Default check: parcel tolerance 30 g, 5 % per unit, packaging 0-600 g + 20 % of the units.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.sorter.model import Reason, RmaLineRecord
from edge.sorter.physical import (
    Claim,
    Footprint,
    PhysicalCheck,
    PhysicalOutcome,
    WeightMeasure,
    check_parcel,
    check_size,
    check_weight,
    expected_footprint_mm,
    physical_check_from_mapping,
)
from edge.sorter.policy import default_policy, policy_from_mapping, policy_to_mapping
from protocol.policy import DispositionPolicy

CHECK = PhysicalCheck()
SHOE = RmaLineRecord("SHOE-42", 1, weight_g=850, length_mm=330, width_mm=210, height_mm=120)
MUG = RmaLineRecord("MUG", 3, weight_g=400, length_mm=120, width_mm=90, height_mm=100)
OK = PhysicalOutcome.OK
MISMATCH = PhysicalOutcome.WEIGHT_MISMATCH
UNKNOWN = PhysicalOutcome.UNKNOWN


def weigh(grams: float, *claims: Claim, check: PhysicalCheck = CHECK) -> tuple[object, ...]:
    v = check_weight(claims, check, WeightMeasure(grams))
    return v.outcome, v.finding, v.fits_units


# -- single unit: 850 g shoe, tolerance 30 + 42.5 g, accepted 777.5 .. 1692.5 g -------------
def test_single_unit_range_is_exact() -> None:
    v = check_weight([Claim(SHOE)], CHECK, WeightMeasure(1200.0))
    assert (v.outcome, v.low_g, v.high_g, v.finding) == (OK, 777.5, 1692.5, None)
    assert v.explanation == "1200 g for 1 x SHOE-42 (expected 778-1692 g)"


@pytest.mark.parametrize(
    ("grams", "expected"),
    [
        (777.5, (OK, None, None)),  # on the lower limit
        (1692.5, (OK, None, None)),  # on the upper limit
        (777.4, (MISMATCH, "underweight", None)),  # fits neither 1 unit nor the box alone
        (1692.6, (MISMATCH, "overweight", None)),
        (630.0, (MISMATCH, "empty_box", 0)),  # packaging 600 g + 30 g tolerance
        (310.0, (MISMATCH, "empty_box", 0)),
        (0.0, (MISMATCH, "empty_box", 0)),
    ],
)
def test_single_unit_limits(grams: float, expected: tuple[object, ...]) -> None:
    assert weigh(grams, Claim(SHOE)) == expected


def test_empty_box_says_so() -> None:
    v = check_weight([Claim(SHOE)], CHECK, WeightMeasure(310.0))
    assert v.explanation == (
        "empty box: 310 g for 1 x SHOE-42 (expected 778-1692 g), the weight of the packaging alone"
    )


# -- four 400 g mugs (20 g each, root sum of squares 40 g): 1530 .. 2590 g; three fit
# 1135.4 .. 2104.6 g, two 741.7 .. 1618.3 g, one 350 .. 1130 g, none -30 .. 630 g ---------------
@pytest.mark.parametrize(
    ("grams", "expected"),
    [
        (2200.0, (OK, None, None)),
        (1530.0, (OK, None, None)),
        (1500.0, (MISMATCH, "short_shipment", 3)),
        (1100.0, (MISMATCH, "short_shipment", 2)),
        (700.0, (MISMATCH, "short_shipment", 1)),
        (349.0, (MISMATCH, "empty_box", 0)),
        (2591.0, (MISMATCH, "overweight", None)),
    ],
)
def test_short_shipment_of_four_mugs(grams: float, expected: tuple[object, ...]) -> None:
    assert weigh(grams, Claim(MUG, 4)) == expected


def test_short_shipment_names_the_units_it_weighs_like() -> None:
    v = check_weight([Claim(MUG, 4)], CHECK, WeightMeasure(1500.0))
    assert (v.low_g, v.high_g) == (1530.0, 2590.0)
    assert v.explanation == (
        "short shipment: 1500 g for 4 x MUG (expected 1530-2590 g), weighs like 3 of 4 units"
    )


def test_a_weight_that_also_fits_fewer_units_passes_but_says_it_cannot_tell() -> None:
    v = check_weight([Claim(MUG, 4)], CHECK, WeightMeasure(1600.0))
    assert v.outcome is OK
    assert v.explanation == (
        "1600 g for 4 x MUG (expected 1530-2590 g); also fits 3 unit(s): the weight cannot tell"
    )


def test_mixed_lines_use_the_lightest_and_heaviest_units() -> None:
    tight = PhysicalCheck(weight_tol_g=20, packaging_max_g=300, packaging_max_pct=0)
    laptop = RmaLineRecord("LAPTOP", 1, weight_g=2000, weight_tol_g=30)
    charger = RmaLineRecord("CHARGER", 1, weight_g=300, weight_tol_g=40)
    claims = (Claim(laptop), Claim(charger))
    full = check_weight(claims, tight, WeightMeasure(2400.0))
    # both: 2300 -+ (20 + sqrt(30^2 + 40^2) = 70), + 300 packaging
    assert (full.outcome, full.low_g, full.high_g) == (OK, 2230.0, 2670.0)
    assert full.explanation == "2400 g for 1 x LAPTOP, 1 x CHARGER (expected 2230-2670 g)"
    # one unit: 300 - 40 - 20 = 240 .. 2000 + 40 + 300 + 20 = 2360
    assert weigh(2100.0, *claims, check=tight) == (MISMATCH, "short_shipment", 1)  # no charger
    assert weigh(450.0, *claims, check=tight) == (MISMATCH, "short_shipment", 1)  # no laptop
    assert weigh(239.0, *claims, check=tight) == (MISMATCH, "empty_box", 0)


def test_catalogue_tolerance_override_replaces_the_percentage() -> None:
    precise = RmaLineRecord("SHOE-42", 1, weight_g=850, weight_tol_g=10)
    v = check_weight([Claim(precise)], CHECK, WeightMeasure(800.0))
    assert (v.outcome, v.low_g, v.finding) == (MISMATCH, 810.0, "underweight")
    assert weigh(800.0, Claim(SHOE)) == (OK, None, None)


def test_packaging_minimum_raises_the_lower_limit() -> None:
    boxed = PhysicalCheck(packaging_min_g=150, packaging_max_g=600)
    v = check_weight([Claim(SHOE)], boxed, WeightMeasure(900.0))
    assert (v.outcome, v.low_g) == (MISMATCH, 927.5)


@pytest.mark.parametrize(
    ("claims", "check", "weight", "why"),
    [
        ((Claim(SHOE),), CHECK, None, "no weighing of this parcel"),
        ((Claim(SHOE),), CHECK, WeightMeasure(900, stable=False), "weight not settled (900 g)"),
        ((), CHECK, WeightMeasure(900), "no RMA units claimed"),
        (
            (Claim(SHOE), Claim(RmaLineRecord("SOCKS", 1)), Claim(RmaLineRecord("BELT", 1))),
            CHECK,
            WeightMeasure(900),
            "no catalogue weight for BELT, SOCKS",
        ),
        (
            (Claim(SHOE),),
            PhysicalCheck(weight_check=False),
            WeightMeasure(0),
            "weight check off by policy",
        ),
    ],
)
def test_weight_unknown_with_reason(
    claims: tuple[Claim, ...], check: PhysicalCheck, weight: WeightMeasure | None, why: str
) -> None:
    v = check_weight(claims, check, weight)
    assert (v.outcome, v.explanation, v.low_g) == (UNKNOWN, why, None)


# -- size -------------------------------------------------------------------------------
def test_fit_needs_the_smallest_face_of_every_unit() -> None:
    # mug 120 x 100 x 90: its smallest face 100 x 90 must fit the footprint (+-20 mm)
    assert check_size([Claim(MUG)], "fit", Footprint(150, 110)).outcome is OK
    assert check_size([Claim(MUG)], "fit", Footprint(80, 110)).outcome is OK  # sides any order
    small = check_size([Claim(MUG)], "fit", Footprint(90, 60))
    assert small.outcome is PhysicalOutcome.SIZE_MISMATCH
    assert small.explanation == "footprint 90x60 mm cannot hold MUG (120x100x90 mm, +-20 mm)"
    soft = RmaLineRecord("MUG", 1, length_mm=120, width_mm=90, height_mm=100, size_tol_mm=15)
    assert check_size([Claim(soft)], "fit", Footprint(90, 60)).outcome is OK  # +-35 mm
    tight = check_size([Claim(soft)], "fit", Footprint(90, 54))
    assert tight.outcome is PhysicalOutcome.SIZE_MISMATCH


def test_fit_checks_the_units_with_dimensions_only() -> None:
    flat = RmaLineRecord("POSTER", 1, length_mm=600, width_mm=80)  # no height: not checked
    v = check_size([Claim(flat), Claim(MUG)], "fit", Footprint(150, 110))
    assert (v.outcome, v.explanation) == (OK, "footprint 150x110 mm holds MUG")
    none = check_size([Claim(flat)], "fit", Footprint(150, 110))
    assert (none.outcome, none.explanation) == (UNKNOWN, "no catalogue dimensions for 1 x POSTER")


def test_match_compares_the_box_with_the_two_largest_dimensions() -> None:
    assert expected_footprint_mm([Claim(SHOE)]) == (330.0, 210.0)
    assert check_size([Claim(SHOE)], "match", Footprint(205, 335)).outcome is OK
    wrong = check_size([Claim(SHOE)], "match", Footprint(300, 150))
    assert wrong.outcome is PhysicalOutcome.SIZE_MISMATCH
    assert wrong.explanation == "footprint 300x150 mm is not the SHOE-42 box 330x210 mm (+-20 mm)"
    two = check_size([Claim(SHOE, 2)], "match", Footprint(330, 210))
    assert two.outcome is UNKNOWN
    assert expected_footprint_mm([Claim(SHOE, 2)]) is None


def test_size_unknown_and_off() -> None:
    assert check_size([Claim(SHOE)], "fit", None).explanation == "no footprint of this parcel"
    assert check_size([Claim(SHOE)], "off", Footprint(1, 1)).outcome is UNKNOWN
    with pytest.raises(ValueError, match="size_check"):
        check_size([Claim(SHOE)], "exact", Footprint(1, 1))


# -- the parcel's verdict ---------------------------------------------------------------------
def test_verdict_weight_first_then_size_then_ok() -> None:
    tiny = Footprint(50, 40)
    both = check_parcel([Claim(SHOE)], CHECK, weight=WeightMeasure(300), footprint=tiny)
    assert (both.outcome, both.reason) == (MISMATCH, Reason.WEIGHT_MISMATCH)
    size = check_parcel([Claim(SHOE)], CHECK, weight=WeightMeasure(1000), footprint=tiny)
    assert (size.outcome, size.reason) == (PhysicalOutcome.SIZE_MISMATCH, Reason.SIZE_MISMATCH)
    only_weight = check_parcel([Claim(SHOE)], CHECK, weight=WeightMeasure(1000))
    assert (only_weight.outcome, only_weight.reason) == (OK, None)
    nothing = check_parcel([Claim(SHOE)], CHECK)
    assert (nothing.outcome, nothing.reason) == (UNKNOWN, None)
    assert nothing.as_inputs() == (
        ("physical", "unknown"),
        ("weight_check", "unknown"),
        ("size_check", "unknown"),
    )
    assert both.as_inputs()[1] == ("weight_check", "empty_box")
    assert both.explanation.startswith("weight: empty box: 300 g for 1 x SHOE-42")


@given(
    unit_g=st.integers(1, 20_000),
    units=st.integers(1, 20),
    packaging_g=st.floats(0, 600),
)
def test_the_claimed_units_in_allowed_packaging_always_pass(
    unit_g: int, units: int, packaging_g: float
) -> None:
    line = RmaLineRecord("SKU", units, weight_g=unit_g)
    parcel = unit_g * units + packaging_g
    assert check_weight([Claim(line, units)], CHECK, WeightMeasure(parcel)).outcome is OK


@given(unit_g=st.integers(2_000, 20_000), units=st.integers(2, 20), missing=st.integers(1, 20))
def test_missing_heavy_units_are_a_short_shipment_or_an_empty_box(
    unit_g: int, units: int, missing: int
) -> None:
    # Units far heavier than the packaging allowance: every missing unit shows.
    missing = min(missing, units)
    tight = PhysicalCheck(packaging_max_g=300, packaging_max_pct=0)
    line = RmaLineRecord("SKU", units, weight_g=unit_g)
    v = check_weight([Claim(line, units)], tight, WeightMeasure(unit_g * (units - missing) + 150))
    assert v.outcome is MISMATCH
    assert v.fits_units == units - missing
    assert v.finding == ("empty_box" if missing == units else "short_shipment")


# -- policy data ------------------------------------------------------------------------------
def test_policy_carries_the_physical_check_from_the_wire() -> None:
    wire = DispositionPolicy(
        version="p-2",
        rules=({"disposition": "restock", "reason": "matched", "grades": ["A"]},),  # type: ignore[arg-type]
        physical={"packaging_max_g": 900, "size_check": "match", "weight_check": False},  # type: ignore[arg-type]
    )
    policy = policy_from_mapping(wire.model_dump())
    assert policy.physical == PhysicalCheck(
        weight_check=False, packaging_max_g=900.0, size_check="match"
    )
    assert policy_from_mapping(policy_to_mapping(policy)) == policy
    assert default_policy().physical == PhysicalCheck()
    assert (
        policy_from_mapping({**policy_to_mapping(default_policy()), "physical": None}).physical
        == CHECK
    )


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"weight_tol_kg": 1}, "unknown key"),
        ({"weight_tol_g": "30"}, "must be a number"),
        ({"weight_tol_g": True}, "must be a number"),
        ({"weight_check": "yes"}, "true or false"),
        ({"packaging_min_g": 700.0}, "packaging_min_g"),
        ({"unit_weight_tol_pct": 150.0}, "0..100"),
        ({"weight_tol_g": -1.0}, "negative"),
        ({"size_check": "exact"}, "size_check"),
    ],
)
def test_physical_check_mapping_is_validated(raw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        physical_check_from_mapping(raw)
