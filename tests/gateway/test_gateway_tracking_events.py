"""The carriers' tracking webhook (issue 18 item 4): signed per carrier, body capped,
moves the RMA to in transit, records delivered / exception, idempotent, out-of-order
safe."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.db import Database
from gateway.main import create_app
from gateway.models import Rma, RmaTransition
from gateway.schemas import RmaDraft, TrackingEventIn
from gateway.services.revisions import ensure_site
from gateway.services.rma_writer import StaleRma
from gateway.services.rmas import create_rma
from gateway.services.tracking import apply_carrier_event
from gateway.services.webhook_endpoints import sign
from gateway.settings import Settings
from tests.gateway.conftest import ADMIN_KEY

pytestmark = pytest.mark.broker

UPS = "1Z999AA10123456784"
S10 = "RB123456785GB"
UPS_SECRET = "ups-test-secret-4f9a1c77e2b04d8e9a"
POST_SECRET = "laposte-test-secret-0b6e2d91c3a84f57"


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The gateway with two carriers' tracking secrets."""
    configured = settings.model_copy(
        update={"tracking_secrets": {"UPS": UPS_SECRET, "La Poste": POST_SECRET}}
    )
    app = create_app(configured)
    with TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as test_client:
        assert app.state.bridge.wait_ready(10)
        yield test_client


def rma(client: TestClient, **tracking: str) -> dict[str, Any]:
    body = {
        "order_ref": "ORD-T",
        "reason": "size",
        "resolution": "refund",
        "lines": [{"sku": "A", "quantity": 1, "unit_price_cents": 900}],
        **tracking,
    }
    created = client.post("/api/v1/rmas", json=body)
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def post(
    client: TestClient,
    payload: dict[str, Any] | bytes,
    *,
    carrier: str = "UPS",
    secret: str = UPS_SECRET,
    ts: int | None = None,
) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    stamp = int(time.time()) if ts is None else ts
    headers = {
        "X-RS-Carrier": carrier,
        "X-RS-Timestamp": str(stamp),
        "X-RS-Signature": sign(secret, stamp, body),
        "Content-Type": "application/json",
        "X-API-Key": "",  # carriers have no API key
    }
    return client.post("/api/v1/tracking/events", content=body, headers=headers)


def event(status: str, at: str, number: str = UPS, carrier: str = "UPS", **more: Any) -> Any:
    return {
        "carrier": carrier,
        "tracking_number": number,
        "status": status,
        "occurred_at": at,
        **more,
    }


def test_a_carrier_event_outside_the_calendar_range_is_a_422_naming_the_field(
    client: TestClient,
) -> None:
    """Regression: ``0001-01-01T00:00:00+14:00`` (UTC: year 0) and
    ``9999-12-31T23:59:59-12:00`` (UTC: year 10000) were a 500 storing the time; a
    ``expected_on`` of 9999 was stored."""
    created = rma(client, tracking_number=UPS)
    early = "Input should be greater than or equal to 1970-01-01T00:00:00Z"
    late = "Input should be less than 3000-01-01T00:00:00Z"
    for payload, loc, msg in [
        (event("in_transit", "0001-01-01T00:00:00+14:00"), ["occurred_at"], early),
        (event("in_transit", "9999-12-31T23:59:59-12:00"), ["occurred_at"], late),
        (event("in_transit", "2999-12-31T23:59:59-12:00"), ["occurred_at"], late),
        (
            event("in_transit", "2026-12-01T08:00:00Z", expected_on="9999-12-31"),
            ["expected_on"],
            "Input should be less than or equal to 2999-12-31",
        ),
    ]:
        got = post(client, payload)
        assert got.status_code == 422, got.text
        assert [(e["loc"], e["msg"]) for e in got.json()["detail"]] == [(loc, msg)]
    last = post(client, event("in_transit", "2999-12-31T23:59:59Z", expected_on="2999-12-31"))
    assert (last.status_code, last.json()["applied"]) == (200, True)
    got = client.get(f"/api/v1/rmas/{created['number']}").json()
    assert (got["carrier_status_at"], got["expected_on"]) == (
        "2999-12-31T23:59:59Z",
        "2999-12-31",
    )


def test_carrier_scans_move_the_rma_once_and_in_order(client: TestClient) -> None:
    created = rma(client, tracking_number=UPS)
    number = created["number"]
    first = post(client, event("in_transit", "2026-12-01T08:00:00+01:00", expected_on="2026-12-03"))
    assert first.status_code == 200, first.text
    assert first.json() == {
        "number": number,
        "state": "in_transit",
        "carrier_status": "in_transit",
        "applied": True,
    }
    again = post(client, event("in_transit", "2026-12-01T08:00:00+01:00"))
    assert again.json()["applied"] is False  # a repeat changes nothing
    delivered = post(client, event("delivered", "2026-12-03T10:00:00Z"))
    assert delivered.json()["carrier_status"] == "delivered"
    late = post(client, event("exception", "2026-12-02T09:00:00Z"))  # older: out of order
    assert (late.status_code, late.json()["applied"]) == (200, False)
    got = client.get(f"/api/v1/rmas/{number}").json()
    assert (got["state"], got["carrier_status"], got["expected_on"]) == (
        "in_transit",
        "delivered",
        "2026-12-03",
    )
    assert got["shipped_at"] == "2026-12-01T07:00:00Z"
    ship = [t for t in got["transitions"] if t["trigger"] == "ship"]
    assert [(t["actor"], t["note"]) for t in ship] == [("carrier:UPS", "UPS in transit")]


