"""Issue 15, kinds 2 to 6, against the gateway as a real process in production mode.

Each test replays an attack of the issue and asserts the refusal (status, reason) and that
nothing was stored. Addresses are played with X-Forwarded-For from the trusted proxy.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from gateway.security.headers import CSP
from tests.security.conftest import PASSWORDS, ProdGateway

pytestmark = pytest.mark.e2e


def rma(number: str, **extra: Any) -> dict[str, Any]:
    body = {
        "number": number,
        "order_ref": f"O-{number}",
        "reason": "size",
        "resolution": "refund",
        "lines": [{"sku": "SKU-1", "quantity": 1}],
    }
    return {**body, **extra}


def rma_count(prod: ProdGateway) -> int:
    return len(prod.admin.get("/api/v1/rmas").json()["rmas"])


def raw_request(url: str, head: str, body_part: bytes, timeout_s: float = 5.0) -> str:
    """Send a request's head and only the start of its body; return the status line.

    A server that reads the announced body first never answers within the timeout.
    """
    u = urlparse(url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout_s) as s:
        s.sendall(head.encode() + body_part)
        s.settimeout(timeout_s)
        return s.recv(200).decode(errors="replace").split("\r\n", 1)[0]


# -- kind 2: expensive work before authentication ----------------------------------------


TOO_LARGE = "HTTP/1.1 413 Request Entity Too Large"


def test_a_huge_anonymous_body_is_refused_without_being_read(prod: ProdGateway) -> None:
    before = rma_count(prod)
    head = (
        "POST /api/v1/rmas HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: {}\r\n\r\n"
    )
    part = b'{"number": "' + b"A" * 1000
    assert raw_request(prod.url, head.format(47 * 1024 * 1024), part) == TOO_LARGE
    # under the cap, an anonymous caller is refused before its body is read, too
    assert raw_request(prod.url, head.format(500_000), part) == "HTTP/1.1 401 Unauthorized"
    assert rma_count(prod) == before


def test_an_authenticated_body_over_the_route_cap_is_413(prod: ProdGateway) -> None:
    before = rma_count(prod)
    head = (
        "POST /api/v1/rmas HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {prod.proc.api_key}\r\nContent-Length: {2 * 1024 * 1024}\r\n\r\n"
    )
    assert raw_request(prod.url, head, b"{") == TOO_LARGE
    # the return form's cap is 32 KiB, streamed (chunked) bodies are counted too
    big = {"csrf_token": "x", "order_number": "O-1", "email": "a@b.c", "note": "n" * 40_000}
    assert prod.anonymous().post("/returns", data=big).status_code == 413

    def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 1024

    r = httpx.post(
        f"{prod.url}/login", content=chunks(), headers={"Content-Type": "text/plain"}, timeout=10
    )
    assert r.status_code == 413
    assert rma_count(prod) == before


def test_wrong_passwords_are_throttled_but_the_owner_gets_in(prod: ProdGateway) -> None:
    owner = prod.sign_in("vera", address="10.2.0.1")  # vera's usual workstation
    owner.close()
    attacker = prod.anonymous(**{"X-Forwarded-For": "10.2.0.66"})
    codes = [
        attacker.post("/login", data={"username": "vera", "password": f"guess{i}"}).status_code
        for i in range(7)
    ]
    assert codes == [401] * 5 + [429] * 2  # 5 per minute for vera from unknown addresses
    refused = attacker.post("/login", data={"username": "vera", "password": PASSWORDS["vera"]})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) <= 60
    elsewhere = prod.anonymous(**{"X-Forwarded-For": "10.2.0.67"})
    basic = "Basic " + base64.b64encode(b"vera:guess").decode()
    assert elsewhere.get("/api/v1/stations", headers={"Authorization": basic}).status_code == 429
    # the owner, from where she signed in before, is not locked out
    home = prod.anonymous(**{"X-Forwarded-For": "10.2.0.1"})
    ok = home.post("/login", data={"username": "vera", "password": PASSWORDS["vera"]})
    assert ok.status_code == 303
    # one address guessing many names runs out of its own budget (12 per minute)
    spray = prod.anonymous(**{"X-Forwarded-For": "10.2.0.99"})
    sprayed = [
        spray.post("/login", data={"username": f"user{i}", "password": "x"}).status_code
        for i in range(14)
    ]
    assert sprayed == [401] * 12 + [429] * 2
    assert "credential check throttled address=10.2.0.66 user=vera" in prod.log_text()


def test_a_flood_of_basic_headers_is_capped_and_livez_keeps_answering(prod: ProdGateway) -> None:
    # a user of its own: the flood leaves her name throttled for a while, and later tests
    # of this module sign in as the lead (lee) on the same gateway process
    body = {"username": "flo", "password": "flo's long password", "role": "viewer"}
    assert prod.admin.post("/api/v1/users", json=body).status_code == 201

    def attempt(i: int) -> int:
        headers = {
            "Authorization": "Basic " + base64.b64encode(f"flo:wrong{i}".encode()).decode(),
            "X-Forwarded-For": f"10.3.{i // 200}.{i % 200}",
        }
        return httpx.get(f"{prod.url}/api/v1/stations", headers=headers, timeout=30).status_code

    livez: list[int] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            livez.append(httpx.get(f"{prod.url}/livez", timeout=30).status_code)

    t = threading.Thread(target=probe)
    t.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(attempt, range(16)))
    finally:
        stop.set()
        t.join()
    # one hash at a time, two waiting (the test's settings): the rest are told to come back
    assert set(codes) <= {401, 429, 503} and codes.count(503) >= 1, codes
    assert livez and set(livez) == {200}


# -- kind 3: fail-open defaults and one shared key ----------------------------------------


def test_without_rs_env_the_gateway_is_production_and_refuses_the_placeholder() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RS_")}
    done = subprocess.run(
        [sys.executable, "-m", "gateway.main", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "RS_SECRET_KEY is still the placeholder 'change-me' with RS_ENV='prod'" in done.stderr


def test_links_and_sessions_signed_with_the_raw_secret_are_refused(prod: ProdGateway) -> None:
    from itsdangerous import URLSafeTimedSerializer

    order = {
        "order_ref": "O-LINK",
        "customer_email": "ann@example.com",
        "lines": [
            {"sku": "A", "ordered_quantity": 1, "delivered_quantity": 1, "unit_price_cents": 1}
        ],
    }
    assert prod.admin.put("/api/v1/orders/O-LINK", json=order).status_code == 201
    forged = URLSafeTimedSerializer(prod.secret_key, salt="returns-order").dumps("O-LINK")
    assert prod.anonymous().get(f"/returns/order/{forged}").status_code == 404
    # a session cookie is a server-side session id: nothing signed with a key passes
    c = prod.anonymous(Accept="text/html")
    c.cookies.set("rs_session", "eyJ1IjoibGVlIn0.forged")
    r = c.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")


def first_delivery(got: list[tuple[dict[str, str], bytes]]) -> tuple[dict[str, str], bytes]:
    deadline = time.monotonic() + 15
    while not got and time.monotonic() < deadline:
        time.sleep(0.1)
    return got[0]


def test_each_webhook_endpoint_has_its_own_secret_shown_once(prod: ProdGateway) -> None:
    from http.server import BaseHTTPRequestHandler, HTTPServer

    got: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_a: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        made = prod.admin.post("/api/v1/webhooks/endpoints", json={"name": "erp", "url": url})
        assert made.status_code == 201
        secret = made.json()["secret"]
        assert secret.startswith("whsec_") and secret != prod.secret_key
        listed = prod.admin.get("/api/v1/webhooks/endpoints").json()
        assert [(e["name"], e["secret"]) for e in listed] == [("erp", None)]
        assert prod.admin.post("/api/v1/rmas", json=rma("R-HOOK")).status_code == 201
        headers, body = first_delivery(got)
        from gateway.services.webhook_endpoints import sign

        ts = int(headers["X-RS-Timestamp"])
        assert headers["X-RS-Signature"] == sign(secret, ts, body)
        assert headers["X-RS-Signature"] != sign(prod.secret_key, ts, body)
        rotated = prod.admin.post("/api/v1/webhooks/endpoints/erp/rotate", json={})
        new = rotated.json()["secret"]
        assert new not in (secret, None) and rotated.json()["previous_until"]
        got.clear()
        assert prod.admin.post("/api/v1/rmas", json=rma("R-HOOK2")).status_code == 201
        headers, body = first_delivery(got)
        ts = int(headers["X-RS-Timestamp"])
        assert headers["X-RS-Signature"] == sign(new, ts, body)
        assert headers["X-RS-Signature-Previous"] == sign(secret, ts, body)
    finally:
        server.shutdown()
        prod.admin.delete("/api/v1/webhooks/endpoints/erp")


def test_cookies_are_secure_and_hsts_sent_behind_the_tls_proxy(prod: ProdGateway) -> None:
    c = prod.anonymous(**{"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.4.0.1"})
    r = c.post("/login", data={"username": "lee", "password": PASSWORDS["lee"]})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "rs_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
    assert r.headers["strict-transport-security"] == "max-age=31536000"
    plain = prod.anonymous(**{"X-Forwarded-For": "10.4.0.1"}).post(
        "/login", data={"username": "lee", "password": PASSWORDS["lee"]}
    )
    assert "Secure" not in plain.headers["set-cookie"]
    assert "strict-transport-security" not in plain.headers


# -- kind 4: authorisation per entry point ------------------------------------------------


def test_a_key_without_read_sees_no_page(prod: ProdGateway) -> None:
    writer = {"X-API-Key": prod.key("shop-writer", ["rmas:write"]), "Accept": "text/html"}
    c = prod.anonymous(**writer)
    for path in ("/", "/partials/quarantine", "/rmas?q=R", "/api/v1/stream", "/metrics"):
        r = c.get(path)
        assert (r.status_code, r.json()["detail"]) == (
            403,
            "api-key:shop-writer lacks scope read",
        ), path


def test_a_lead_approves_a_return_waiting_for_a_lead(prod: ProdGateway) -> None:
    assert prod.admin.post("/api/v1/rmas", json=rma("R-WAIT", authorize=False)).status_code == 201
    lead = prod.anonymous(**{"X-Forwarded-For": "10.5.0.1"})
    r = lead.post(
        "/api/v1/rmas/R-WAIT/transitions",
        json={"trigger": "authorize"},
        auth=("lee", PASSWORDS["lee"]),
    )
    assert (r.status_code, r.json()["state"]) == (200, "authorized")
    assert r.json()["transitions"][-1]["actor"] == "user:lee"
    # and from the status page, with the session's CSRF token
    assert prod.admin.post("/api/v1/rmas", json=rma("R-WAIT2", authorize=False)).status_code == 201
    page = prod.sign_in("lee", address="10.5.0.1")
    html = page.get("/rmas", params={"q": "R-WAIT2"}).text
    token = html.split('name="csrf" value="')[1].split('"')[0]
    no_token = page.post("/rmas/R-WAIT2/approval", data={"decision": "authorize"})
    assert no_token.status_code == 403
    done = page.post("/rmas/R-WAIT2/approval", data={"decision": "authorize", "csrf": token})
    assert (done.status_code, done.headers["location"]) == (
        303,
        "/?notice=approved&rma=R-WAIT2#quarantine",
    )
    assert prod.admin.get("/api/v1/rmas/R-WAIT2").json()["state"] == "authorized"
    # a viewer (not one the throttling tests sprayed: their per-user window would 429)
    viewer = prod.anonymous(**{"X-Forwarded-For": "10.5.0.2"})
    refused = viewer.post(
        "/api/v1/rmas/R-WAIT/transitions",
        json={"trigger": "cancel"},
        auth=("wes", PASSWORDS["wes"]),
    )
    assert refused.status_code == 403


# -- kind 5: output encoding ---------------------------------------------------------------


def test_financial_csv_cells_cannot_be_formulas(prod: ProdGateway) -> None:
    category = '=HYPERLINK("http://evil.example","x")'
    order = {
        "order_ref": "O-CSV",
        "customer_email": "c@example.com",
        "lines": [
            {
                "sku": "CSV-1",
                "category": category,
                "ordered_quantity": 1,
                "delivered_quantity": 1,
                "unit_price_cents": 1000,
            }
        ],
    }
    assert prod.admin.put("/api/v1/orders/O-CSV", json=order).status_code == 201
    body = rma("R-CSV", order_ref="O-CSV", lines=[{"sku": "CSV-1", "quantity": 1}])
    assert prod.admin.post("/api/v1/rmas", json=body).status_code == 201
    receipt = {"lines": [{"line_no": 1, "quantity": 1}]}
    assert prod.admin.post("/api/v1/rmas/R-CSV/receipts", json=receipt).status_code == 200
    decided = prod.admin.post("/api/v1/rmas/R-CSV/decision", json={"grade": "restock"})
    assert decided.status_code == 200
    text = prod.admin.get("/api/v1/reports/financial", params={"format": "csv"}).text
    cells = [c for line in text.splitlines()[1:] for c in line.split(",")]
    assert not [c for c in cells if c.lstrip('"').startswith(("=", "+", "@", "\t", "\r"))]
    assert "'=HYPERLINK" in text


def test_search_wildcards_are_literal_and_long_patterns_are_422(prod: ProdGateway) -> None:
    for n in ("RMA-LIKE-1", "RMA-LIKE-2"):
        assert prod.admin.post("/api/v1/rmas", json=rma(n)).status_code == 201
    c = prod.anonymous(**{"X-API-Key": prod.proc.api_key})
    assert "RMA-LIKE-1" in c.get("/rmas", params={"q": "RMA-LIKE"}).text
    for pattern in ("%%%", "RMA_LIKE", "RMA-LIKE-_", "\\"):
        page = c.get("/rmas", params={"q": pattern}).text
        assert "RMA-LIKE-1" not in page and "No RMA matches" in page, pattern
    assert c.get("/rmas", params={"q": "%" * 10_000}).status_code == 422


def test_a_user_name_with_cr_lf_cannot_forge_a_log_line(prod: ProdGateway) -> None:
    forged = "mallory\r\n2026-01-01 00:00:00,000 INFO gateway.web.actions: web sign-in username=lee"
    c = prod.anonymous(**{"X-Forwarded-For": "10.6.0.1"})
    assert c.post("/login", data={"username": forged, "password": "x"}).status_code == 401
    lines = prod.log_text().splitlines()
    assert not [line for line in lines if line.startswith("2026-01-01 00:00:00,000")]
    assert [line for line in lines if "username=mallory\\r\\n2026-01-01" in line]


def test_notices_come_from_a_fixed_table_not_the_url(prod: ProdGateway) -> None:
    lee = prod.sign_in("lee", address="10.7.0.1")
    spoof = "Your session expired: call 555-0100 and give your password"
    page = lee.get("/", params={"notice": spoof}).text
    assert spoof not in page and 'class="notice"' not in page
    assert "RMA-9: closed without credit" in lee.get("/?notice=closed&rma=RMA-9").text
    assert "<b>" not in lee.get("/?notice=closed&rma=<b>x</b>").text


# -- kind 6: headers and disclosure --------------------------------------------------------


def test_security_headers_on_pages_api_and_form(prod: ProdGateway) -> None:
    lee = prod.sign_in("lee", address="10.8.0.1")
    for client, path in ((lee, "/"), (prod.admin, "/api/v1/stations"), (lee, "/returns")):
        h = client.get(path).headers
        assert h["content-security-policy"] == CSP, path
        assert "'unsafe-inline'" not in h["content-security-policy"]
        assert (h["x-content-type-options"], h["x-frame-options"]) == ("nosniff", "DENY")
        assert h["referrer-policy"] == "no-referrer"
        assert "server" not in h
    assert "frame-ancestors 'none'" in CSP


def test_docs_and_health_details_need_a_reader(prod: ProdGateway) -> None:
    anon = prod.anonymous()
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert anon.get(path).status_code == 401, path
        assert prod.admin.get(path).status_code == 200, path
    assert "/api/v1/rmas" in prod.admin.get("/openapi.json").json()["paths"]
    assert anon.get("/healthz").json() == {"status": "ok"}
    assert set(prod.admin.get("/healthz").json()) == {"status", "db", "mqtt", "mqtt_status"}
    assert anon.get("/livez").json() == {"status": "alive"}


def test_sign_out_ends_the_session_on_the_server(prod: ProdGateway) -> None:
    lee = prod.sign_in("lee", address="10.9.0.1")
    stolen = lee.cookies["rs_session"]
    assert lee.get("/", follow_redirects=False).status_code == 200
    assert lee.post("/logout").status_code == 303
    thief = prod.anonymous(Accept="text/html")
    thief.cookies.set("rs_session", stolen)
    r = thief.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")


def test_keys_and_users_are_revoked_at_once_by_api_and_cli(prod: ProdGateway) -> None:
    key = prod.key("to-revoke", ["read"])
    reader = prod.anonymous(**{"X-API-Key": key, "X-Forwarded-For": "10.10.0.1"})
    assert reader.get("/api/v1/stations").status_code == 200
    gone = prod.admin.delete("/api/v1/api-keys/to-revoke")
    assert (gone.status_code, gone.json()["revoked"]) == (200, True)
    assert reader.get("/api/v1/stations").status_code == 401
    body = {"username": "temp", "password": "temp's long password", "role": "viewer"}
    assert prod.admin.post("/api/v1/users", json=body).status_code == 201
    session = prod.sign_in("temp", address="10.10.0.2", password=body["password"])
    assert session.get("/", follow_redirects=False).status_code == 200
    assert prod.admin.delete("/api/v1/users/temp").json()["active"] is False
    assert session.get("/", follow_redirects=False).status_code == 303
    basic = prod.anonymous(**{"X-Forwarded-For": "10.10.0.3"})
    assert basic.get("/api/v1/stations", auth=("temp", body["password"])).status_code == 401
    # the shell, on the same database: effective on the next request
    cli_key = prod.key("cli-revoke", ["read"])
    env = {
        **os.environ,
        "RS_ENV": "prod",
        "RS_SECRET_KEY": prod.secret_key,
        "RS_DATABASE_URL": f"sqlite:///{prod.proc.workdir / 'gateway.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "gateway.main", "access", "revoke-key", "cli-revoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "API key 'cli-revoke' revoked\n"), done.stderr
    cli = prod.anonymous(**{"X-API-Key": cli_key, "X-Forwarded-For": "10.10.0.4"})
    assert cli.get("/api/v1/stations").status_code == 401


def test_station_commands_from_the_page_need_a_lead_and_the_csrf_token(
    prod: ProdGateway,
) -> None:
    page = prod.sign_in("lee", address="10.5.0.3")
    no_token = page.post("/stations/st1/commands", data={"command": "resume"})
    assert no_token.status_code == 403
    assert prod.admin.post("/api/v1/rmas", json=rma("R-WAIT3", authorize=False)).status_code == 201
    html = page.get("/rmas", params={"q": "R-WAIT3"}).text  # a form with the session's token
    token = html.split('name="csrf" value="')[1].split('"')[0]
    # past the CSRF check: the gateway has never heard of station st1
    unknown = page.post("/stations/st1/commands", data={"command": "resume", "csrf": token})
    assert (unknown.status_code, unknown.text) == (404, "unknown station 'st1'")
    forged = page.post("/stations/st1/commands", data={"command": "resume", "csrf": "x" * 32})
    assert forged.status_code == 403
