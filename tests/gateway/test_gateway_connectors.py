"""Shop connectors (issue 18): a credit becomes exactly one refund at the shop, a stock
movement one adjustment, through the durable queue (429 / 5xx retried, dead after the
limit, replayed once), against real local servers answering like Shopify and WooCommerce.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy.orm import Session

from gateway.connectors import build_connectors
from gateway.connectors.base import ConnectorWorker, deliver_due, list_jobs, replay
from gateway.connectors.pull import pull_orders
from gateway.db import Database
from gateway.main import main
from gateway.models import ConnectorJob
from gateway.services import credits
from gateway.services.events import ingest_event
from gateway.services.outbox import NotReplayable
from gateway.settings import Settings
from tests.gateway.fake_shops import FakeShopify, FakeWooCommerce, running
from tests.gateway.test_gateway_returns import CFG, _event, order, rma

TOKEN = "shpat_0123456789abcdef-never-logged"
WOO_SECRET = "cs_0123456789abcdef-never-logged"


def shop_settings(**over: Any) -> Settings:
    """CFG with connectors: 2 s first back-off, dead after 3 attempts."""
    base: dict[str, Any] = {
        "connector_backoff_s": 2.0,
        "connector_max_attempts": 3,
        "connector_timeout_s": 5.0,
    }
    return CFG.model_copy(update=base | over)


@pytest.fixture
def s(anydb: Database) -> Iterator[Session]:
    with anydb.session() as session:
        yield session


@pytest.fixture
def shopify_shop() -> Iterator[FakeShopify]:
    shop = FakeShopify()
    shop.orders["#ORD-1"] = {
        "id": "gid://shopify/Order/1001",
        "name": "#ORD-1",
        "lineItems": {
            "nodes": [
                {"id": "gid://shopify/LineItem/11", "sku": "A"},
                {"id": "gid://shopify/LineItem/12", "sku": "B"},
            ]
        },
        "transactions": [
            {"id": "gid://shopify/OrderTransaction/5", "kind": "AUTHORIZATION",
             "status": "SUCCESS", "gateway": "shopify_payments"},
            {"id": "gid://shopify/OrderTransaction/6", "kind": "CAPTURE",
             "status": "SUCCESS", "gateway": "shopify_payments"},
        ],
    }  # fmt: skip
    shop.variants["A"] = "gid://shopify/InventoryItem/77"
    with running(shop):
        yield shop


def shopify_settings(shop: FakeShopify, **over: Any) -> Settings:
    base: dict[str, Any] = {
        "connectors": ["shopify"],
        "shopify_shop": "test-shop",
        "shopify_admin_url": shop.url,
        "shopify_access_token": SecretStr(TOKEN),
        "shopify_locations": {"RESTOCK": "gid://shopify/Location/1"},
    }
    return shop_settings(**(base | over))


def credit_unit_a(s: Session, settings: Settings) -> datetime:
    """RMA R1 for 1 unit of A (19.99 paid), received and verified by GTIN: credited.

    Returns when the credit was booked (its jobs are due from then).
    """
    credits.configure(settings)
    try:
        order(s)
        rma(s, "R1", [{"sku": "A", "quantity": 1}])
        assert ingest_event(s, _event("R1", "restock", units=[(1, "A", 1, "gtin")])) is True
    finally:
        credits.configure(None)
    (booked,) = {j.next_attempt_at for j in list_jobs(s)}
    return booked


def jobs(s: Session) -> list[tuple[str, str, str, int, str]]:
    rows = sorted(list_jobs(s), key=lambda j: j.id)
    return [(j.kind, j.key, j.status, j.attempts, j.last_error) for j in rows]


def test_shopify_credit_is_one_refund_retried_after_429_and_5xx(
    s: Session, shopify_shop: FakeShopify, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = shopify_settings(shopify_shop)
    t0 = credit_unit_a(s, settings)
    assert jobs(s) == [
        ("stock", "stock:R1:1:1:return_in", "pending", 0, ""),
        ("refund", "credit:R1:1:1", "pending", 0, ""),
    ]
    shop = build_connectors(settings)
    shopify_shop.faults["RefundCreate"] = [(429, {"Retry-After": "7"}), (503, {})]
    assert deliver_due(s, settings, shop, now=t0) == 1  # the stock movement
    assert jobs(s)[1] == ("refund", "credit:R1:1:1", "pending", 1, "HTTP 429")
    (job,) = list_jobs(s, status="pending")
    assert job.next_attempt_at == t0 + timedelta(seconds=7)  # Retry-After over 2 s back-off
    assert deliver_due(s, settings, shop, now=t0 + timedelta(seconds=6)) == 0  # not due
    assert deliver_due(s, settings, shop, now=t0 + timedelta(seconds=7)) == 0
    assert jobs(s)[1] == ("refund", "credit:R1:1:1", "pending", 2, "HTTP 503")
    assert job.next_attempt_at == t0 + timedelta(seconds=11)  # 2 s x 2
    assert deliver_due(s, settings, shop, now=t0 + timedelta(seconds=11)) == 1
    assert jobs(s)[1] == ("refund", "credit:R1:1:1", "done", 3, "")
    assert job.shop_ref == "gid://shopify/Refund/1"

    assert shopify_shop.refunds == [
        {
            "id": "gid://shopify/Refund/1",
            "orderId": "gid://shopify/Order/1001",
            "note": "RMA R1 line 1 unit 1 [rs:credit:R1:1:1]",
            "notify": False,
            "currency": "EUR",
            "refundLineItems": [
                {"lineItemId": "gid://shopify/LineItem/11", "quantity": 1,
                 "restockType": "NO_RESTOCK"}
            ],
            "transactions": [
                {"orderId": "gid://shopify/Order/1001",
                 "parentId": "gid://shopify/OrderTransaction/6",
                 "gateway": "shopify_payments", "kind": "REFUND", "amount": "19.99"}
            ],
        }
    ]  # fmt: skip
    calls = shopify_shop.calls("RefundCreate")
    assert len(calls) == 3
    keys = {c["body"]["variables"]["key"] for c in calls}
    assert len(keys) == 1  # every retry carries the same idempotency key
    assert "@idempotent(key: $key)" in calls[0]["body"]["query"]
    assert shopify_shop.adjustments == [
        {
            "id": "gid://shopify/InventoryAdjustmentGroup/1",
            "reason": "restock",
            "name": "available",
            "referenceDocumentUri": "returns-sorter://rma/R1",
            "changes": [
                {"delta": 1, "inventoryItemId": "gid://shopify/InventoryItem/77",
                 "locationId": "gid://shopify/Location/1"}
            ],
        }
    ]  # fmt: skip
    headers = {c["headers"]["X-Shopify-Access-Token"] for c in shopify_shop.requests}
    assert headers == {TOKEN}
    assert all(c["path"] == "/admin/api/2026-04/graphql.json" for c in shopify_shop.requests)
    assert TOKEN not in caplog.text
    assert deliver_due(s, settings, shop, now=t0 + timedelta(hours=1)) == 0  # nothing left


def test_shopify_refund_dead_after_the_limit_then_replayed_once(
    s: Session, shopify_shop: FakeShopify
) -> None:
    settings = shopify_settings(shopify_shop, shopify_locations={})  # stock not pushed
    t0 = credit_unit_a(s, settings)
    assert [j[:2] for j in jobs(s)] == [("refund", "credit:R1:1:1")]
    shop = build_connectors(settings)
    # the third answer is lost after Shopify made the refund
    shopify_shop.faults["RefundCreate"] = [(500, {}), (502, {}), "lost"]
    for at_s in (0, 2, 6):
        deliver_due(s, settings, shop, now=t0 + timedelta(seconds=at_s))
    (job,) = list_jobs(s)
    assert (job.status, job.attempts, job.last_error) == ("dead", 3, "HTTP 502")
    assert len(shopify_shop.refunds) == 1
    assert deliver_due(s, settings, shop, now=t0 + timedelta(days=1)) == 0  # dead stays dead
    replay(s, job, now=t0 + timedelta(days=1))
    with pytest.raises(NotReplayable):
        replay(s, job)
    assert deliver_due(s, settings, shop, now=t0 + timedelta(days=1)) == 1
    assert (job.status, job.attempts, job.shop_ref) == ("done", 1, "gid://shopify/Refund/1")
    # the replay reused the key: Shopify answered the first refund, made no second one
    assert len(shopify_shop.refunds) == 1
    assert len(shopify_shop.calls("RefundCreate")) == 4


def test_shopify_refusals_are_dead_at_once(s: Session, shopify_shop: FakeShopify) -> None:
    settings = shopify_settings(shopify_shop)
    del shopify_shop.orders["#ORD-1"]
    del shopify_shop.variants["A"]
    t0 = credit_unit_a(s, settings)
    deliver_due(s, settings, build_connectors(settings), now=t0)
    assert jobs(s) == [
        ("stock", "stock:R1:1:1:return_in", "dead", 1, "no Shopify variant with SKU 'A'"),
        ("refund", "credit:R1:1:1", "dead", 1, "no Shopify order #ORD-1"),
    ]


@pytest.fixture
def woo_shop() -> Iterator[FakeWooCommerce]:
    shop = FakeWooCommerce()
    shop.orders[1] = {
        "id": 1,
        "number": "1",
        "currency": "EUR",
        "line_items": [
            {"id": 31, "sku": "A", "quantity": 2, "subtotal": "39.98", "total": "39.98",
             "total_tax": "0.00", "taxes": []},
            {"id": 32, "sku": "B", "quantity": 1, "subtotal": "50.00", "total": "50.00",
             "total_tax": "0.00", "taxes": []},
        ],
        "shipping_lines": [{"id": 40, "method_id": "flat_rate", "total": "5.00"}],
    }  # fmt: skip
    shop.products[501] = {
        "id": 501,
        "sku": "A",
        "manage_stock": True,
        "stock_quantity": 5,
        "meta_data": [],
    }
    with running(shop):
        yield shop


def test_woocommerce_refund_and_stock_once_despite_429_and_lost_answers(
    s: Session, woo_shop: FakeWooCommerce, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = shop_settings(
        connectors=["woocommerce"],
        woocommerce_url=woo_shop.url,
        woocommerce_consumer_key=SecretStr("ck_test"),
        woocommerce_consumer_secret=SecretStr(WOO_SECRET),
    )
    t0 = credit_unit_a(s, settings)
    # the RMA's order ORD-1 is WooCommerce order 1 here
    for job in list_jobs(s, status="pending"):
        if job.kind == "refund":
            job.payload = {**job.payload, "order_ref": "1"}
    s.commit()
    woo_shop.faults["POST orders/{id}/refunds"] = [(429, {"Retry-After": "30"}), "lost"]
    woo_shop.faults["PUT products/{id}"] = ["lost"]
    shop = build_connectors(settings)
    deliver_due(s, settings, shop, now=t0)
    assert jobs(s) == [
        ("stock", "stock:R1:1:1:return_in", "pending", 1, "HTTP 502"),
        ("refund", "credit:R1:1:1", "pending", 1, "HTTP 429"),
    ]
    deliver_due(s, settings, shop, now=t0 + timedelta(seconds=30))
    assert [j[2:4] for j in jobs(s)] == [("done", 2), ("pending", 2)]
    deliver_due(s, settings, shop, now=t0 + timedelta(seconds=34))
    assert [j[2:4] for j in jobs(s)] == [("done", 2), ("done", 3)]

    # the lost POST made the refund; the retry found it by its key and created none
    assert woo_shop.refunds[1] == [
        {
            "id": 700,
            "amount": "19.99",
            "reason": "RMA R1 line 1 unit 1 [rs:credit:R1:1:1]",
            "api_refund": True,
            "line_items": [{"id": 31, "quantity": 1, "refund_total": "19.99"}],
        }
    ]
    assert len(woo_shop.calls("POST orders/{id}/refunds")) == 2
    # one PUT: 5 + 1, the marker found on the retry
    assert woo_shop.product_puts == [
        {
            "stock_quantity": 6,
            "meta_data": [{"key": "rs_stock_move:stock:R1:1:1:return_in", "value": 1}],
        }
    ]
    assert woo_shop.products[501]["stock_quantity"] == 6
    assert all(r["query"]["oauth_consumer_key"] == "ck_test" for r in woo_shop.requests)
    assert WOO_SECRET not in caplog.text
    assert all(WOO_SECRET not in str(r) for r in woo_shop.requests)


SHOPIFY_ORDERS: dict[str, Any] = {
    "#1001": {
        "name": "#1001",
        "email": "zoe@example.fr",
        "currencyCode": "EUR",
        "taxesIncluded": True,
        "customer": {"displayName": "Zoë Martin"},
        "shippingAddress": {"formatted": ["Zoë Martin", "12 rue de la Paix", "75002 Paris"]},
        "totalDiscountsSet": {"shopMoney": {"amount": "7.23"}},
        "totalShippingPriceSet": {"shopMoney": {"amount": "4.95"}},
        "fulfillments": [{"createdAt": "2026-11-20T09:15:00Z"}],
        "lineItems": {
            "nodes": [
                {"sku": "SHIRT-M", "name": "Linen shirt", "quantity": 2,
                 "originalUnitPriceSet": {"shopMoney": {"amount": "29.9"}},
                 "totalDiscountSet": {"shopMoney": {"amount": "0.0"}},
                 "taxLines": [{"ratePercentage": 20.0}]},
            ]
        },
    }
}  # fmt: skip


def test_pull_orders_maps_each_shop_to_drafts(
    shopify_shop: FakeShopify, woo_shop: FakeWooCommerce
) -> None:
    shopify_shop.orders = SHOPIFY_ORDERS
    settings = shopify_settings(shopify_shop)
    (draft,) = build_connectors(settings)["shopify"].pull_orders()
    assert (draft.order_ref, draft.discount_cents, draft.shipping_paid_cents) == (
        "#1001",
        723,
        495,
    )
    assert [(ln.sku, ln.ordered_quantity, ln.unit_price_cents, ln.tax_rate_bp)
            for ln in draft.lines] == [("SHIRT-M", 2, 2990, 2000)]  # fmt: skip
    woo = shop_settings(
        connectors=["woocommerce"],
        woocommerce_url=woo_shop.url,
        woocommerce_consumer_key=SecretStr("ck_test"),
        woocommerce_consumer_secret=SecretStr(WOO_SECRET),
    )
    woo_shop.orders[1]["line_items"][0] |= {"total": "36.00", "total_tax": "7.20"}
    (wdraft,) = build_connectors(woo)["woocommerce"].pull_orders()
    assert (wdraft.order_ref, wdraft.tax_inclusive) == ("1", False)
    assert [
        (ln.sku, ln.unit_price_cents, ln.line_discount_cents, ln.tax_rate_bp) for ln in wdraft.lines
    ] == [("A", 1999, 398, 2000), ("B", 5000, 0, 0)]


def test_a_pulled_order_holding_nul_or_not_an_object_is_skipped_the_others_kept(
    shopify_shop: FakeShopify,
    woo_shop: FakeWooCommerce,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    # PostgreSQL cannot store U+0000 and stations refuse an announcement holding it: the
    # shop's order is refused where it enters, as the API and the CSV imports refuse it
    caplog.set_level(logging.WARNING, logger="gateway.connectors.base")
    nul = dict(SHOPIFY_ORDERS["#1001"], name="#1002", customer={"displayName": "Zo\x00e"})
    shopify_shop.orders = {"#1001": SHOPIFY_ORDERS["#1001"], "#1002": nul}
    connector = build_connectors(shopify_settings(shopify_shop))["shopify"]
    assert [d.order_ref for d in connector.pull_orders()] == ["#1001"]
    assert (
        "shopify order skipped name='#1002' error=NUL character (U+0000) at customer.displayName"
        in caplog.messages
    )
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    db.create_all()
    assert pull_orders(db, connector, limit=50) == ["#1001: created"]
    db.dispose()
    woo_shop.orders[2] = "not an order"  # type: ignore[assignment]
    woo_shop.orders[3] = dict(woo_shop.orders[1], id=3, number="3", billing={"last_name": "N\x00"})
    woo = shop_settings(
        connectors=["woocommerce"],
        woocommerce_url=woo_shop.url,
        woocommerce_consumer_key=SecretStr("ck_test"),
        woocommerce_consumer_secret=SecretStr(WOO_SECRET),
    )
    assert [d.order_ref for d in build_connectors(woo)["woocommerce"].pull_orders()] == ["1"]
    assert caplog.messages[-2:] == [
        "woocommerce order skipped item=1 error=not a JSON object",
        "woocommerce order skipped id=3 error=NUL character (U+0000) at billing.last_name",
    ]


def test_an_answer_the_connector_cannot_read_fails_its_job_not_the_round(
    s: Session, shopify_shop: FakeShopify
) -> None:
    # the order's capture lacks "gateway": a KeyError escaped deliver_round, the round
    # rolled back, and the job came first again in every round: no refund or stock job
    # behind it ever went out
    for t in shopify_shop.orders["#ORD-1"]["transactions"]:
        t.pop("gateway")
    settings = shopify_settings(shopify_shop)
    booked = credit_unit_a(s, settings)
    connectors = build_connectors(settings)
    deliver_due(s, settings, connectors, now=booked + timedelta(seconds=1))
    s.expire_all()
    assert [(kind, status, attempts, error) for kind, _k, status, attempts, error in jobs(s)] == [
        ("stock", "done", 1, ""),
        ("refund", "pending", 1, "KeyError: 'gateway'"),
    ]


def test_a_pulled_order_delivered_outside_the_calendar_range_is_skipped_naming_the_field(
    shopify_shop: FakeShopify, woo_shop: FakeWooCommerce, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a shop's typo in a delivery year (9999) was stored as the delivery, and
    an RMA on the order then overflowed its return window (a 500)."""
    caplog.set_level(logging.WARNING, logger="gateway.connectors.base")
    late = dict(
        SHOPIFY_ORDERS["#1001"], name="#1002", fulfillments=[{"createdAt": "9999-12-31T09:15:00Z"}]
    )
    shopify_shop.orders = {"#1001": SHOPIFY_ORDERS["#1001"], "#1002": late}
    connector = build_connectors(shopify_settings(shopify_shop))["shopify"]
    assert [d.order_ref for d in connector.pull_orders()] == ["#1001"]
    (skipped,) = [m for m in caplog.messages if "#1002" in m]
    assert skipped.startswith("shopify order skipped name='#1002' error=1 validation error")
    assert "delivered_at\n  Input should be less than 3000-01-01T00:00:00Z" in skipped
    woo_shop.orders[1]["date_completed_gmt"] = "1969-12-31T23:59:59"
    woo = shop_settings(
        connectors=["woocommerce"],
        woocommerce_url=woo_shop.url,
        woocommerce_consumer_key=SecretStr("ck_test"),
        woocommerce_consumer_secret=SecretStr(WOO_SECRET),
    )
    assert build_connectors(woo)["woocommerce"].pull_orders() == []
    assert (
        "delivered_at\n  Input should be greater than or equal to 1970-01-01T00:00:00Z"
        in (caplog.messages[-1])
    )


