"""Every number a peer sends is bounded within the column it is written to.

A peer's number (a station's message, an HTTP body, a CSV cell or a shop's order, all
validated by these models) that reaches a 32-bit ``Integer`` column must be bounded at
:data:`gateway.models.INT32_MAX`: PostgreSQL refuses more (``integer out of range``: a
500, or a dead-lettered message) where SQLite stores it. The table below is the audit of
which field reaches which column; a wider bound (or a narrower column) fails here, naming
both. The station's ``StationStatus.rma_revision`` is the one number stored clamped
instead (``gateway.services.stations.mirrored_revision``, tested with the station numbers).
"""

from __future__ import annotations

from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel
from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import InstrumentedAttribute

from gateway.models import (
    INT32_MAX,
    CatalogueItem,
    Order,
    OrderLine,
    RmaLineRecord,
    RmaUnit,
    Station,
    StationEvent,
)
from gateway.schemas import (
    CatalogueItemBody,
    OrderDraft,
    OrderLineDraft,
    ReceiptLine,
    RmaDraft,
    RmaLineDraft,
)
from protocol import ParcelEvent, StationStatus, UnitReceipt
from protocol.messages import INT64_MAX

#: (model, field, "value" or "length" (a list numbered 1..n into the column), column)
PEER_NUMBERS: list[tuple[type[BaseModel], str, str, InstrumentedAttribute[Any]]] = [
    (ParcelEvent, "parcel_id", "value", StationEvent.parcel_id),
    (UnitReceipt, "unit", "value", RmaUnit.unit_no),
    (RmaDraft, "lines", "length", RmaLineRecord.line_no),
    (RmaLineDraft, "quantity", "value", RmaLineRecord.quantity),
    (RmaLineDraft, "unit_price_cents", "value", RmaLineRecord.unit_price_cents),
    (ReceiptLine, "quantity", "value", RmaUnit.unit_no),  # units numbered 1..quantity
    (OrderDraft, "lines", "length", OrderLine.line_no),
    (OrderDraft, "discount_cents", "value", Order.discount_cents),
    (OrderDraft, "voucher_cents", "value", Order.voucher_cents),
    (OrderDraft, "shipping_paid_cents", "value", Order.shipping_paid_cents),
    (OrderLineDraft, "ordered_quantity", "value", OrderLine.ordered_quantity),
    (OrderLineDraft, "delivered_quantity", "value", OrderLine.delivered_quantity),
    (OrderLineDraft, "unit_price_cents", "value", OrderLine.unit_price_cents),
    (OrderLineDraft, "line_discount_cents", "value", OrderLine.line_discount_cents),
    (OrderLineDraft, "tax_rate_bp", "value", OrderLine.tax_rate_bp),
    *(
        (CatalogueItemBody, name, "value", getattr(CatalogueItem, name))
        for name in ("weight_g", "length_mm", "width_mm", "height_mm")
    ),
    (CatalogueItemBody, "weight_tol_g", "value", CatalogueItem.weight_tol_g),
    (CatalogueItemBody, "size_tol_mm", "value", CatalogueItem.size_tol_mm),
]


def upper_bound(model: type[BaseModel], field: str, what: str) -> int:
    """The largest value (or list length) ``model.field`` accepts; fails when unbounded."""
    for meta in model.model_fields[field].metadata:
        if what == "value" and isinstance(meta, annotated_types.Le):
            le: Any = meta.le
            return int(le)
        if what == "value" and isinstance(meta, annotated_types.Lt):
            lt: Any = meta.lt
            return int(lt) - 1
        if what == "length" and isinstance(meta, annotated_types.MaxLen):
            return int(meta.max_length)
    raise AssertionError(f"{model.__name__}.{field} has no upper bound")


def column_max(column: InstrumentedAttribute[Any]) -> int:
    """The largest integer the column holds on PostgreSQL (SQLite holds 2^63 - 1 in all)."""
    kind = column.property.columns[0].type
    assert isinstance(kind, Integer), f"{column} is not an integer column"
    return INT64_MAX if isinstance(kind, BigInteger) else INT32_MAX


@pytest.mark.parametrize(
    ("model", "field", "what", "column"),
    PEER_NUMBERS,
    ids=[f"{m.__name__}.{f}->{c}" for m, f, _w, c in PEER_NUMBERS],
)
def test_a_peer_number_fits_the_column_it_is_written_to(
    model: type[BaseModel], field: str, what: str, column: InstrumentedAttribute[Any]
) -> None:
    bound = upper_bound(model, field, what)
    assert bound <= column_max(column), (
        f"{model.__name__}.{field} accepts up to {bound}, {column} holds {column_max(column)}"
    )


#: (model, field, column): a station's texts and the VARCHAR column each is written to
PEER_TEXTS: list[tuple[type[BaseModel], str, InstrumentedAttribute[Any]]] = [
    *(
        (ParcelEvent, name, getattr(StationEvent, name))
        for name in ("event_id", "station", "rma_number", "lane", "disposition", "reason")
    ),
    (ParcelEvent, "barcode", StationEvent.barcode),
    (StationStatus, "station", Station.id),
    (StationStatus, "software_version", Station.software_version),
]


@pytest.mark.parametrize(
    ("model", "field", "column"),
    PEER_TEXTS,
    ids=[f"{m.__name__}.{f}->{c}" for m, f, c in PEER_TEXTS],
)
def test_a_station_text_fits_the_column_it_is_written_to(
    model: type[BaseModel], field: str, column: InstrumentedAttribute[Any]
) -> None:
    # PostgreSQL refuses a longer text (value too long: the message dead-lettered), SQLite
    # stores it: station_events.lane and disposition were VARCHAR(32) for 64-char names
    bound = upper_bound(model, field, "length")
    kind = column.property.columns[0].type
    assert isinstance(kind, String) and kind.length is not None, f"{column} is not a VARCHAR"
    assert bound <= kind.length, f"{model.__name__}.{field} takes {bound}, {column} {kind.length}"
