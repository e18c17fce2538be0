"""Refunds of a discounted, taxed order through the gateway (real SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.db import Database
from gateway.models import Credit
from gateway.schemas import OrderDraft, RmaDraft
from gateway.services.credits import apply_parcel
from gateway.services.orders import create_order
from gateway.services.reasons import seed_reasons
from gateway.services.rmas import create_rma, get_rma
from gateway.settings import Settings
from tests.gateway.conftest import parcel_for

CFG = Settings(site="site1", restocking_fee_percent={"default": 0.0})

ORDER: dict[str, Any] = {
    "order_ref": "ORD-9",
    "currency": "EUR",
    "discount_cents": 500,
    "voucher_cents": 1000,
    "shipping_paid_cents": 495,
    "tax_inclusive": True,
    "lines": [
        {
            "sku": "SHIRT",
            "ordered_quantity": 3,
            "delivered_quantity": 3,
            "unit_price_cents": 2990,
            "line_discount_cents": 300,
            "tax_rate_bp": 2000,
        },
        {
            "sku": "MUG",
            "ordered_quantity": 1,
            "delivered_quantity": 1,
            "unit_price_cents": 1250,
            "tax_rate_bp": 2000,
        },
    ],
}


def _return(db: Database, number: str, reason: str, lines: list[dict[str, Any]]) -> list[Credit]:
    with db.session() as s:
        draft = RmaDraft(
            number=number, order_ref="ORD-9", reason=reason, resolution="refund", lines=lines
        )
        create_rma(s, CFG, draft)
        rma = get_rma(s, number)
        assert rma is not None
        assert apply_parcel(s, CFG, rma, parcel_for(rma, "restock"), actor="station:st1")
        s.commit()
        credits = s.scalars(
            select(Credit).where(Credit.rma_number == number).order_by(Credit.id)
        ).all()
        s.expunge_all()
        return list(credits)


def _parts(credits: list[Credit]) -> list[tuple[str, int, int, int, int, int]]:
    """``(sku, quantity, paid, amount, tax refunded, shipping refunded)`` per SKU.

    Credits are per unit; the units of one line take consecutive shares, so their sums
    are the line's refund.
    """
    out: dict[str, list[int]] = {}
    for c in credits:
        row = out.setdefault(c.sku, [0, 0, 0, 0, 0])
        for i, v in enumerate(
            (c.quantity, c.paid_cents, c.amount_cents, c.tax_refund_cents, c.shipping_refund_cents)
        ):
            row[i] += v
    return [(sku, *row) for sku, row in out.items()]  # type: ignore[misc]


def test_a_discounted_order_returned_in_two_rmas_refunds_exactly_what_was_paid(
    anydb: Database,
) -> None:
    with anydb.session() as s:
        seed_reasons(s)
        create_order(s, OrderDraft.model_validate(ORDER))
    # bases 8670 / 1250: discount 437 / 63, voucher 874 / 126 -> paid 7359 / 1061;
    # shipping 495 by paid: 433 / 62. Shirt units 2453 each; its tax 7359 - 6133 = 1226.
    first = _return(anydb, "R1", "size", [{"sku": "SHIRT", "quantity": 2}])
    assert _parts(first) == [("SHIRT", 2, 4906, 4906, 818, 0)]
    # the rest, for a merchant-fault reason: goods and their share of the shipping paid
    second = _return(
        anydb, "R2", "defective", [{"sku": "SHIRT", "quantity": 1}, {"sku": "MUG", "quantity": 1}]
    )
    assert _parts(second) == [
        ("SHIRT", 1, 2453, 2453 + 144, 408, 144),
        ("MUG", 1, 1061, 1061 + 62, 177, 62),
    ]
    goods = sum(c.paid_cents for c in first + second)
    assert goods == 2990 * 3 - 300 + 1250 - 500 - 1000
    assert sum(c.tax_refund_cents for c in first + second) == 1226 + 177


def test_rma_lines_carry_the_unit_price_paid_after_discounts(db: Database) -> None:
    with db.session() as s:
        create_order(s, OrderDraft.model_validate(ORDER))
        draft = RmaDraft(
            order_ref="ORD-9",
            reason="size",
            resolution="refund",
            lines=[{"sku": "MUG", "quantity": 1}],
        )
        rma = create_rma(s, CFG, draft)
        assert [line.unit_price_cents for line in rma.lines] == [1061]


def test_order_api_takes_the_terms_and_names_unknown_fields(client: TestClient) -> None:
    created = client.post("/api/v1/orders", json=ORDER)
    assert created.status_code == 201
    body = created.json()
    assert (body["discount_cents"], body["voucher_cents"], body["shipping_paid_cents"]) == (
        500,
        1000,
        495,
    )
    assert [(ln["line_discount_cents"], ln["tax_rate_bp"]) for ln in body["lines"]] == [
        (300, 2000),
        (0, 2000),
    ]
    odd = {
        **ORDER,
        "order_ref": "ORD-10",
        "coupon": "X",
        "lines": [{**ORDER["lines"][1], "vat": 1}],
    }
    refused = client.post("/api/v1/orders", json=odd)
    assert refused.status_code == 422
    assert sorted((e["loc"][-1], e["type"]) for e in refused.json()["detail"]) == [
        ("coupon", "extra_forbidden"),
        ("vat", "extra_forbidden"),
    ]
    greedy = {**ORDER, "order_ref": "ORD-11", "voucher_cents": 9500}
    refused = client.post("/api/v1/orders", json=greedy)
    assert refused.status_code == 422
    assert "order discount and voucher (10000) exceed the lines (9920)" in refused.text
    bad_currency = client.post(
        "/api/v1/orders", json={**ORDER, "order_ref": "O12", "currency": "ABC"}
    )
    assert bad_currency.status_code == 422
    assert "'ABC' is not an ISO 4217 currency code" in bad_currency.text
