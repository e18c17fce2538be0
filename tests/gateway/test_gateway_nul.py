"""NUL characters (U+0000) at the HTTP boundary: one 422 on both backends, nothing stored.

PostgreSQL refuses NUL in text (DataError, a 500) while SQLite stored it: the reviewer's
``PUT /api/v1/orders/ORD-2`` with a line SKU ``"X\\u0000"`` and ``POST /api/v1/rmas`` with
notes ``"a\\u0000"`` answered 201 on SQLite and 500 on PostgreSQL. Every test runs on both
(``database_url``) unless it needs no database (:mod:`gateway.security.nul` alone).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.db import Database
from gateway.main import create_app
from gateway.models import (
    AuditEntry,
    IdempotencyRecord,
    Order,
    Rma,
    StationCommand,
    WebSession,
)
from gateway.security.nul import NulCharacterMiddleware, body_errors
from gateway.settings import Settings
from tests.returns.support import line, order_body

KEY = "nul-policy-admin-key-0123456789abcdef"
ADMIN = {"X-API-Key": KEY}
HTML = {"Accept": "text/html"}
MSG = "NUL character (U+0000) not allowed"


def nul(*loc: str | int) -> dict[str, Any]:
    return {"loc": list(loc), "msg": MSG, "type": "nul_character"}


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    """An in-process gateway of one site on ``database_url``."""
    settings = Settings(
        env="dev", database_url=database_url, mqtt_port=1, bootstrap_api_key=KEY, site="s1"
    )
    with TestClient(create_app(settings), headers=ADMIN) as c:
        yield c


def _db(client: TestClient) -> Database:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    return db


def _count(client: TestClient, model: Any) -> int:
    with _db(client).session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _rma(number: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "number": number,
        "order_ref": f"ORD-{number}",
        "reason": "damaged",
        "resolution": "refund",
        "lines": [{"sku": "SKU-1", "quantity": 1}],
    }
    return {**body, **overrides}


def test_a_nul_in_an_order_line_sku_is_422_and_stores_nothing(client: TestClient) -> None:
    body = order_body("ORD-2", "ann@example.com", 2, [line("X\x00", 1, 990)])
    r = client.put("/api/v1/orders/ORD-2", json=body)
    assert (r.status_code, r.json()) == (422, {"detail": [nul("body", "lines", 0, "sku")]})
    assert _count(client, Order) == 0
    assert client.get("/api/v1/orders/ORD-2").status_code == 404
    good = order_body("ORD-2", "ann@example.com", 2, [line("X", 1, 990)])
    assert client.put("/api/v1/orders/ORD-2", json=good).status_code == 201


def test_a_nul_in_rma_notes_is_422_and_stores_nothing(client: TestClient) -> None:
    r = client.post("/api/v1/rmas", json=_rma("RMA-N1", notes="a\x00"))
    assert (r.status_code, r.json()) == (422, {"detail": [nul("body", "notes")]})
    assert _count(client, Rma) == 0
    assert client.get("/api/v1/rmas/RMA-N1").status_code == 404


def test_an_escaped_backslash_before_u0000_is_text_and_stored_as_sent(client: TestClient) -> None:
    note = "a\\u0000 b"  # a backslash, then "u0000": the JSON text holds "\\\\u0000"
    raw = json.dumps(_rma("RMA-N2", notes=note)).encode()
    assert b'"a\\\\u0000 b"' in raw
    r = client.post("/api/v1/rmas", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert client.get("/api/v1/rmas/RMA-N2").json()["notes"] == "a\\u0000 b"
    with _db(client).session() as s:
        assert s.scalar(select(Rma.notes)) == "a\\u0000 b"


def test_every_place_in_a_body_is_named_keys_too_and_nothing_is_stored(
    client: TestClient,
) -> None:
    body = _rma("RMA-N3", notes="fine")
    body["lines"] = [{"sku": "S", "quantity": 1}, {"sku": "T\x00", "quantity": 1, "k\x00": 1}]
    body["x\x00"] = {"deep": [[{"y": "\x00"}]]}
    r = client.post("/api/v1/rmas", json=body)
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            nul("body", "lines", 1, "sku"),
            nul("body", "lines", 1, "k\x00"),
            nul("body", "x\x00"),
            nul("body", "x\x00", "deep", 0, 0, "y"),
        ]
    }
    assert _count(client, Rma) == 0


def test_a_nul_in_a_path_a_query_value_or_a_header_is_422_before_any_lookup(
    client: TestClient,
) -> None:
    r = client.get("/api/v1/rmas/RMA%00X")
    assert (r.status_code, r.json()) == (422, {"detail": [nul("path")]})
    r = client.put("/api/v1/orders/ORD%00", json=order_body("ORD\x00", "a@b.c", 2, []))
    assert (r.status_code, r.json()) == (422, {"detail": [nul("path")]})
    r = client.get("/api/v1/rmas?site=s%001")
    assert (r.status_code, r.json()) == (422, {"detail": [nul("query", "site")]})
    r = client.get("/rmas?q=RMA%00", headers=HTML)
    assert (r.status_code, r.json()) == (422, {"detail": [nul("query", "q")]})
    r = client.post("/api/v1/rmas", json=_rma("RMA-N4"), headers={"Idempotency-Key": "k\x00"})
    assert (r.status_code, r.json()) == (422, {"detail": [nul("header", "idempotency-key")]})
    assert _count(client, Rma) == 0 and _count(client, IdempotencyRecord) == 0
    r = client.get("/api/v1/rmas", headers={"X-API-Key": KEY + "\x00"})
    assert (r.status_code, r.json()) == (422, {"detail": [nul("header", "x-api-key")]})
    assert _count(client, AuditEntry) == 0  # refused before the caller was identified
    assert client.post("/api/v1/rmas", json=_rma("RMA-N4")).status_code == 201


def _lead(client: TestClient) -> tuple[TestClient, str]:
    user = {"username": "lee", "password": "lee long password", "role": "lead"}
    assert client.post("/api/v1/users", json=user).status_code == 201
    lead = TestClient(client.app, headers=HTML)
    r = lead.post(
        "/login", data={"username": "lee", "password": "lee long password"}, follow_redirects=False
    )
    assert (r.status_code, r.headers["location"]) == (303, "/")
    with _db(client).session() as s:
        [csrf] = s.scalars(select(WebSession.csrf)).all()
    return lead, csrf


def test_a_nul_in_a_status_page_form_field_is_422_on_every_action(client: TestClient) -> None:
    assert client.post("/api/v1/rmas", json=_rma("RMA-N5")).status_code == 201
    lead, csrf = _lead(client)
    posts = [
        ("/quarantine/RMA-N5", {"grade": "restock", "revision": "1\x00"}, "revision"),
        (
            "/quarantine/RMA-N5/units/1/1",
            {"action": "verify", "revision": "1", "x\x00": ""},
            "x\x00",
        ),
        ("/rmas/RMA-N5/approval", {"decision": "authorize\x00"}, "decision"),
        ("/alarms/1/ack", {"note": "\x00"}, "note"),
        ("/stations/st1/commands", {"command": "gate_test", "lane": "L\x00"}, "lane"),
    ]
    for path, fields, bad in posts:
        r = lead.post(path, data={"csrf": csrf, **fields}, follow_redirects=False)
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert r.json() == {"detail": [nul("body", bad)]}, path
    assert _count(client, StationCommand) == 0
    rma = client.get("/api/v1/rmas/RMA-N5").json()
    assert (rma["state"], rma["revision"]) == ("authorized", 1)
    assert lead.get("/", follow_redirects=False).status_code == 200  # still signed in


def test_a_nul_user_name_at_sign_in_stays_a_wrong_credential(client: TestClient) -> None:
    page = TestClient(client.app, headers=HTML)
    r = page.post("/login", data={"username": "lee\x00", "password": "x" * 12})
    assert r.status_code == 401 and "Wrong user name or password." in r.text


async def _echo(request: Request) -> JSONResponse:
    form = await request.form()
    upload = form["photo"]
    assert not isinstance(upload, str)
    return JSONResponse({"size": len(await upload.read()), "note": form["note"]})


async def _raw(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await request.body())})


async def _swallow(request: Request) -> JSONResponse:
    try:
        await request.body()
    except Exception:  # as a handler that turns any error into its own answer
        return JSONResponse({"detail": "There was an error parsing the body"}, status_code=400)
    return JSONResponse({})


def _watched() -> TestClient:
    app = Starlette(
        routes=[
            Route("/up", _echo, methods=["POST"]),
            Route("/raw", _raw, methods=["POST"]),
            Route("/swallow", _swallow, methods=["POST"]),
        ]
    )
    app.add_middleware(NulCharacterMiddleware)
    return TestClient(app)


def test_multipart_file_content_with_nul_bytes_passes() -> None:
    photo = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b'"\\u0000"' + bytes(range(256))
    r = _watched().post("/up", files={"photo": ("p.png", photo, "image/png")}, data={"note": "n"})
    assert (r.status_code, r.json()) == (200, {"size": len(photo), "note": "n"})


def test_a_body_split_anywhere_is_checked_as_one() -> None:
    body = b'{"a": ["ok", "x\\u0000y"]}'
    for cut in range(1, len(body)):
        chunks = [body[:cut], body[cut:]]
        r = _watched().post("/raw", content=iter(chunks))
        assert (r.status_code, r.json()) == (422, {"detail": [nul("body", "a", 1)]}), cut


def test_what_is_no_nul_passes_without_a_parse() -> None:
    assert body_errors(b'{"a": "\\\\u0000"}') == []  # an escaped backslash
    assert body_errors(b'{"a": "\\u0000') == []  # not JSON: the handler refuses it
    too_deep = b"[" * 100_000 + b'"\\u0000"' + b"]" * 100_000
    assert body_errors(too_deep) == []  # json.loads gives up: so does the handler (400)
    assert body_errors('{"a": "\\u0000"}'.encode("utf-16")) == [nul("body", "a")]  # UTF-16
    deep = b"[" * 500 + b'"\\u0000"' + b"]" * 500
    assert body_errors(deep) == [nul("body", *([0] * 500))]
    many = json.dumps(["\x00"] * 1000).encode()
    assert body_errors(many) == [nul("body", i) for i in range(20)]
    r = _watched().post("/raw", content=b'{"a": "\\\\u0000"}')
    assert (r.status_code, r.json()) == (200, {"size": 16})


def test_the_refusal_is_the_answer_whatever_the_handler_made_of_it() -> None:
    r = _watched().post("/swallow", content=b'["\\u0000"]')
    assert (r.status_code, r.json()) == (422, {"detail": [nul("body", 0)]})
    r = _watched().post("/swallow", content=b'["\\\\u0000"]')
    assert (r.status_code, r.json()) == (200, {})
