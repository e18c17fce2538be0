"""HTTP API of issue 6: idempotency (C8), policies as 4xx, access, audit, labels, webhooks."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.models import AuditEntry, RmaTransition
from tests.gateway.conftest import PROD_SECRET

pytestmark = pytest.mark.broker

Body = Callable[..., dict[str, Any]]

ORDER = {
    "order_ref": "ORD-1",
    "customer": "Ann",
    "delivered_at": "2099-01-01T10:00:00Z",
    "lines": [
        {
            "sku": "A",
            "category": "apparel",
            "ordered_quantity": 2,
            "delivered_quantity": 1,
            "unit_price_cents": 1999,
        }
    ],
}


def rma_for_order(number: str | None, quantity: int = 1, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_ref": "ORD-1",
        "reason": "size",
        "resolution": "refund",
        "lines": [{"sku": "A", "quantity": quantity}],
    }
    if number is not None:
        body["number"] = number
    body.update(over)
    return body


def test_c8_idempotency_key_gives_one_rma_and_the_same_response(
    client: TestClient, rma_body: Body
) -> None:
    headers = {"Idempotency-Key": "k-1"}
    first = client.post("/api/v1/rmas", json=rma_body("RMA-1"), headers=headers)
    again = client.post("/api/v1/rmas", json=rma_body("RMA-1"), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["location"] == "/api/v1/rmas/RMA-1"
    assert client.get("/api/v1/rmas").json()["head_revision"] == 1  # created once
    other = client.post("/api/v1/rmas", json=rma_body("RMA-2"), headers=headers)
    assert other.status_code == 422
    assert "already used with a different request body" in other.json()["detail"]
    # without a key, the same number is a duplicate: 409
    dup = client.post("/api/v1/rmas", json=rma_body("RMA-1"))
    assert dup.status_code == 409 and "RMA-1" in dup.json()["detail"]


def test_c8_over_returnable_is_a_clear_422(client: TestClient) -> None:
    assert client.post("/api/v1/orders", json=ORDER).status_code == 201
    refused = client.post("/api/v1/rmas", json=rma_for_order("R1", quantity=2))
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert detail["code"] == "quantity_exceeds_returnable"
    assert detail["message"] == (
        "line 1 (A): 2 unit(s) asked but only 1 returnable on order line 1 "
        "(delivered 1, already returned 0, on open RMAs 0)"
    )
    assert client.post("/api/v1/rmas", json=rma_for_order("R1")).status_code == 201
    assert client.get("/api/v1/orders/ORD-1").json()["lines"][0]["returnable"] == 0
    again = client.post("/api/v1/rmas", json=rma_for_order("R2"))
    assert again.status_code == 422 and again.json()["detail"]["on_open"] == 1


def test_generated_number_with_check_character(client: TestClient) -> None:
    assert client.post("/api/v1/orders", json=ORDER).status_code == 201
    created = client.post("/api/v1/rmas", json=rma_for_order(None))
    assert created.status_code == 201
    number = created.json()["number"]
    assert client.get(f"/api/v1/rmas/{number}").status_code == 200
    typo = number[:-1] + ("A" if number[-1] != "A" else "B")
    got = client.get(f"/api/v1/rmas/{typo}")
    assert got.status_code == 422 and "check character" in got.json()["detail"]


def test_transitions_and_decision_over_http(client: TestClient, rma_body: Body) -> None:
    client.post("/api/v1/rmas", json=rma_body("RMA-1"))
    cancelled = client.post("/api/v1/rmas/RMA-1/transitions", json={"trigger": "cancel"})
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert (body["state"], body["revision"]) == ("cancelled", 2)
    assert [t["trigger"] for t in body["transitions"]] == ["authorize", "cancel"]
    assert body["transitions"][1]["actor"] == "api-key:bootstrap"
    illegal = client.post("/api/v1/rmas/RMA-1/transitions", json={"trigger": "ship"})
    assert illegal.status_code == 409 and "'ship' is not allowed" in illegal.json()["detail"]
    client.post("/api/v1/rmas", json=rma_body("RMA-2"))
    partial = client.post(
        "/api/v1/rmas/RMA-2/receipts", json={"lines": [{"line_no": 2, "quantity": 1}]}
    )
    assert partial.json()["state"] == "partially_received"
    rest = client.post(
        "/api/v1/rmas/RMA-2/receipts",
        json={"lines": [{"line_no": 1, "quantity": 1}, {"line_no": 2, "quantity": 1}]},
    )
    assert (rest.json()["state"], rest.json()["awaiting_decision"]) == ("received", True)
    bypass = client.post("/api/v1/rmas/RMA-2/transitions", json={"trigger": "refund"})
    assert bypass.status_code == 422  # resolution only through grading and the credit policy
    decided = client.post("/api/v1/rmas/RMA-2/decision", json={"grade": "restock"})
    assert decided.status_code == 200 and decided.json()["state"] == "refunded"
    credits = client.get("/api/v1/credits", params={"rma": "RMA-2"}).json()["credits"]
    assert sorted(c["sku"] for c in credits) == ["SKU-1", "SKU-2", "SKU-2"]  # one per unit
    stock = client.get("/api/v1/stock").json()["levels"]
    assert [(x["sku"], x["location"], x["quantity"]) for x in stock] == [
        ("SKU-1", "RESTOCK", 1),
        ("SKU-2", "RESTOCK", 2),
    ]


def test_access_keys_scopes_users_and_audit(client: TestClient, rma_body: Body) -> None:
    anon = {"X-API-Key": ""}
    assert client.post("/api/v1/rmas", json=rma_body("R1"), headers=anon).status_code == 401
    bad = client.post("/api/v1/rmas", json=rma_body("R1"), headers={"X-API-Key": "nope"})
    assert bad.status_code == 401
    made = client.post("/api/v1/api-keys", json={"name": "shop", "scopes": ["rmas:write"]})
    assert made.status_code == 201
    shop = {"X-API-Key": made.json()["key"]}
    assert client.post("/api/v1/rmas", json=rma_body("R1"), headers=shop).status_code == 201
    assert client.post("/api/v1/orders", json=ORDER, headers=shop).status_code == 403
    lead_only = client.post("/api/v1/rmas/R1/transitions", json={"trigger": "close"}, headers=shop)
    assert lead_only.status_code == 403
    user = {"username": "lea", "password": "correct horse battery", "role": "viewer"}
    assert client.post("/api/v1/users", json=user).status_code == 201
    basic = "Basic " + base64.b64encode(b"lea:correct horse battery").decode()
    viewer = {"X-API-Key": "", "Authorization": basic}
    assert client.get("/api/v1/rmas/R1", headers=viewer).status_code == 200
    assert client.post("/api/v1/orders", json=ORDER, headers=viewer).status_code == 403
    wrong = {"X-API-Key": "", "Authorization": "Basic " + base64.b64encode(b"lea:x").decode()}
    assert client.get("/api/v1/rmas/R1", headers=wrong).status_code == 401
    db = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:
        audit = [
            (a.principal, a.method, a.path, a.status_code) for a in s.scalars(select(AuditEntry))
        ]
        actors = [t.actor for t in s.scalars(select(RmaTransition))]
    # an anonymous refusal stores nothing (the audit log is not a store for strangers' input)
    assert not [a for a in audit if a[0] == "anonymous"]
    assert ("api-key:shop", "POST", "/api/v1/rmas", 201) in audit
    assert ("user:lea", "POST", "/api/v1/orders", 403) in audit
    assert actors == ["api-key:shop"]


def test_reasons_are_an_editable_list(client: TestClient, rma_body: Body) -> None:
    codes = [r["code"] for r in client.get("/api/v1/reasons").json()["reasons"]]
    assert {"defective", "damaged_in_transit", "wrong_item", "not_as_described"} <= set(codes)
    assert {"size", "changed_mind", "other"} <= set(codes)
    new = {"code": "late", "label": "Arrived too late", "merchant_fault": True}
    assert client.put("/api/v1/reasons/late", json=new).status_code == 200
    assert client.post("/api/v1/rmas", json=rma_body("R1", reason="late")).status_code == 201
    unknown = client.post("/api/v1/rmas", json=rma_body("R2", reason="bored"))
    assert unknown.status_code == 422 and "unknown return reason" in unknown.json()["detail"]


def test_financial_report_csv_over_http(client: TestClient) -> None:
    got = client.get("/api/v1/reports/financial", params={"format": "csv"})
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert got.text.startswith("currency,day,category,units,refused_units,refunds_cents")
    assert client.get("/api/v1/reports/financial").json() == {"currencies": [], "rows": []}


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs pdftoppm (poppler-utils)")
def test_label_pdf_barcodes_decode_to_the_rma_number(
    client: TestClient, rma_body: Body, tmp_path: Path
) -> None:
    import zxingcpp
    from PIL import Image

    assert client.post("/api/v1/orders", json=ORDER).status_code == 201
    number = client.post("/api/v1/rmas", json=rma_for_order(None)).json()["number"]
    pdf = client.get(f"/api/v1/rmas/{number}/label.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    (tmp_path / "label.pdf").write_bytes(pdf.content)
    subprocess.run(
        ["pdftoppm", "-r", "200", "-png", "-singlefile", "label.pdf", "label"],
        cwd=tmp_path,
        check=True,
    )
    image = Image.open(io.BytesIO((tmp_path / "label.png").read_bytes()))
    found = {b.format: b.text for b in zxingcpp.read_barcodes(image)}
    assert found == {
        zxingcpp.BarcodeFormat.Code128: number,
        zxingcpp.BarcodeFormat.QRCode: number,
    }
    assert client.get("/api/v1/rmas/NOPE/label.pdf").status_code == 404


def test_prod_requires_credentials_even_to_read(settings: Any) -> None:
    from gateway.main import create_app

    prod = settings.model_copy(update={"env": "prod", "secret_key": PROD_SECRET})
    key = prod.bootstrap_api_key
    with TestClient(create_app(prod)) as c:
        assert c.get("/").status_code == 401
        assert c.get("/api/v1/stations").status_code == 401
        assert c.get("/api/v1/stations", headers={"X-API-Key": key}).status_code == 200
        lead = {"username": "lee", "password": "a long lead password", "role": "lead"}
        assert c.post("/api/v1/users", json=lead, headers={"X-API-Key": key}).status_code == 201
        page = c.get("/", auth=("lee", "a long lead password"))
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        audit = c.get("/api/v1/audit", headers={"X-API-Key": key}).json()
        assert [(a["principal"], a["path"], a["status_code"]) for a in audit] == [
            ("api-key:bootstrap", "/api/v1/users", 201)
        ]
        assert c.get("/api/v1/audit", auth=("lee", "a long lead password")).status_code == 403


def test_order_creation_is_idempotent_too(client: TestClient) -> None:
    headers = {"Idempotency-Key": "order-1"}
    first = client.post("/api/v1/orders", json=ORDER, headers=headers)
    again = client.post("/api/v1/orders", json=ORDER, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert client.post("/api/v1/orders", json=ORDER).status_code == 409
    other = client.post("/api/v1/orders", json={**ORDER, "order_ref": "ORD-2"}, headers=headers)
    assert other.status_code == 422


def test_concurrent_twins_with_one_key_make_one_rma(client: TestClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    assert client.post("/api/v1/orders", json=ORDER).status_code == 201
    body = rma_for_order(None)  # generated number: only the key can tell twins apart

    def post(_: int) -> tuple[int, Any]:
        r = client.post("/api/v1/rmas", json=body, headers={"Idempotency-Key": "twin"})
        return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(post, range(6)))
    assert {code for code, _ in results} == {201}
    assert len({out["number"] for _, out in results}) == 1
    assert len(client.get("/api/v1/rmas").json()["rmas"]) == 1
