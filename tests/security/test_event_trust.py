"""Issue 15, kind 1: a parcel event is checked against what its station could know.

The rule table (:mod:`gateway.security.event_checks`) as a pure function, then the
production gateway process: a contradicting event sent over the broker is dead-lettered
with its rule's code and an alarm, and nothing of it is stored or credited, while a sound
one is.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from edge.sorter import ParcelExited, SorterCore
from edge.sorter.model import Reason, RmaLineRecord
from edge.station.events import build_parcel_event
from gateway.security.event_checks import QUARANTINE_REASONS, RULES, check_event
from protocol import ParcelEvent, RmaAnnouncement, RmaLine, Topics, UnitReceipt, encode
from simulator.testing import Directory, demo_belt, wait_until
from simulator.testing import line as station_line
from simulator.testing import rma as station_rma
from tests.security.conftest import ProdGateway
from tests.sorter.test_evidence import drive

RMA = RmaAnnouncement(
    number="R-TRUST",
    revision=1,
    order_ref="O-1",
    reason="size",
    resolution="refund",
    lines=(
        RmaLine(line_no=1, sku="SKU-1", quantity=1, rfid_uid="DD17380A"),
        RmaLine(line_no=2, sku="SKU-2", quantity=2, gtin="4006381333931"),
        RmaLine(line_no=3, sku="SKU-3", quantity=1),
    ),
)


LABEL_ONLY = RMA.model_copy(update={"lines": RMA.lines[2:]})
"""The RMA with only its line that declares no identifier."""


def unit(line_no: int, n: int = 1, **kw: Any) -> UnitReceipt:
    fields: dict[str, Any] = {
        "sku": {1: "SKU-1", 2: "SKU-2", 3: "SKU-3"}.get(line_no, "SKU-9"),
        "evidence": "label",
        "verified": False,
        **kw,
    }
    return UnitReceipt(line_no=line_no, unit=n, **fields)


TAG = {"evidence": "tag", "verified": True, "identifier": "DD17380A"}
GTIN = {"evidence": "gtin", "verified": True, "identifier": "04006381333931"}


def event(**kw: Any) -> ParcelEvent:
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "station": "st1",
        "parcel_id": 1,
        "inducted_at": datetime(2026, 5, 4, 12, 0, tzinfo=UTC),
        "length_mm": 300.0,
        "rma_number": "R-TRUST",
        "lane": "restock",
        "disposition": "restock",
        "reason": "matched",
        "diverted": True,
        "units": (unit(1, **TAG), unit(2, 1, **GTIN)),
    }
    return ParcelEvent(**{**fields, **kw})


QUARANTINE = {"lane": "quarantine", "disposition": "quarantine", "diverted": False}
RECYCLE = {"lane": "recycle", "disposition": "recycle"}
OTHER_TAG = {**TAG, "identifier": "DD17380B"}

CASES: list[tuple[str, dict[str, Any], RmaAnnouncement | None, str | None]] = [
    ("sound restock", {}, RMA, None),
    ("label-only line may restock", {"units": (unit(3),)}, RMA, None),
    ("unknown RMA quarantined", {**QUARANTINE, "reason": "unknown_rma", "units": ()}, None, None),
    (
        "no read quarantined",
        {**QUARANTINE, "reason": "no_read", "rma_number": None, "units": ()},
        None,
        None,
    ),
    ("restock of an RMA never announced", {}, None, "rma_not_announced"),
    (
        "recycle without an RMA",
        {**RECYCLE, "rma_number": None, "units": ()},
        None,
        "rma_not_announced",
    ),
    (
        "restock lane, quarantine disposition",
        {"disposition": "quarantine"},
        RMA,
        "lane_disposition",
    ),
    ("unknown disposition", {"lane": "l1", "disposition": "sell"}, RMA, "lane_disposition"),
    ("restock with a quarantine reason", {"reason": "unverified"}, RMA, "reason_disposition"),
    ("restock without a divert", {"diverted": False}, RMA, "not_diverted"),
    ("a line the RMA does not have", {"units": (unit(9),)}, RMA, "unit_not_a_line"),
    (
        "the wrong SKU for the line",
        {"units": (unit(1, sku="SKU-2", **TAG),)},
        RMA,
        "unit_not_a_line",
    ),
    ("more units than the line has", {"units": (unit(1, 2, **TAG),)}, RMA, "unit_beyond_quantity"),
    ("verified by another tag", {"units": (unit(1, **OTHER_TAG),)}, RMA, "identifier_not_declared"),
    ("restock without units", {"units": ()}, RMA, "restock_unverified"),
    ("label-only RMA restocked without units", {"units": ()}, LABEL_ONLY, None),
    ("restock of an unverified tagged unit", {"units": (unit(1),)}, RMA, "restock_unverified"),
]


@pytest.mark.parametrize(("case", "fields", "announced", "code"), CASES, ids=[c[0] for c in CASES])
def test_the_rule_table(
    case: str, fields: dict[str, Any], announced: RmaAnnouncement | None, code: str | None
) -> None:
    refusal = check_event(event(**fields), announced)
    assert (refusal.code if refusal else None) == code
    assert code is None or code in dict(RULES)


def test_the_announcement_must_be_the_events_rma() -> None:
    with pytest.raises(ValueError, match="not the event's RMA"):
        check_event(event(rma_number="R-OTHER"), RMA)


def test_contradicting_events_are_dead_lettered_with_an_alarm_and_nothing_credited(
    prod: ProdGateway, site: str, publisher: mqtt.Client
) -> None:
    body = {
        "number": "R-TRUST",
        "order_ref": "O-TRUST",
        "reason": "size",
        "resolution": "refund",
        "lines": [{"sku": "SKU-1", "quantity": 1, "rfid_uid": "DD17380A"}],
    }
    assert prod.admin.post("/api/v1/rmas", json=body).status_code == 201
    topic = Topics(site, "st1").event
    one = (unit(1, **TAG),)
    refused = {
        "rma_not_announced": event(rma_number="R-NEVER", units=()),
        "reason_disposition": event(reason="no_read", units=one),
        "unit_not_a_line": event(units=(unit(2, 1, **GTIN),)),
        "unit_beyond_quantity": event(units=(unit(1, 2, **TAG),)),
        "restock_unverified": event(units=(unit(1),)),
    }
    for bad in refused.values():
        publisher.publish(topic, encode(bad), qos=1).wait_for_publish(5)
    wait_until(
        lambda: len(prod.rows(f"select id from dead_letters where topic = '{topic}'")) == 5,
        what="five refused events",
    )
    errors = [e for (e,) in prod.rows(f"select error from dead_letters where topic = '{topic}'")]
    assert [e.split(":")[1].strip() for e in errors] == list(refused)
    assert all(e.startswith("untrusted event: ") for e in errors)
    wanted = [("untrusted_event", e.event_id) for e in refused.values()]
    query = "select kind, subject from alarms where station = 'st1' order by id"
    wait_until(lambda: prod.rows(query) == wanted, what="an alarm per refused event")
    assert prod.rows("select count(*) from station_events") == [(0,)]
    assert prod.admin.get("/api/v1/credits").json()["credits"] == []
    # the sound event of the same RMA is stored and credited
    good = event(units=one)
    publisher.publish(topic, encode(good), qos=1).wait_for_publish(5)
    wait_until(
        lambda: prod.rows("select event_id from station_events") == [(good.event_id,)],
        what="the sound event stored",
    )
    wait_until(lambda: prod.admin.get("/api/v1/credits").json()["credits"], what="its credit")


def test_every_quarantine_only_reason_of_the_station_is_known_to_the_gateway() -> None:
    # A reason the station gained (ambiguous_read, late_gate, gate_fault were missing) must
    # not let an event claim it with a restock: the gateway's table is the station's enum
    # less the two reasons a policy rule may give any disposition.
    station = {r.value for r in Reason} - {"matched", "hygiene_opened"}
    assert set(QUARANTINE_REASONS) == station
    event = ParcelEvent.model_validate(
        {
            "event_id": "0123456789",
            "station": "st1",
            "parcel_id": 1,
            "inducted_at": "2026-01-01T00:00:00Z",
            "length_mm": 300,
            "lane": "restock",
            "disposition": "restock",
            "reason": "ambiguous_read",
            "diverted": True,
        }
    )
    rule = dict(RULES)["reason_disposition"]
    assert rule(event, None) is not None
    assert (
        rule(event.model_copy(update={"lane": "quarantine", "disposition": "quarantine"}), None)
        is None
    )


SERIALISED = RmaLine(line_no=1, sku="SKU-1", quantity=1, gtin="4006381333931", serial="SN-1")
TAGGED = RmaLine(line_no=1, sku="SKU-1", quantity=1, gtin="4006381333931", rfid_uid="dd:17:38:0a")
BOTH = SERIALISED.model_copy(update={"rfid_uid": "DD17380A"})
PRODUCT = RmaLine(line_no=1, sku="SKU-1", quantity=1, gtin="4006381333931")


def _of(line: RmaLine) -> RmaAnnouncement:
    return RMA.model_copy(update={"lines": (line,)})


@pytest.mark.parametrize(
    ("line", "only"),
    [(SERIALISED, "serial"), (TAGGED, "tag"), (BOTH, "serial or tag")],
    ids=["serialised", "tagged", "serialised and tagged"],
)
def test_a_line_with_a_serial_or_tag_is_not_verified_by_its_product_barcode(
    line: RmaLine, only: str
) -> None:
    # Any unit of the same product shows the GTIN: the line's own serial / tag proves it.
    refusal = check_event(event(units=(unit(1, **GTIN),)), _of(line))
    assert refusal is not None
    assert (refusal.code, refusal.message) == (
        "evidence_too_weak",
        f"unit 1 of line 1 verified by its GTIN: only the line's {only} verifies it",
    )


@pytest.mark.parametrize(
    ("line", "evidence", "identifier"),
    [
        (PRODUCT, "serial", "04006381333931"),  # the line's GTIN reported as a serial read
        (PRODUCT, "tag", "04006381333931"),
        (SERIALISED, "tag", "SN-1"),  # its serial reported as a tag
        (SERIALISED, "gtin", "SN-1"),
        (TAGGED, "serial", "DD17380A"),  # its tag reported as a serial
        (TAGGED, "gtin", "DD17380A"),
        (BOTH, "serial", "04006381333931"),
    ],
)
def test_evidence_must_be_the_lines_identifier_of_its_kind(
    line: RmaLine, evidence: str, identifier: str
) -> None:
    claimed = unit(1, evidence=evidence, verified=True, identifier=identifier)
    refusal = check_event(event(units=(claimed,)), _of(line))
    assert refusal is not None
    assert (refusal.code, refusal.message) == (
        "identifier_not_declared",
        f"unit 1 of line 1 verified by a {evidence} its line does not declare",
    )


@pytest.mark.parametrize(
    ("line", "evidence", "identifier"),
    [
        (PRODUCT, "gtin", "04006381333931"),
        (PRODUCT, "gtin", "4006381333931"),  # compared as GTIN-14
        (SERIALISED, "serial", "SN-1"),
        (TAGGED, "tag", "DD17380A"),  # the line's UID in canonical form
        (BOTH, "serial", "SN-1"),
        (BOTH, "tag", "DD17380A"),
    ],
)
def test_a_unit_verified_by_its_lines_identifier_of_its_kind_is_sound(
    line: RmaLine, evidence: str, identifier: str
) -> None:
    claimed = unit(1, evidence=evidence, verified=True, identifier=identifier)
    assert check_event(event(units=(claimed,)), _of(line)) is None


def test_a_line_shown_by_its_product_barcode_alone_is_quarantined_unverified_soundly() -> None:
    # What the station reports for a serialised line it saw only the GTIN of.
    shown = unit(1, evidence="gtin", verified=False, identifier="04006381333931")
    quarantined = event(units=(shown,), reason="unverified", **QUARANTINE)
    assert check_event(quarantined, _of(SERIALISED)) is None
    restocked = check_event(event(units=(shown,)), _of(SERIALISED))
    assert restocked is not None and restocked.code == "restock_unverified"


def _station_event(record: RmaLineRecord, codes: list[str], uids: tuple[str, ...]) -> ParcelEvent:
    """The event a real station sorter reports for one parcel of RMA R-TRUST."""
    core = SorterCore(demo_belt(), Directory(station_rma("R-TRUST", record)))
    actions = drive(core, 0.0, ["R-TRUST", *codes], uids)
    [exited] = [a for a in actions if isinstance(a, ParcelExited)]
    return build_parcel_event(exited, "st1", _to_utc, None, event_id="e" * 32)


def _to_utc(_t_ms: float) -> datetime:
    return datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


CAMERA_GTIN = "09501101020917"
CAMERA_GS1 = "]C101" + CAMERA_GTIN  # the product alone (AI 01)
CAMERA_SERIAL = CAMERA_GS1 + "21SN0001"  # the product and its unit's serial (AI 21)

HONEST: list[tuple[str, RmaLineRecord, list[str], tuple[str, ...], str, bool]] = [
    ("product line by its GTIN", station_line(gtin=CAMERA_GTIN), [CAMERA_GS1], (), "gtin", True),
    (
        "serialised line by its serial",
        station_line(gtin=CAMERA_GTIN, serial="SN0001"),
        [CAMERA_SERIAL],
        (),
        "serial",
        True,
    ),
    (
        "serialised line by its GTIN only",
        station_line(gtin=CAMERA_GTIN, serial="SN0001"),
        [CAMERA_GS1],
        (),
        "gtin",
        False,
    ),
    (
        "tagged line by its tag",
        station_line(gtin=CAMERA_GTIN, rfid_uid="DD17380A"),
        [CAMERA_GS1],
        ("dd:17:38:0a",),
        "tag",
        True,
    ),
    (
        "tagged line by its GTIN only",
        station_line(gtin=CAMERA_GTIN, rfid_uid="DD17380A"),
        [CAMERA_GS1],
        (),
        "gtin",
        False,
    ),
]


@pytest.mark.parametrize(
    ("record", "codes", "uids", "evidence", "verified"),
    [case[1:] for case in HONEST],
    ids=[case[0] for case in HONEST],
)
def test_what_a_real_station_reports_for_each_line_kind_passes_the_checks(
    record: RmaLineRecord, codes: list[str], uids: tuple[str, ...], evidence: str, verified: bool
) -> None:
    # The gateway's rules must refuse no honest event: the sorter's own report of a parcel
    # of each line kind, checked against the same line as the gateway announces it.
    event = _station_event(record, codes, uids)
    [claimed] = event.units
    assert (claimed.evidence.value, claimed.verified) == (evidence, verified)
    assert event.disposition == ("restock" if verified else "quarantine")
    line = RmaLine(
        line_no=1,
        sku=record.sku,
        quantity=1,
        gtin=record.gtin,
        serial=record.serial,
        rfid_uid=record.rfid_uid,
    )
    assert check_event(event, _of(line)) is None
