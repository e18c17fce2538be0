"""Refused goods in the stock ledger and the financial report, per currency (real DBs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api.schemas import ImpactReport, ImpactRowOut
from gateway.db import Database
from gateway.schemas import OrderDraft, RmaDraft
from gateway.services import credits
from gateway.services.orders import create_order
from gateway.services.reasons import seed_reasons
from gateway.services.reports import financial_impact, to_csv
from gateway.services.rmas import create_rma, get_rma
from gateway.services.stock import stock_levels
from gateway.services.write_offs import UnknownDestination
from gateway.settings import Settings
from tests.gateway.conftest import parcel_for

CFG = Settings(
    site="site1",
    return_shipping_cents=500,
    restocking_fee_percent={"default": 0.0},
    recovery_percent_by_category={"electronics": {"return_to_vendor": 80.0}},
)
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def _order(db: Database, ref: str, currency: str, lines: list[tuple[str, str, int, int]]) -> None:
    body: dict[str, Any] = {
        "order_ref": ref,
        "currency": currency,
        "lines": [
            {
                "sku": sku,
                "category": category,
                "ordered_quantity": qty,
                "delivered_quantity": qty,
                "unit_price_cents": price,
            }
            for sku, category, qty, price in lines
        ],
    }
    with db.session() as s:
        create_order(s, OrderDraft.model_validate(body))


def _parcel(
    db: Database, number: str, ref: str, sku: str, qty: int, sorted_to: str, **decide: Any
) -> None:
    with db.session() as s:
        draft = RmaDraft(
            number=number,
            order_ref=ref,
            reason="size",
            resolution="refund",
            lines=[{"sku": sku, "quantity": qty}],
        )
        create_rma(s, CFG, draft)
        rma = get_rma(s, number)
        assert rma is not None
        credits.apply_parcel(s, CFG, rma, parcel_for(rma, sorted_to), actor="station:st1", now=NOW)
        if decide:
            credits.decide(s, CFG, rma, "refuse", actor="user:lead", now=NOW, **decide)
        s.commit()


def test_refused_goods_reach_the_ledger_and_the_report_per_currency(anydb: Database) -> None:
    with anydb.session() as s:
        seed_reasons(s)
    _order(
        anydb, "O-EUR", "EUR", [("PHONE", "electronics", 1, 20000), ("SHIRT", "apparel", 2, 3000)]
    )
    _order(anydb, "O-JPY", "JPY", [("MUG", "kitchen", 1, 1500)])
    _parcel(anydb, "R1", "O-EUR", "PHONE", 1, "quarantine", destination="return_to_vendor")
    _parcel(anydb, "R2", "O-EUR", "SHIRT", 2, "restock")
    _parcel(anydb, "R3", "O-JPY", "MUG", 1, "quarantine", destination="scrap")
    with anydb.session() as s:
        assert [(x.sku, x.location, x.quantity) for x in stock_levels(s)] == [
            ("MUG", "SCRAP", 1),
            ("PHONE", "RTV", 1),
            ("SHIRT", "RESTOCK", 2),
        ]
        rows = financial_impact(s, CFG.zone)
    # EUR: the phone refused and sent to its vendor recovers 80 % (electronics setting);
    # JPY on its own rows, never added to the euros
    assert to_csv(rows).splitlines() == [
        "currency,day,category,units,refused_units,refunds_cents,store_credits_cents,"
        "exchanges_cents,shipping_refunded_cents,restocking_fees_cents,recovered_restock_cents,"
        "recovered_refurbish_cents,recovered_recycle_cents,recovered_return_to_vendor_cents,"
        "recovered_scrap_cents,recovered_return_to_customer_cents,shipping_cents,net_loss_cents",
        "EUR,2026-11-30,apparel,2,0,6000,0,0,0,0,6000,0,0,0,0,0,500,500",
        "EUR,2026-11-30,electronics,0,1,0,0,0,0,0,0,0,0,16000,0,0,500,-15500",
        "EUR,total,all,2,1,6000,0,0,0,0,6000,0,0,16000,0,0,1000,-15000",
        "JPY,2026-11-30,kitchen,0,1,0,0,0,0,0,0,0,0,0,0,0,500,500",
        "JPY,total,all,0,1,0,0,0,0,0,0,0,0,0,0,0,500,500",
    ]
    report = ImpactReport(
        currencies=sorted({r.currency for r in rows}),
        rows=[ImpactRowOut.model_validate(r) for r in rows],
    ).model_dump()
    assert report["currencies"] == ["EUR", "JPY"]
    assert report["rows"][1] == {
        "currency": "EUR",
        "day": "2026-11-30",
        "category": "electronics",
        "units": 0,
        "refused_units": 1,
        "refunds_cents": 0,
        "store_credits_cents": 0,
        "exchanges_cents": 0,
        "shipping_refunded_cents": 0,
        "restocking_fees_cents": 0,
        "recovered_restock_cents": 0,
        "recovered_refurbish_cents": 0,
        "recovered_recycle_cents": 0,
        "recovered_return_to_vendor_cents": 16000,
        "recovered_scrap_cents": 0,
        "recovered_return_to_customer_cents": 0,
        "shipping_cents": 500,
        "net_loss_cents": -15500,
    }


def test_an_unknown_destination_writes_nothing(db: Database) -> None:
    with db.session() as s:
        seed_reasons(s)
    _order(db, "O-1", "EUR", [("PHONE", "electronics", 1, 20000)])
    with pytest.raises(UnknownDestination):
        _parcel(db, "R1", "O-1", "PHONE", 1, "quarantine", destination="moon")
    with db.session() as s:
        assert stock_levels(s) == []


def test_the_decision_api_takes_the_destination(client: TestClient, rma_body: Any) -> None:
    assert client.post("/api/v1/rmas", json=rma_body("R1")).status_code == 201
    receipt = {"lines": [{"line_no": 1, "quantity": 1}, {"line_no": 2, "quantity": 2}]}
    assert client.post("/api/v1/rmas/R1/receipts", json=receipt).status_code == 200
    odd = client.post("/api/v1/rmas/R1/decision", json={"grade": "refuse", "destination": "moon"})
    assert odd.status_code == 422
    mixed = {"grade": "restock", "destination": "scrap"}
    refused = client.post("/api/v1/rmas/R1/decision", json=mixed)
    assert refused.status_code == 422
    assert "destination is only for grade 'refuse'" in refused.text
    body = {"grade": "refuse", "destination": "scrap"}
    assert client.post("/api/v1/rmas/R1/decision", json=body).status_code == 200
    levels = client.get("/api/v1/stock").json()["levels"]
    assert levels == [
        {"sku": "SKU-1", "location": "SCRAP", "quantity": 1},
        {"sku": "SKU-2", "location": "SCRAP", "quantity": 2},
    ]
    report = client.get("/api/v1/reports/financial").json()
    assert [(r["category"], r["refused_units"], r["shipping_cents"]) for r in report["rows"]] == [
        ("default", 3, 495),
        ("all", 3, 495),
    ]
