"""An order update racing another: PUT /orders reads the order (its lines loaded) for the
site check before ``upsert_order`` takes the lock, and must still write on what was
committed meanwhile, never on that earlier read (found by attacking the SQLite BEGIN
IMMEDIATE change; the PostgreSQL case was older)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api.routes import orders as orders_routes
from gateway.main import create_app
from gateway.schemas import OrderDraft
from gateway.services import orders as orders_service
from gateway.settings import Settings

KEY = "order-race-admin-key-0123456789abcdef"


def _body(customer: str, n_lines: int = 2) -> dict[str, Any]:
    lines = [
        {"sku": "SHOE", "ordered_quantity": 2, "delivered_quantity": 2, "unit_price_cents": 7900},
        {"sku": "HAT", "ordered_quantity": 1, "delivered_quantity": 1, "unit_price_cents": 2500},
    ][:n_lines]
    return {"order_ref": "O-1", "customer": customer, "lines": lines}


def _app(url: str) -> Any:
    return create_app(
        Settings(
            env="dev",
            database_url=url,
            mqtt_port=1,
            bootstrap_api_key=KEY,
            site="s1",
        )
    )


def _with_concurrent_update(app: Any, mp: pytest.MonkeyPatch, other: dict[str, Any]) -> None:
    """Another PUT commits between the route's read and upsert_order's write lock."""
    real = orders_service.upsert_order

    def racing(session: Any, draft: Any, **kw: Any) -> Any:
        with app.state.db.session() as s2:
            real(s2, OrderDraft.model_validate(other), site="s1")
        return real(session, draft, **kw)

    mp.setattr(orders_routes, "upsert_order", racing)


def test_an_unchanged_answer_is_checked_against_an_update_committed_after_the_read(
    database_url: str,
) -> None:
    app = _app(database_url)
    h = {"X-API-Key": KEY}
    with TestClient(app) as client:
        assert client.put("/api/v1/orders/O-1", json=_body("Ann"), headers=h).status_code == 201
        with pytest.MonkeyPatch.context() as mp:
            _with_concurrent_update(app, mp, _body("Bob"))
            r = client.put("/api/v1/orders/O-1", json=_body("Ann"), headers=h)
        assert r.status_code == 200, r.text
        # the last PUT (Ann) answered 200 with customer Ann: the stored order must agree
        stored = client.get("/api/v1/orders/O-1", headers=h).json()
        assert r.json()["customer"] == stored["customer"] == "Ann", (r.json(), stored)


def test_an_update_after_another_dropped_a_line_restores_every_line_it_names(
    database_url: str,
) -> None:
    app = _app(database_url)
    h = {"X-API-Key": KEY}
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.put("/api/v1/orders/O-1", json=_body("Ann"), headers=h).status_code == 201
        with pytest.MonkeyPatch.context() as mp:
            _with_concurrent_update(app, mp, _body("Ann", n_lines=1))  # HAT line dropped
            r = client.put("/api/v1/orders/O-1", json=_body("Cyd"), headers=h)
        assert r.status_code == 200, r.text
        stored = client.get("/api/v1/orders/O-1", headers=h).json()
        assert stored["customer"] == "Cyd"
        assert [ln["sku"] for ln in stored["lines"]] == ["SHOE", "HAT"], stored
