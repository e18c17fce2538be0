"""HTTP API with a real broker and a temp SQLite file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.broker

Body = Callable[..., dict[str, Any]]


def test_create_assigns_site_revisions(client: TestClient, rma_body: Body) -> None:
    r1 = client.post("/api/v1/rmas", json=rma_body("RMA-1"))
    assert r1.status_code == 201, r1.text
    data = r1.json()
    assert data["revision"] == 1
    assert data["state"] == "authorized"
    assert r1.headers["location"] == "/api/v1/rmas/RMA-1"
    assert [line["line_no"] for line in data["lines"]] == [1, 2]
    assert data["lines"][0]["rfid_uid"] == "DD17380A"
    r2 = client.post("/api/v1/rmas", json=rma_body("RMA-2"))
    assert r2.status_code == 201
    assert r2.json()["revision"] == 2


def test_duplicate_number_is_409(client: TestClient, rma_body: Body) -> None:
    assert client.post("/api/v1/rmas", json=rma_body("RMA-1")).status_code == 201
    dup = client.post("/api/v1/rmas", json=rma_body("RMA-1", order_ref="other"))
    assert dup.status_code == 409
    assert "RMA-1" in dup.json()["detail"]
    # the refused RMA did not consume a revision
    assert client.post("/api/v1/rmas", json=rma_body("RMA-2")).json()["revision"] == 2


@pytest.mark.parametrize(
    ("override", "field", "text"),
    [
        ({"lines": []}, "lines", "at least 1"),
        ({"lines": [{"sku": "A", "quantity": 0}]}, "quantity", "greater than or equal to 1"),
        ({"lines": [{"sku": "A", "quantity": 1, "rfid_uid": "xyz"}]}, "rfid_uid", "RFID UID"),
        ({"lines": [{"sku": "A", "quantity": 1, "gtin": "12"}]}, "gtin", "pattern"),
        ({"number": "has space"}, "number", "pattern"),
        ({"colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_bad_body_is_422_with_clear_message(
    client: TestClient, rma_body: Body, override: dict[str, Any], field: str, text: str
) -> None:
    body = rma_body("RMA-X")
    body.update(override)
    resp = client.post("/api/v1/rmas", json=body)
    assert resp.status_code == 422
    [error] = resp.json()["detail"]
    assert field in [str(p) for p in error["loc"]]
    assert text in error["msg"]


@pytest.mark.parametrize("uid", ["88047DB1", "88:04:7d:b1"])
def test_c1_cascade_level1_uid_on_rma_line_is_422(
    client: TestClient, rma_body: Body, uid: str
) -> None:
    body = rma_body("RMA-CT")
    body["lines"] = [{"sku": "A", "quantity": 1, "rfid_uid": uid}]
    resp = client.post("/api/v1/rmas", json=body)
    assert resp.status_code == 422
    [error] = resp.json()["detail"]
    assert [str(p) for p in error["loc"]][-1] == "rfid_uid"
    assert "starts with the cascade tag 88" in error["msg"]
    assert client.get("/api/v1/rmas/RMA-CT").status_code == 404


def test_c1_full_7_byte_uid_on_rma_line_is_accepted(client: TestClient, rma_body: Body) -> None:
    body = rma_body("RMA-NT")
    body["lines"] = [{"sku": "A", "quantity": 1, "rfid_uid": "04:7d:b1:2a:3b:4c:80"}]
    resp = client.post("/api/v1/rmas", json=body)
    assert resp.status_code == 201, resp.text
    assert resp.json()["lines"][0]["rfid_uid"] == "047DB12A3B4C80"


def test_missing_field_is_422(client: TestClient) -> None:
    resp = client.post("/api/v1/rmas", json={"number": "R"})
    assert resp.status_code == 422
    missing = {e["loc"][-1] for e in resp.json()["detail"]}
    assert missing == {"order_ref", "reason", "resolution", "lines"}


def test_get_and_list(client: TestClient, rma_body: Body) -> None:
    assert client.get("/api/v1/rmas/NOPE").status_code == 404
    for i in range(1, 4):
        client.post("/api/v1/rmas", json=rma_body(f"RMA-{i}"))
    got = client.get("/api/v1/rmas/RMA-2").json()
    assert (got["number"], got["revision"], got["order_ref"]) == ("RMA-2", 2, "ORD-RMA-2")
    listed = client.get("/api/v1/rmas", params={"after_revision": 1}).json()
    assert listed["head_revision"] == 3
    assert [r["number"] for r in listed["rmas"]] == ["RMA-2", "RMA-3"]
    assert client.get("/api/v1/rmas", params={"after_revision": -1}).status_code == 422


def test_healthz(client: TestClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok" and body["db"] and body["mqtt"]
    assert body["mqtt_status"]["subscribed"] is True
