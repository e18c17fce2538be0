"""PUT /orders by a key limited to a site, racing with an update moving the order away.

The site check read the order before ``upsert_order`` took its lock; an admin's update
moving the order to another site could commit in between, and the limited key then
changed (or moved back) an order of a site it may not use. The interleaving is forced by
running the admin's PUT over HTTP just before the limited key's ``upsert_order``, on
SQLite and PostgreSQL (``database_url``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.api.routes import orders as orders_routes
from gateway.db import Database
from gateway.main import create_app
from gateway.models import Order
from gateway.settings import Settings

KEY = "order-race-admin-key-0123456789abcdef"
ADMIN = {"X-API-Key": KEY}


def _body(site: str | None, price: int) -> dict[str, Any]:
    return {
        "order_ref": "O-1",
        "site": site,
        "lines": [
            {
                "sku": "SHOE",
                "ordered_quantity": 1,
                "delivered_quantity": 1,
                "unit_price_cents": price,
            }
        ],
    }


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    """A gateway of sites s1 and s2 with order O-1 on s1 (admin's)."""
    settings = Settings(
        env="dev",
        database_url=database_url,
        mqtt_port=1,
        bootstrap_api_key=KEY,
        site="s1",
        sites=["s1", "s2"],
    )
    with TestClient(create_app(settings)) as c:
        assert c.put("/api/v1/orders/O-1", json=_body("s1", 1000), headers=ADMIN).status_code == 201
        yield c


@pytest.mark.parametrize("named_site", [None, "s1"])
def test_a_key_of_one_site_cannot_update_an_order_moved_away_meanwhile(
    client: TestClient, named_site: str | None
) -> None:
    made = client.post(
        "/api/v1/api-keys",
        json={"name": "shop-s1", "scopes": ["orders:write", "read"], "sites": ["s1"]},
        headers=ADMIN,
    )
    assert made.status_code == 201, made.text
    shop = {"X-API-Key": made.json()["key"]}
    real = orders_routes.upsert_order
    moved: list[int] = []

    def admin_moves_it_first(session: Any, draft: Any, **kwargs: Any) -> Any:
        if not moved:  # the admin's own PUT (this same wrapper) goes straight through
            moved.append(1)
            r = client.put("/api/v1/orders/O-1", json=_body("s2", 2000), headers=ADMIN)
            moved.append(r.status_code)
        return real(session, draft, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(orders_routes, "upsert_order", admin_moves_it_first)
        r = client.put("/api/v1/orders/O-1", json=_body(named_site, 3000), headers=shop)
    assert moved == [1, 200]
    # before: 200, and the s2 order took the s1 key's lines (or went back to s1)
    assert (r.status_code, r.json()) == (404, {"detail": "order 'O-1' not found"})
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:
        order = s.scalars(select(Order)).one()
        assert (order.site, [ln.unit_price_cents for ln in order.lines]) == ("s2", [2000])
    # and afterwards the s1 key does not see it at all
    assert client.get("/api/v1/orders/O-1", headers=shop).status_code == 404


def test_a_key_of_one_site_cannot_update_an_order_created_on_another_meanwhile(
    client: TestClient,
) -> None:
    # O-2 is unknown when the s1 key's PUT reads it (a creation, on s1 by default); an
    # admin creates it on s2 before the upsert: the upsert found it and updated it
    made = client.post(
        "/api/v1/api-keys",
        json={"name": "shop-s1", "scopes": ["orders:write", "read"], "sites": ["s1"]},
        headers=ADMIN,
    )
    shop = {"X-API-Key": made.json()["key"]}
    real = orders_routes.upsert_order
    created: list[int] = []

    def admin_creates_it_first(session: Any, draft: Any, **kwargs: Any) -> Any:
        if not created:
            created.append(1)
            body = {**_body("s2", 2000), "order_ref": "O-2"}
            created.append(client.put("/api/v1/orders/O-2", json=body, headers=ADMIN).status_code)
        return real(session, draft, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(orders_routes, "upsert_order", admin_creates_it_first)
        body = {**_body(None, 3000), "order_ref": "O-2"}
        r = client.put("/api/v1/orders/O-2", json=body, headers=shop)
    assert created == [1, 201]
    assert (r.status_code, r.json()) == (404, {"detail": "order 'O-2' not found"})
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:
        order = s.scalars(select(Order).where(Order.order_ref == "O-2")).one()
        assert (order.site, [ln.unit_price_cents for ln in order.lines]) == ("s2", [2000])