def test_dead_jobs_are_listed_and_replayed_from_the_api(client: TestClient) -> None:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as session:
        job = ConnectorJob(
            connector="shopify",
            kind="refund",
            key="credit:R9:1:1",
            payload={"key": "credit:R9:1:1"},
            status="dead",
            attempts=3,
            last_error="HTTP 502",
        )
        session.add(job)
        session.commit()
        job_id = job.id
    dead = client.get("/api/v1/connectors/jobs", params={"status": "dead"})
    assert dead.status_code == 200
    assert [(j["id"], j["key"], j["last_error"]) for j in dead.json()["jobs"]] == [
        (job_id, "credit:R9:1:1", "HTTP 502")
    ]
    again = client.post(f"/api/v1/connectors/jobs/{job_id}/replay")
    assert (again.status_code, again.json()["status"], again.json()["attempts"]) == (
        200,
        "pending",
        0,
    )
    twice = client.post(f"/api/v1/connectors/jobs/{job_id}/replay")
    assert twice.status_code == 409
    assert twice.json()["detail"] == f"connector job {job_id} is 'pending', not dead"
    assert client.post("/api/v1/connectors/jobs/999/replay").status_code == 404


def test_pull_orders_command_upserts_the_shops_orders(
    shopify_shop: FakeShopify,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shopify_shop.orders = SHOPIFY_ORDERS
    monkeypatch.setenv("RS_DATABASE_URL", f"sqlite:///{tmp_path / 'g.db'}")
    monkeypatch.setenv("RS_CONNECTORS", '["shopify"]')
    monkeypatch.setenv("RS_SHOPIFY_SHOP", "test-shop")
    monkeypatch.setenv("RS_SHOPIFY_ADMIN_URL", shopify_shop.url)
    monkeypatch.setenv("RS_SHOPIFY_ACCESS_TOKEN", TOKEN)
    assert main(["pull-orders", "shopify"]) == 0
    assert capsys.readouterr().out == "#1001: created\n1 pulled, 0 refused\n"
    assert main(["pull-orders", "shopify"]) == 0
    assert capsys.readouterr().out == "#1001: unchanged\n1 pulled, 0 refused\n"
    shopify_shop.faults["RecentOrders"] = [(401, {})]
    assert main(["pull-orders", "shopify"]) == 2
    assert capsys.readouterr().out == "pull-orders: shopify: HTTP 401\n"
    monkeypatch.setenv("RS_CONNECTORS", "[]")
    assert main(["pull-orders", "shopify"]) == 2
    assert capsys.readouterr().out == "pull-orders: shopify is not in RS_CONNECTORS\n"


def test_a_connector_without_credentials_is_refused_by_the_settings() -> None:
    with pytest.raises(ValidationError, match="connector shopify needs shopify_access_token"):
        Settings(connectors=["shopify"], shopify_shop="test-shop")
    with pytest.raises(ValidationError, match="connector woocommerce needs woocommerce_url"):
        Settings(
            connectors=["woocommerce"],
            woocommerce_consumer_key=SecretStr("ck"),
            woocommerce_consumer_secret=SecretStr("cs"),
        )
    with pytest.raises(ValidationError, match="woocommerce_url must be an https:// URL"):
        Settings(
            env="prod",
            secret_key="k" * 40,
            woocommerce_url="http://shop.example",
        )


class _CountingShop:
    """A connector that takes every stock push (and counts them)."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def push_stock(self, push: Any) -> str:
        self.keys.append(push.key)
        return f"adj-{len(self.keys)}"

    def push_refund(self, push: Any) -> str:  # pragma: no cover - no refund queued here
        raise AssertionError("no refund queued")


def test_a_backlog_of_shop_pushes_goes_out_in_rounds_back_to_back(anydb: Database) -> None:
    now = datetime.now().astimezone()
    with anydb.session() as s:
        for i in range(45):  # more than two rounds (20 each) of one busy minute
            key = f"stock:R{i}:1:1:return_in"
            s.add(
                ConnectorJob(
                    connector="fake",
                    kind="stock",
                    key=key,
                    payload={
                        "key": key,
                        "sku": "A",
                        "location": "main",
                        "quantity": 1,
                        "kind": "return_in",
                        "rma_number": f"R{i}",
                    },
                    next_attempt_at=now - timedelta(seconds=1),
                )
            )
        s.commit()
    shop = _CountingShop()
    worker = ConnectorWorker(anydb.sessions, shop_settings(), {"fake": shop})
    assert worker.run_rounds() == 3  # 20 + 20 + 5: the third is not full
    assert sorted(shop.keys) == sorted(f"stock:R{i}:1:1:return_in" for i in range(45))
    with anydb.session() as s:
        assert {j.status for j in list_jobs(s, limit=100)} == {"done"}
