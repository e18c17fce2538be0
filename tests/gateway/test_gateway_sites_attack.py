"""Hostile review of site-limited callers: nothing of another site through any endpoint.

A key limited to site B must neither read nor change what belongs to site A: webhook
deliveries (credit amounts, RMA numbers), customers' e-mails, RMAs expired in bulk.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from gateway.db import Database
from gateway.models import Rma
from tests.gateway.test_gateway_sites import _body, two  # noqa: F401 (a fixture)


def _key(client: TestClient, name: str, scopes: list[str], site: str) -> dict[str, str]:
    made = client.post("/api/v1/api-keys", json={"name": name, "scopes": scopes, "sites": [site]})
    assert made.status_code == 201, made.text
    return {"X-API-Key": made.json()["key"]}


@pytest.mark.broker
def test_a_key_limited_to_site_b_does_not_expire_site_a_rmas(
    two: tuple[TestClient, str, str],  # noqa: F811
) -> None:
    client, a, b = two
    for number, site in (("R-A1", a), ("R-B1", b)):
        assert client.post("/api/v1/rmas", json=_body(number, site=site)).status_code == 201
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:  # both authorised long ago: overdue
        s.execute(update(Rma).values(updated_at=datetime(2020, 1, 6, 12, tzinfo=UTC)))
        s.commit()
    lead_b = _key(client, "lead-b", ["lead", "read"], b)
    expired = client.post("/api/v1/rmas/expire-overdue", headers=lead_b)
    assert (expired.status_code, expired.json()) == (200, ["R-B1"])
    with db.session() as s:
        states = dict(s.execute(select(Rma.number, Rma.state)).tuples().all())
    assert states == {"R-A1": "authorized", "R-B1": "expired"}


@pytest.mark.broker
def test_a_key_limited_to_site_b_reads_no_webhook_delivery_of_site_a(
    two: tuple[TestClient, str, str],  # noqa: F811
) -> None:
    client, a, b = two
    made = client.post(
        "/api/v1/webhooks/endpoints", json={"name": "shop", "url": "http://127.0.0.1:9/hook"}
    )
    assert made.status_code == 201, made.text
    for number, site in (("R-A1", a), ("R-B1", b)):
        assert client.post("/api/v1/rmas", json=_body(number, site=site)).status_code == 201
    every = client.get("/api/v1/webhooks/deliveries").json()["deliveries"]
    assert {d["payload"]["site"] for d in every} == {a, b}
    read_b = _key(client, "read-b", ["read"], b)
    mine = client.get("/api/v1/webhooks/deliveries", headers=read_b).json()["deliveries"]
    assert {d["payload"]["site"] for d in mine} == {b}
    seen: list[Any] = [d["payload"]["data"].get("number") for d in mine]
    assert "R-A1" not in seen
