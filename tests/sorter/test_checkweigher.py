"""The checkweigher and the camera footprint on the scan path of the core: weighings and
footprints associated with their parcel, the physical check against the catalogue."""

from __future__ import annotations

from dataclasses import replace

from edge.sorter import Decision, SorterCore
from edge.sorter.model import OrphanRead, Reason, RmaLineRecord
from simulator.testing import Directory, demo_belt, label_trusting_policy, line, rma
from tests.sorter.test_evidence import decision

EAN_SHOE = "4006381333931"
EAN_SOCK = "9780201310054"
# platform 500..900 mm downstream of the eye, +-50 mm: a 300 mm parcel inducted at 0 ms
# (1 m/s) lies wholly on it from 750 ms to 950 ms; it is decided once its trailing edge
# has left 950 mm (at 1250 ms), before the restock gate at 1500 mm has to open.
SCALE = {"scale_pos_mm": 700.0, "scale_platform_mm": 400.0, "scale_tol_mm": 50.0}


def shoe(**catalogue: int) -> RmaLineRecord:
    return replace(line("SHOE", gtin=EAN_SHOE), weight_g=800, **catalogue)


def sock(**catalogue: int) -> RmaLineRecord:
    return replace(line("SOCK", gtin=EAN_SOCK), weight_g=400, **catalogue)


def run(
    core: SorterCore,
    codes: list[str],
    weighings: list[tuple[float, float, float | None]] = (),  # type: ignore[assignment]
    footprint: tuple[float, float] | None = None,
    t0: float = 0.0,
) -> list[object]:
    actions: list[object] = []
    actions += core.on_photo_eye(t0, True) + core.on_photo_eye(t0 + 300.0, False)
    for code in codes:
        actions += core.on_barcode(t0 + 550.0, code)
    if footprint is not None:
        actions += core.on_footprint(t0 + 560.0, *footprint, parcel_id=1)
    for start, end, grams in weighings:
        actions += core.on_weighing(t0 + start, t0 + end, grams)
    for t in range(int(t0), int(t0) + 6000, 5):
        actions += core.advance(float(t))
    return actions


def test_a_weight_within_the_catalogue_range_sorts_on_condition() -> None:
    core = SorterCore(demo_belt(**SCALE), Directory(rma("RMA-1", shoe())))
    d = decision(run(core, ["RMA-1", EAN_SHOE], [(780.0, 880.0, 1100.0)]))
    assert (d.lane.name, d.reason) == ("restock", Reason.MATCHED)
    inputs = dict(d.inputs)
    assert (inputs["physical"], inputs["weight_check"], inputs["size_check"]) == (
        "ok",
        "ok",
        "unknown",
    )
    assert "weight: 1100 g for 1 x SHOE (expected 730-1630 g)" in d.explanation
    assert "weight:1100g" in d.reads
    assert core.counters["weighings"] == 1


def test_an_empty_box_is_a_weight_mismatch_before_any_trust_in_its_label() -> None:
    rmas = Directory(rma("RMA-1", replace(line("MUG"), weight_g=900)))
    core = SorterCore(demo_belt(**SCALE), rmas, label_trusting_policy())
    d = decision(run(core, ["RMA-1"], [(780.0, 880.0, 250.0)]))
    assert (d.lane.name, d.reason) == ("quarantine", Reason.WEIGHT_MISMATCH)
    assert dict(d.inputs)["weight_check"] == "empty_box"
    assert "empty box: 250 g for 1 x MUG" in d.explanation
    assert [(u.line_no, u.evidence.value, u.verified) for u in d.units] == [(1, "label", False)]


def test_a_short_shipment_weighs_like_fewer_units_than_claimed() -> None:
    core = SorterCore(demo_belt(**SCALE), Directory(rma("RMA-1", shoe(), sock())))
    d = decision(run(core, ["RMA-1", EAN_SHOE, EAN_SOCK], [(780.0, 880.0, 900.0)]))
    assert (d.reason, dict(d.inputs)["weight_check"]) == (Reason.WEIGHT_MISMATCH, "short_shipment")
    assert "weighs like 1 of 2 units" in d.explanation


