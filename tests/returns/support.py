"""Helpers of the return-form tests: orders, the live gateway, polling."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from simulator.procs import GatewayProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def today_utc() -> date:
    """Today in the shop's calendar (the tests run the gateway with a UTC shop)."""
    return datetime.now(UTC).date()


def order_body(ref: str, email: str, delivered_days_ago: int, lines: list[dict[str, Any]]) -> dict:
    """A ``PUT /api/v1/orders/{ref}`` body delivered ``delivered_days_ago`` days ago, at noon."""
    day = today_utc() - timedelta(days=delivered_days_ago)
    return {
        "order_ref": ref,
        "customer": "Ann Example",
        "customer_email": email,
        "delivered_at": datetime.combine(day, time(12, 0), tzinfo=UTC).isoformat(),
        "lines": lines,
    }


def line(sku: str, qty: int, cents: int, category: str | None = None, **extra: Any) -> dict:
    """An order line delivered in full."""
    return {
        "sku": sku,
        "ordered_quantity": qty,
        "delivered_quantity": qty,
        "unit_price_cents": cents,
        "category": category,
        **extra,
    }


class LiveGateway:
    """The gateway as a real process plus an API client holding its admin key."""

    def __init__(self, proc: GatewayProcess) -> None:
        self.proc = proc
        self.url = proc.url
        self.api = httpx.Client(base_url=proc.url, headers={"X-API-Key": proc.api_key}, timeout=10)

    def put_order(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store an order through the API; return its JSON."""
        r = self.api.put(f"/api/v1/orders/{body['order_ref']}", json=body)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())


def need_pdftoppm() -> None:
    """Skip when pdftoppm is missing outside CI (scripts/ensure-system-deps.sh)."""
    if shutil.which("pdftoppm") is None and not os.environ.get("CI"):
        pytest.skip("needs pdftoppm (poppler-utils)")


ADMIN_KEY = "returns-test-admin-key-0123456789"
ADMIN = {"X-API-Key": ADMIN_KEY}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the form in ``html``."""
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def open_order(client: Any, ref: str, email: str, **headers: str) -> Any:
    """Identify the order like a browser; return the response (303 when found)."""
    token = csrf_of(client.get("/returns", headers=headers).text)
    return client.post(
        "/returns",
        data={"csrf_token": token, "order_number": ref, "email": email},
        headers=headers,
        follow_redirects=False,
    )


def submit(client: Any, link: str, **fields: str) -> Any:
    """Post the choice form at ``link`` (after loading it for its CSRF token)."""
    token = csrf_of(client.get(link).text)
    return client.post(link, data={"csrf_token": token, **fields}, follow_redirects=False)


def text_of(html: str) -> str:
    """The visible text of a page, whitespace collapsed (for exact assertions)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())
