"""The status page's expected parcels (issue 18 item 4): what should arrive today, what is
overdue; RMAs in transit too long expire (the expiry worker), unless delivered here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.models import Rma
from gateway.services.expected import expected_parcels
from gateway.services.expiry import expire_overdue
from gateway.settings import Settings
from protocol.codes import s10_check_digit

pytestmark = pytest.mark.broker


def s10(serial: int) -> str:
    """A valid UPU S10 number (``RB`` + 8 digits + check digit + ``FR``)."""
    body = f"{serial:08d}"
    return f"RB{body}{s10_check_digit(body)}FR"


def shipped(client: TestClient, serial: int) -> str:
    body = {
        "order_ref": f"ORD-{serial}",
        "reason": "size",
        "resolution": "refund",
        "lines": [{"sku": "A", "quantity": 1, "unit_price_cents": 900}],
    }
    number: str = client.post("/api/v1/rmas", json=body).json()["number"]
    ship = client.post(
        f"/api/v1/rmas/{number}/ship", json={"tracking_number": s10(serial), "carrier": "La Poste"}
    )
    assert ship.status_code == 200, ship.text
    return number


def test_expected_today_and_overdue_then_too_long_in_transit_expires(
    client: TestClient, settings: Settings
) -> None:
    now = datetime.now(UTC)
    today = now.astimezone(settings.zone).date()
    # serial: (days since it left, carrier status, expected delivery day offset)
    plan: dict[int, tuple[int, str, int | None]] = {
        1: (1, "in_transit", 0),  # the carrier expects it today
        2: (2, "delivered", None),  # at the warehouse, waiting to be sorted
        3: (1, "in_transit", 1),  # tomorrow: not today
        4: (10, "in_transit", None),  # overdue (7 days)
        5: (70, "in_transit", None),  # overdue, and past the 60-day expiry
        6: (70, "delivered", None),  # overdue, delivered here: never expired
    }
    numbers = {serial: shipped(client, serial) for serial in plan}
    with client.app.state.db.session() as s:  # type: ignore[attr-defined]
        for serial, (days, status, expected) in plan.items():
            rma = s.scalar(select(Rma).where(Rma.number == numbers[serial]))
            assert rma is not None
            rma.shipped_at = now - timedelta(days=days)
            rma.carrier_status = status
            rma.expected_on = None if expected is None else today + timedelta(days=expected)
        s.commit()
        seen = expected_parcels(s, settings, now)
    assert [(p.number, p.days, p.carrier_status) for p in seen.today] == [
        (numbers[2], 2, "delivered"),
        (numbers[1], 1, "in_transit"),
    ]
    assert [(p.number, p.days) for p in seen.overdue] == [
        (numbers[5], 70),
        (numbers[6], 70),
        (numbers[4], 10),
    ]
    assert (seen.today_count, seen.overdue_count, seen.in_transit_count) == (2, 3, 6)
    html = client.get("/partials/expected").text
    assert "Expected today (2)" in html and "Overdue (3)" in html
    assert f"<code>{s10(2)}</code>" in html and "at the warehouse" in html
    assert numbers[3] not in html
    whole = client.get("/").text
    assert '<section id="expected"' in whole
    with client.app.state.db.session() as s:  # type: ignore[attr-defined]
        assert expire_overdue(s, settings, now=now) == [numbers[5]]
        assert expire_overdue(s, settings, now=now) == []
    got: dict[str, Any] = client.get(f"/api/v1/rmas/{numbers[5]}").json()
    assert got["state"] == "expired"
    assert got["transitions"][-1]["note"] == f"in transit since {(today - timedelta(days=70))}"
    assert client.get(f"/api/v1/rmas/{numbers[6]}").json()["state"] == "in_transit"
