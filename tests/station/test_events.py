"""build_parcel_event: the parcel event from the core's exit and the graded photo, no daemon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.drivers.camera import Photo
from edge.sorter.model import Decision, Disposition, LaneSpec, Mark, ParcelExited, Reason
from edge.station.events import build_parcel_event, photo_fields
from edge.vision.grading import Grading, Measures
from edge.vision.photos import PhotoFile
from edge.vision.worker import GradedPhoto
from protocol import CodeClass, CodeRead, Evidence, PhotoRef, UnitReceipt

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
RESTOCK = LaneSpec("restock", Disposition.RESTOCK, 1500.0, "restock")
END = LaneSpec("quarantine", Disposition.QUARANTINE, 3000.0, None)


def to_utc(t_ms: float) -> datetime:
    return T0 + timedelta(milliseconds=t_ms)


def decision(**overrides: object) -> Decision:
    values: dict[str, object] = {
        "parcel_id": 7,
        "lane": RESTOCK,
        "reason": Reason.MATCHED,
        "rma_number": "RMA-1",
        "reads": ("RMA-1", "rfid:DD17380A"),
        "decided_at_ms": 900.0,
        "policy_version": "default-1",
        "explanation": "restock: matched",
    }
    values.update(overrides)
    return Decision(**values)  # type: ignore[arg-type]


def test_diverted_parcel_event_says_where_it_went_and_why() -> None:
    exited = ParcelExited(decision(), 250.0, 300.04, 2100.0)
    event = build_parcel_event(exited, "st1", to_utc, None, event_id="e" * 32)
    assert event.event_id == "e" * 32
    assert (event.station, event.parcel_id, event.inducted_at) == (
        "st1",
        7,
        T0 + timedelta(milliseconds=250),
    )
    assert (event.length_mm, event.barcode, event.rma_number) == (300.0, "RMA-1", "RMA-1")
    assert (event.lane, event.disposition, event.diverted, event.marks) == (
        "restock",
        "restock",
        True,
        (),
    )
    assert (event.reason, event.policy_version, event.explanation) == (
        "matched",
        "default-1",
        "restock: matched",
    )
    assert (event.photo, event.grade) == (None, None)


def test_the_event_carries_what_the_parcel_proved() -> None:
    units = (
        UnitReceipt(
            line_no=1, sku="S1", unit=1, evidence="tag", verified=True, identifier="DD17380A"
        ),
    )
    codes = (
        CodeRead(code_class="rma_label", value="RMA-1"),
        CodeRead(code_class="tag", value="DD17380A", source="rfid"),
    )
    exited = ParcelExited(
        decision(units=units, codes=codes), 0.0, 300.0, 2100.0, divert_confirmed=True
    )
    event = build_parcel_event(exited, "st1", to_utc, None, event_id="e" * 32)
    assert (event.units, event.codes, event.divert_confirmed) == (units, codes, True)
    assert event.verified_units == units
    cancelled = ParcelExited(exited.decision, 0.0, 300.0, 3300.0, (Mark.GATE_CANCELLED,), END, True)
    event = build_parcel_event(cancelled, "st1", to_utc, None, event_id="e" * 32)
    assert (event.diverted, event.divert_confirmed, event.units) == (False, None, units)


def test_withdrawn_gate_reports_the_lane_it_ran_on_to() -> None:
    exited = ParcelExited(decision(), 0.0, 300.0, 3300.0, (Mark.GATE_CANCELLED,), END)
    event = build_parcel_event(exited, "st1", to_utc, None, event_id="e" * 32)
    assert (event.lane, event.disposition, event.diverted) == ("quarantine", "quarantine", False)
    assert (event.reason, event.marks) == ("matched", ("gate_cancelled",))


def test_no_read_has_no_barcode_and_a_long_explanation_is_cut_at_1000() -> None:
    d = decision(lane=END, reason=Reason.NO_READ, rma_number=None, reads=(), explanation="x" * 1200)
    event = build_parcel_event(
        ParcelExited(d, 0.0, 300.0, 3300.0), "st1", to_utc, None, event_id="f" * 32
    )
    assert (event.barcode, event.rma_number, event.lane) == (None, None, "quarantine")
    assert event.explanation == "x" * 1000


def test_photo_evidence_and_grade_go_with_the_event(tmp_path: Path) -> None:
    file = PhotoFile("ab" * 32, T0, 12345, tmp_path / "p.jpg")
    grading = Grading("B", 0.875, "dent 12 mm; " * 60, Measures(True))
    graded = GradedPhoto(Photo(True, 10.0, 12.0, None, tag=7), grading, file)
    fields = photo_fields(graded)
    assert fields == {
        "photo": PhotoRef(sha256="ab" * 32, taken_at=T0, size=12345),
        "grade": "B",
        "grade_confidence": 0.875,
        "grade_explanation": ("dent 12 mm; " * 60)[:500],
    }
    event = build_parcel_event(
        ParcelExited(decision(), 0.0, 300.0, 2100.0), "st1", to_utc, graded, event_id="e" * 32
    )
    assert (event.grade, event.photo) == ("B", fields["photo"])


def test_an_invalid_photo_is_reported_as_no_photo_with_its_reason() -> None:
    graded = GradedPhoto(Photo(False, 10.0, None, None, "all_black", tag=7), None, None)
    assert photo_fields(graded) == {
        "grade": "no_photo",
        "grade_explanation": "no valid photo: all_black",
    }
    assert photo_fields(None) == {}


def test_the_event_carries_the_claimed_units_the_classified_reads_and_the_confirmation() -> None:
    shoe = UnitReceipt(
        line_no=1,
        sku="SHOE",
        unit=1,
        evidence=Evidence.GTIN,
        verified=True,
        identifier="04006381333931",
    )
    boot = UnitReceipt(line_no=2, sku="BOOT", unit=1, evidence=Evidence.LABEL, verified=False)
    codes = (
        CodeRead(code_class=CodeClass.RMA_LABEL, value="RMA-1", source="scanner"),
        CodeRead(code_class=CodeClass.RETAIL, value="04006381333931", source="scanner"),
    )
    d = decision(units=(shoe, boot), codes=codes)
    confirmed = ParcelExited(d, 250.0, 300.0, 2100.0, divert_confirmed=True)
    event = build_parcel_event(confirmed, "st1", to_utc, None, event_id="e" * 32)
    assert (event.schema_version, event.units, event.codes) == (2, (shoe, boot), codes)
    assert (event.verified_units, event.divert_confirmed) == ((shoe,), True)
    unseen = ParcelExited(d, 250.0, 300.0, 2100.0, divert_confirmed=False)
    assert (
        build_parcel_event(unseen, "st1", to_utc, None, event_id="f" * 32).divert_confirmed is False
    )