def test_a_footprint_too_small_for_the_product_is_a_size_mismatch() -> None:
    boxed = shoe(length_mm=330, width_mm=210, height_mm=120)
    core = SorterCore(demo_belt(), Directory(rma("RMA-1", boxed)))
    d = decision(run(core, ["RMA-1", EAN_SHOE], footprint=(150.0, 100.0)))
    assert (d.lane.name, d.reason) == ("quarantine", Reason.SIZE_MISMATCH)
    assert dict(d.inputs)["size_check"] == "size_mismatch"
    assert "footprint 150x100 mm cannot hold SHOE (330x210x120 mm, +-20 mm)" in d.explanation
    fits = decision(
        run(
            SorterCore(demo_belt(), Directory(rma("RMA-1", boxed))),
            ["RMA-1", EAN_SHOE],
            footprint=(350.0, 230.0),
        )
    )
    assert (fits.reason, dict(fits.inputs)["size_check"]) == (Reason.MATCHED, "ok")


def test_without_a_weighing_the_check_is_unknown_and_decides_nothing() -> None:
    core = SorterCore(demo_belt(**SCALE), Directory(rma("RMA-1", shoe())))
    d = decision(run(core, ["RMA-1", EAN_SHOE]))
    assert (d.reason, dict(d.inputs)["physical"]) == (Reason.MATCHED, "unknown")
    assert "no weighing of this parcel" in d.explanation


def test_a_weighing_while_two_parcels_touch_the_platform_is_nobodys_weight() -> None:
    rmas = Directory(rma("RMA-1", shoe()), rma("RMA-2", replace(shoe(), sku="SHOE2")))
    core = SorterCore(demo_belt(**SCALE), rmas)
    actions: list[object] = []
    # parcel 1: eye 0..300 ms; parcel 2: eye 350..650 ms (50 mm behind parcel 1)
    actions += core.on_photo_eye(0.0, True) + core.on_photo_eye(300.0, False)
    actions += core.on_barcode(550.0, "RMA-1") + core.on_barcode(550.0, EAN_SHOE)
    actions += core.on_photo_eye(350.0, True) + core.on_photo_eye(650.0, False)
    # at 880 ms parcel 1 spans 580..880 mm (wholly on), parcel 2 230..530 mm (touching)
    actions += core.on_weighing(800.0, 880.0, 1700.0)
    for t in range(0, 6000, 5):
        actions += core.advance(float(t))
    first = next(a for a in actions if isinstance(a, Decision) and a.parcel_id == 1)
    assert dict(first.inputs)["physical"] == "unknown"
    assert "(weighing: another parcel on the platform)" in first.explanation
    assert "ambiguous:weight:1700g" in first.reads
    assert core.counters["ambiguous_reads"] == 1


def test_a_weighing_nobody_lay_wholly_on_is_an_orphan() -> None:
    core = SorterCore(demo_belt(**SCALE), Directory(rma("RMA-1", shoe())))
    core.on_photo_eye(0.0, True)
    core.on_photo_eye(300.0, False)
    # at 600 ms the parcel spans 300..600 mm: half on the platform
    assert core.on_weighing(580.0, 600.0, 500.0) == [OrphanRead("weight:500g", 600.0)]
    no_scale = SorterCore(demo_belt(), Directory())
    assert no_scale.on_weighing(0.0, 10.0, None, "not_settled") == [
        OrphanRead("weight:not_settled", 10.0)
    ]


def test_the_decision_waits_for_the_trailing_edge_to_leave_the_platform() -> None:
    core = SorterCore(demo_belt(**SCALE), Directory(rma("RMA-1", shoe())))
    actions = core.on_photo_eye(0.0, True) + core.on_photo_eye(300.0, False)
    actions += core.on_barcode(550.0, "RMA-1") + core.on_barcode(550.0, EAN_SHOE)
    assert not [a for a in core.advance(1245.0) if isinstance(a, Decision)]
    [d] = [a for a in core.advance(1250.0) if isinstance(a, Decision)]
    assert d.decided_at_ms == 1250.0