def test_delivered_first_still_ships_and_an_exception_records_only(client: TestClient) -> None:
    number = rma(client, tracking_number=S10, carrier="La Poste")["number"]
    exc = event("exception", "2026-12-01T08:00:00Z", S10, "La Poste", detail="address unclear")
    held = post(client, exc, carrier="La Poste", secret=POST_SECRET)
    assert held.json() == {
        "number": number,
        "state": "authorized",  # an exception is not a scan on the way
        "carrier_status": "exception",
        "applied": True,
    }
    arrived = post(
        client,
        event("delivered", "2026-12-02T08:00:00Z", S10, "La Poste"),
        carrier="La Poste",
        secret=POST_SECRET,
    )
    assert (arrived.json()["state"], arrived.json()["carrier_status"]) == (
        "in_transit",
        "delivered",
    )


def test_only_a_carrier_with_its_own_signature_moves_its_own_parcels(client: TestClient) -> None:
    rma(client, tracking_number=UPS)
    ok = event("in_transit", "2026-12-01T08:00:00Z")
    unsigned = client.post(
        "/api/v1/tracking/events", json=ok, headers={"X-API-Key": "", "X-RS-Carrier": "UPS"}
    )
    assert unsigned.status_code == 401
    assert post(client, ok, secret="wrong-secret").status_code == 401
    assert post(client, ok, carrier="DHL", secret="whatever").status_code == 401
    stale = post(client, ok, ts=int(time.time()) - 3600)
    assert stale.status_code == 401 and "within 300 s" in stale.json()["detail"]
    other = post(client, ok, carrier="La Poste", secret=POST_SECRET)
    assert other.status_code == 403  # La Poste cannot report a UPS parcel
    theirs = post(
        client,
        event("in_transit", "2026-12-01T08:00:00Z", S10, "La Poste"),
        carrier="La Poste",
        secret=POST_SECRET,
    )
    assert theirs.status_code == 404  # no RMA has this number
    bad = post(client, event("lost", "2026-12-01T08:00:00Z"))
    assert bad.status_code == 422
    naive = post(client, event("in_transit", "2026-12-01T08:00:00"))
    assert naive.status_code == 422  # a time without its offset is refused
    body = json.dumps(ok).encode()
    latin = {"X-RS-Carrier": "UPS", "X-RS-Timestamp": str(int(time.time())), "X-API-Key": ""}
    odd = client.post(  # compare_digest raised TypeError for non-ASCII text: a 500
        "/api/v1/tracking/events", content=body, headers={**latin, "X-RS-Signature": b"\xe9"}
    )
    assert (odd.status_code, odd.json()) == (401, {"detail": "bad signature"})
    huge = post(client, json.dumps({**ok, "detail": "x" * 9000}).encode())
    assert huge.status_code == 413
    assert client.get("/api/v1/rmas").json()["rmas"][0]["state"] == "authorized"


N_RACERS = 8


def test_simultaneous_repeats_of_one_scan_ship_the_rma_once(anydb: Database) -> None:
    """Retried deliveries of one scan racing on each backend: one ship, one transition."""
    settings = Settings(site="s1", env="dev")
    with anydb.session() as s:
        ensure_site(s, "s1")
        s.commit()
        draft = RmaDraft(
            order_ref="O-1",
            reason="size",
            resolution="refund",
            lines=[{"sku": "A", "quantity": 1, "unit_price_cents": 900}],
            tracking_number=UPS,
        )
        number = create_rma(s, settings, draft).number
    scan = TrackingEventIn(
        carrier="UPS", tracking_number=UPS, status="in_transit", occurred_at="2026-12-01T08:00Z"
    )
    outcomes: list[str] = []
    start = threading.Barrier(N_RACERS)

    def deliver() -> None:
        with anydb.session() as s:
            start.wait()
            try:
                _rma, applied = apply_carrier_event(s, settings, scan)
                outcomes.append("applied" if applied else "repeat")
            except StaleRma:
                outcomes.append("409")

    threads = [threading.Thread(target=deliver) for _ in range(N_RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes.count("applied") == 1
    assert len(outcomes) == N_RACERS
    with anydb.session() as s:
        rma = s.scalar(select(Rma).where(Rma.number == number))
        assert rma is not None and (rma.state, rma.carrier_status) == ("in_transit", "in_transit")
        ships = s.scalars(
            select(RmaTransition.trigger).where(
                RmaTransition.rma_id == rma.id, RmaTransition.trigger == "ship"
            )
        ).all()
        assert ships == ["ship"]
