"""The customer's contact (name, e-mail, postal address, language) on orders and RMAs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.db import Database
from gateway.returns.order_csv import import_orders
from gateway.services.orders import get_order
from gateway.settings import Settings

pytestmark = pytest.mark.broker

ORDER: dict[str, Any] = {
    "order_ref": "ORD-9",
    "customer": "Zoë Ñúñez",
    "customer_email": "Zoe@Example.ES",
    "customer_address": "  Calle Mayor 5, 2º \r\n\r\n28013 Madrid \nEspaña",
    "customer_language": "es-ES",
    "lines": [
        {"sku": "A", "ordered_quantity": 2, "delivered_quantity": 2, "unit_price_cents": 900}
    ],
}
RMA: dict[str, Any] = {
    "order_ref": "ORD-9",
    "reason": "size",
    "resolution": "refund",
    "lines": [{"sku": "A", "quantity": 1}],
}


def test_the_rma_takes_the_orders_contact_unless_the_request_gives_one(
    client: TestClient,
) -> None:
    order = client.post("/api/v1/orders", json=ORDER)
    assert order.status_code == 201
    assert {k: order.json()[k] for k in ("customer_email", "customer_address")} == {
        "customer_email": "zoe@example.es",
        "customer_address": "Calle Mayor 5, 2º\n28013 Madrid\nEspaña",
    }
    rma = client.post("/api/v1/rmas", json=RMA).json()
    assert {k: rma[k] for k in rma if k.startswith("customer")} == {
        "customer": "Zoë Ñúñez",
        "customer_email": "zoe@example.es",
        "customer_address": "Calle Mayor 5, 2º\n28013 Madrid\nEspaña",
        "customer_language": "es-ES",
    }
    own = {
        **RMA,
        "customer_email": "Other@Example.ES",
        "customer_address": "Apartado 1\n08001 Barcelona",
        "customer_language": "fr",
    }
    rma = client.post("/api/v1/rmas", json=own).json()
    assert {k: rma[k] for k in rma if k.startswith("customer")} == {
        "customer": "Zoë Ñúñez",
        "customer_email": "other@example.es",
        "customer_address": "Apartado 1\n08001 Barcelona",
        "customer_language": "fr",
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("customer_address", "Line\x07bell", "an address may not hold control characters"),
        ("customer_address", "a\tb", "an address may not hold control characters"),
        ("customer_address", "\n".join("abcdefghi"), "an address has at most 8 lines"),
        ("customer_address", "x" * 501, "String should have at most 500 characters"),
        ("customer_language", "français", "String should match pattern"),
        ("customer_email", "no-at-sign", "String should match pattern"),
    ],
)
def test_bad_contact_fields_are_a_clear_422(
    client: TestClient, field: str, value: str, message: str
) -> None:
    refused = client.post("/api/v1/orders", json={**ORDER, field: value})
    assert refused.status_code == 422
    assert message in str(refused.json()["detail"])


CSV = (
    "order_number,customer,customer_email,customer_address,customer_language,delivered_on,"
    "sku,quantity_delivered,unit_price\n"
    'C-1,Фёдор Шевчук,fedor@example.ru,"ул. Ленина, 1|Москва 101000",ru,2026-11-20,A,1,9.90\n'
)


def test_csv_import_reads_the_address_and_language(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(CSV, encoding="utf-8")
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        db.migrate()
        report = import_orders(db, path, Settings(database_url=db.url))
        assert report.summary() == "1 created, 0 updated, 0 unchanged, 0 refused"
        with db.session() as s:
            order = get_order(s, "C-1")
            assert order is not None
            assert (order.customer, order.customer_address, order.customer_language) == (
                "Фёдор Шевчук",
                "ул. Ленина, 1\nМосква 101000",
                "ru",
            )
        assert import_orders(db, path, Settings(database_url=db.url)).unchanged == 1
    finally:
        db.dispose()
