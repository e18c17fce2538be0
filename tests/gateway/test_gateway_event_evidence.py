"""A unit is credited only on the evidence its line is verified by, of the right kind.

The screen the bridge applies (:func:`screen_event`, the RMA as announced to the site)
then ingest: a serialised or tagged line is not credited on its product's GTIN, and a
unit's evidence kind must be that of the identifier it names; what an honest station
reports for each line kind (``tests/security/test_event_trust.py``) is credited.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.models import CatalogueItem, Credit
from gateway.schemas import RmaDraft
from gateway.services import credits
from gateway.services.events import ingest_event, screen_event
from gateway.services.rmas import create_rma
from protocol import ParcelEvent, UnitReceipt
from tests.gateway.test_gateway_returns import CFG, NOW

GTIN = "4006381333931"


@pytest.fixture
def s(anydb: Database) -> Iterator[Session]:
    credits.configure(CFG)
    with anydb.session() as session:
        yield session
    credits.configure(None)


def _rma(s: Session, number: str, line: dict[str, object]) -> None:
    draft = RmaDraft.model_validate(
        {
            "number": number,
            "order_ref": f"O-{number}",
            "reason": "size",
            "resolution": "refund",
            "lines": [{"sku": "A", "quantity": 1, "unit_price_cents": 10_000, **line}],
        }
    )
    create_rma(s, CFG, draft, actor="api-key:shop", now=NOW)


def _parcel(number: str, evidence: str, identifier: str) -> ParcelEvent:
    return ParcelEvent(
        event_id="e" * 16,
        station="st1",
        parcel_id=1,
        inducted_at=NOW,
        length_mm=300.0,
        barcode=number,
        rma_number=number,
        lane="restock",
        disposition="restock",
        reason="matched",
        diverted=True,
        divert_confirmed=True,
        units=[
            UnitReceipt(
                line_no=1, sku="A", unit=1, evidence=evidence, verified=True, identifier=identifier
            )
        ],
    )


def _as_the_bridge(s: Session, event: ParcelEvent) -> str | None:
    """Screen the event as the bridge does; ingest it when sound; the refusal code."""
    refusal = screen_event(s, event, site=CFG.site)
    if refusal is not None:
        return refusal.code
    ingest_event(s, event, site=CFG.site)
    return None


def _credited(s: Session, number: str) -> int:
    return s.scalar(select(func.count(Credit.id)).where(Credit.rma_number == number)) or 0


@pytest.mark.parametrize(
    "line",
    [{"serial": "SN-1", "gtin": GTIN}, {"rfid_uid": "e2:80:11:60", "gtin": GTIN}],
    ids=["serialised", "tagged"],
)
def test_a_serialised_or_tagged_line_is_not_credited_on_its_product_barcode(
    s: Session, line: dict[str, object]
) -> None:
    # A GTIN names the product, not the unit: another unit of it shows the same GTIN.
    _rma(s, "R-UNIT", line)
    assert _as_the_bridge(s, _parcel("R-UNIT", "gtin", GTIN.zfill(14))) == "evidence_too_weak"
    assert _credited(s, "R-UNIT") == 0


@pytest.mark.parametrize(
    ("line", "evidence", "identifier"),
    [
        ({"gtin": GTIN}, "serial", GTIN.zfill(14)),
        ({"serial": "SN-1", "gtin": GTIN}, "tag", "SN-1"),
        ({"rfid_uid": "E2801160"}, "serial", "E2801160"),
    ],
    ids=["gtin as serial", "serial as tag", "tag as serial"],
)
def test_a_unit_whose_evidence_is_not_its_identifiers_kind_is_not_credited(
    s: Session, line: dict[str, object], evidence: str, identifier: str
) -> None:
    _rma(s, "R-KIND", line)
    refused = _as_the_bridge(s, _parcel("R-KIND", evidence, identifier))
    assert refused == "identifier_not_declared"
    assert _credited(s, "R-KIND") == 0


@pytest.mark.parametrize(
    ("line", "evidence", "identifier"),
    [
        ({"gtin": GTIN}, "gtin", GTIN.zfill(14)),
        ({"serial": "SN-1", "gtin": GTIN}, "serial", "SN-1"),
        ({"rfid_uid": "e2:80:11:60", "gtin": GTIN}, "tag", "E2801160"),
    ],
    ids=["product line by gtin", "serialised line by serial", "tagged line by tag"],
)
def test_a_unit_verified_by_its_lines_identifier_of_its_kind_is_credited(
    s: Session, line: dict[str, object], evidence: str, identifier: str
) -> None:
    _rma(s, "R-OK", line)
    assert _as_the_bridge(s, _parcel("R-OK", evidence, identifier)) is None
    assert _credited(s, "R-OK") == 1


def test_a_line_verified_by_the_catalogues_gtin_as_announced_is_credited(s: Session) -> None:
    # The line names no GTIN; the catalogue's one GTIN of its SKU is announced for it.
    s.add(CatalogueItem(sku="A", name="Shoe", weight_g=850, gtins=[GTIN.zfill(14)]))
    s.flush()
    _rma(s, "R-CAT", {})
    assert _as_the_bridge(s, _parcel("R-CAT", "gtin", GTIN.zfill(14))) is None
    assert _credited(s, "R-CAT") == 1
