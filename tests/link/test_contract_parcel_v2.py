"""ParcelEvent schema version 2: the units a parcel proved, its classified reads, the
divert confirmation; version 1 events from stations not yet upgraded still decode."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from protocol import (
    EVIDENCE_ORDER,
    CodeClass,
    CodeRead,
    Evidence,
    ParcelEvent,
    ProtocolError,
    UnitReceipt,
    decode,
    encode,
)

BASE = {
    "kind": "parcel",
    "event_id": "e" * 32,
    "station": "st1",
    "parcel_id": 7,
    "inducted_at": "2026-12-01T10:00:00Z",
    "length_mm": 300.0,
    "barcode": "RMA-000123",
    "rma_number": "RMA-000123",
    "lane": "restock",
    "disposition": "restock",
    "reason": "matched",
    "diverted": True,
}


def test_version_1_event_decodes_and_proves_nothing() -> None:
    event = decode(json.dumps({**BASE, "schema_version": 1}), ParcelEvent)
    assert event.schema_version == 1
    assert event.units == ()
    assert event.verified_units == ()
    assert event.divert_confirmed is None


def test_version_1_event_cannot_claim_units() -> None:
    unit = {"line_no": 1, "sku": "A", "unit": 1, "evidence": "label", "verified": False}
    with pytest.raises(ProtocolError, match="schema_version 2"):
        decode(json.dumps({**BASE, "schema_version": 1, "units": [unit]}), ParcelEvent)


def test_unknown_version_is_refused_naming_the_accepted_ones() -> None:
    with pytest.raises(ProtocolError, match=r"accepted: 1, 2"):
        decode(json.dumps({**BASE, "schema_version": 3}), ParcelEvent)


def test_version_2_round_trip_with_units_codes_and_confirmation() -> None:
    event = ParcelEvent(
        event_id="f" * 32,
        station="st1",
        parcel_id=8,
        inducted_at=datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        length_mm=250.0,
        rma_number="RMA-000123",
        lane="restock",
        disposition="restock",
        reason="matched",
        diverted=True,
        units=(
            UnitReceipt(
                line_no=1,
                sku="SHOE-42",
                unit=1,
                evidence=Evidence.SERIAL,
                verified=True,
                identifier="SN0001",
            ),
            UnitReceipt(line_no=2, sku="SOCK", unit=1, evidence=Evidence.LABEL, verified=False),
        ),
        codes=(
            CodeRead(code_class=CodeClass.RMA_LABEL, value="RMA-000123"),
            CodeRead(code_class=CodeClass.RETAIL, value="04006381333931", detail="]E0"),
        ),
        divert_confirmed=False,
    )
    assert event.schema_version == 2
    back = decode(encode(event), ParcelEvent)
    assert back == event
    assert [u.line_no for u in back.verified_units] == [1]


@pytest.mark.parametrize(
    ("unit", "message"),
    [
        ({"evidence": "label", "verified": True}, "never verifies"),
        ({"evidence": "label", "verified": False, "identifier": "X"}, "never verifies"),
        ({"evidence": "serial", "verified": True}, "needs the identifier"),
        ({"evidence": "tag", "verified": False}, "needs the identifier"),
    ],
)
def test_unit_evidence_must_back_its_verdict(unit: dict[str, object], message: str) -> None:
    payload = {**BASE, "units": [{"line_no": 1, "sku": "A", "unit": 1, **unit}]}
    with pytest.raises(ProtocolError, match=message):
        decode(json.dumps(payload), ParcelEvent)


def test_a_unit_is_claimed_once_per_event_and_only_with_an_rma() -> None:
    unit = {"line_no": 1, "sku": "A", "unit": 1, "evidence": "label", "verified": False}
    with pytest.raises(ProtocolError, match="claimed twice"):
        decode(json.dumps({**BASE, "units": [unit, unit]}), ParcelEvent)
    with pytest.raises(ProtocolError, match="without an rma_number"):
        decode(json.dumps({**BASE, "rma_number": None, "units": [unit]}), ParcelEvent)


def test_divert_confirmation_only_for_a_diverted_parcel() -> None:
    payload = {**BASE, "diverted": False, "lane": "quarantine", "divert_confirmed": True}
    with pytest.raises(ProtocolError, match="diverted parcel"):
        decode(json.dumps(payload), ParcelEvent)


def test_event_bounds_units_and_reads() -> None:
    unit = {"sku": "A", "evidence": "label", "verified": False}
    units = [{**unit, "line_no": 1, "unit": i} for i in range(1, 258)]
    with pytest.raises(ProtocolError, match="units"):
        decode(json.dumps({**BASE, "units": units}), ParcelEvent)
    codes = [{"code_class": "unknown", "value": str(i)} for i in range(65)]
    with pytest.raises(ProtocolError, match="codes"):
        decode(json.dumps({**BASE, "codes": codes}), ParcelEvent)


def test_evidence_order_is_strongest_first() -> None:
    assert [e.value for e in EVIDENCE_ORDER] == ["serial", "tag", "gtin", "label"]


ANN = {
    "kind": "rma",
    "number": "RMA-000123",
    "revision": 4,
    "order_ref": "O-1",
    "reason": "too_small",
    "resolution": "refund",
}


def test_announcement_v2_carries_received_value_and_catalogue() -> None:
    from protocol import RmaAnnouncement

    line = {
        "line_no": 1,
        "sku": "SHOE-42",
        "quantity": 2,
        "received_quantity": 1,
        "unit_value_cents": 4999,
        "weight_g": 850,
        "length_mm": 330,
        "width_mm": 210,
        "height_mm": 120,
    }
    ann = decode(json.dumps({**ANN, "schema_version": 2, "lines": [line]}), RmaAnnouncement)
    assert ann.schema_version == 2
    assert (ann.lines[0].received_quantity, ann.lines[0].weight_g) == (1, 850)
    with pytest.raises(ProtocolError, match="need schema_version 2"):
        decode(json.dumps({**ANN, "schema_version": 1, "lines": [line]}), RmaAnnouncement)


def test_announcement_v1_is_accepted_without_the_new_fields() -> None:
    from protocol import RmaAnnouncement

    line = {"line_no": 1, "sku": "SHOE-42", "quantity": 2}
    ann = decode(json.dumps({**ANN, "schema_version": 1, "lines": [line]}), RmaAnnouncement)
    assert ann.lines[0].received_quantity == 0


def test_received_quantity_cannot_exceed_the_line() -> None:
    from protocol import RmaAnnouncement

    line = {"line_no": 1, "sku": "S", "quantity": 1, "received_quantity": 2}
    with pytest.raises(ProtocolError, match="exceeds quantity"):
        decode(json.dumps({**ANN, "lines": [line]}), RmaAnnouncement)
