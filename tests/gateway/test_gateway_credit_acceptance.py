"""Acceptance of issue 14 over real HTTP, against a real gateway process (uvicorn), on
SQLite and PostgreSQL: simultaneous lead decisions on one RMA, and a multi-line RMA
received over several parcels (one unverified unit, one unconfirmed divert).

Parcel events reach the gateway as stations send them: through the real broker.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from protocol import ParcelEvent, Topics, UnitReceipt, encode
from simulator.procs import GatewayProcess
from tests.gateway.conftest import parcel_id_for

pytestmark = pytest.mark.broker

N_LEADS = 8
GRADES = ("restock", "refurbish", "recycle")


class HookReceiver:
    """A shop's webhook endpoint: records every POSTed event (type, data)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                got.append((body["type"], body["data"]))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, event_type: str, number: str) -> list[dict[str, Any]]:
        key = "number" if event_type == "rma.state_changed" else "rma_number"
        return [d for t, d in list(self.got) if t == event_type and d.get(key) == number]


class Live:
    """The gateway process, its API client (bootstrap admin key) and its webhook receiver."""

    def __init__(self, proc: GatewayProcess, hooks: HookReceiver, probe: Any, site: str) -> None:
        self.proc, self.hooks, self.probe, self.site = proc, hooks, probe, site
        self.api = httpx.Client(base_url=proc.url, headers={"X-API-Key": proc.api_key}, timeout=30)

    def send(self, event: ParcelEvent) -> None:
        self.probe.publish(Topics(self.site, event.station).event, encode(event))

    def rma(self, number: str) -> dict[str, Any]:
        body: dict[str, Any] = self.api.get(f"/api/v1/rmas/{number}").json()
        return body

    def credits(self, number: str) -> list[dict[str, Any]]:
        rows = self.api.get("/api/v1/credits", params={"rma": number}).json()["credits"]
        return sorted(rows, key=lambda c: (c["sku"], c["unit_no"]))

    def stock(self) -> list[tuple[str, str, int]]:
        levels = self.api.get("/api/v1/stock").json()["levels"]
        return [(x["sku"], x["location"], x["quantity"]) for x in levels]

    def outbox(self, event_type: str) -> list[dict[str, Any]]:
        rows = self.api.get("/api/v1/webhooks/deliveries", params={"limit": 1000}).json()
        return [d for d in rows["deliveries"] if d["event_type"] == event_type]


@pytest.fixture
def live(
    database_url: str, tmp_path: Path, mqtt_broker: Any, probe: Any, site: str
) -> Iterator[Live]:
    hooks = HookReceiver()
    proc = GatewayProcess(
        tmp_path / "gateway",
        mqtt_broker.port,
        site,
        env={
            "RS_DATABASE_URL": database_url,
            "RS_WEBHOOK_URL": hooks.url,
            "RS_WEBHOOK_SECRET": "whsec_acceptance-test-secret",
            "RS_WEBHOOK_POLL_S": "0.05",
            "RS_RETURN_SHIPPING_CENTS": "495",
        },
    )
    proc.start()
    gateway = Live(proc, hooks, probe, site)
    try:
        yield gateway
    finally:
        gateway.api.close()
        proc.stop()
        hooks.server.shutdown()


def parcel(
    number: str,
    disposition: str,
    units: list[tuple[int, str, int, str, str | None]],
    *,
    divert_confirmed: bool | None = None,
) -> ParcelEvent:
    """A station's parcel event; ``units``: (line_no, sku, unit, evidence, identifier)."""
    event_id = uuid.uuid4().hex
    return ParcelEvent(
        event_id=event_id,
        station="st1",
        parcel_id=parcel_id_for(event_id),
        inducted_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        length_mm=310.0,
        barcode=number,
        rma_number=number,
        lane=disposition,
        disposition=disposition,
        reason="matched" if disposition != "quarantine" else "grade_required",
        diverted=disposition != "quarantine",
        divert_confirmed=divert_confirmed,
        units=[
            UnitReceipt(
                line_no=n, sku=sku, unit=u, evidence=ev, verified=ev != "label", identifier=ident
            )
            for n, sku, u, ev, ident in units
        ],
    )


def test_simultaneous_lead_decisions_give_one_outcome_credit_transition_and_webhook(
    live: Live, wait: Callable[..., Any]
) -> None:
    body = {
        "number": "RMA-C1",
        "order_ref": "ORD-C1",
        "reason": "size",
        "resolution": "refund",
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 2000}],
    }
    assert live.api.post("/api/v1/rmas", json=body).status_code == 201
    live.send(parcel("RMA-C1", "quarantine", [(1, "SKU-1", 1, "label", None)]))
    wait(lambda: live.rma("RMA-C1")["awaiting_decision"], what="RMA waiting for a lead")
    revision = live.rma("RMA-C1")["revision"]
    start = threading.Barrier(N_LEADS)
    answers: list[httpx.Response] = [httpx.Response(0)] * N_LEADS

    def lead(i: int) -> None:
        with httpx.Client(
            base_url=live.proc.url, headers={"X-API-Key": live.proc.api_key}, timeout=30
        ) as c:
            start.wait(10)
            answers[i] = c.post(
                "/api/v1/rmas/RMA-C1/decision", json={"grade": GRADES[i % len(GRADES)]}
            )

    threads = [threading.Thread(target=lead, args=(i,)) for i in range(N_LEADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * (N_LEADS - 1), [a.text for a in answers]
    [winner] = [a.json() for a in answers if a.status_code == 200]
    grade = winner["grade"]
    for loser in (a.json() for a in answers if a.status_code == 409):
        # nothing of the loser was written; it is told the winner's result
        assert (loser["rma"]["state"], loser["rma"]["grade"]) == ("refunded", grade)
        assert loser["rma"]["revision"] == revision + 1
    final = live.rma("RMA-C1")
    assert (final["state"], final["grade"], final["revision"]) == ("refunded", grade, revision + 1)
    assert [t["trigger"] for t in final["transitions"]] == [
        "authorize",
        "receive",
        "grade",
        "refund",
    ]
    amount = {"restock": 2000, "refurbish": 1600, "recycle": 1000}[grade]
    assert [(c["grade"], c["amount_cents"]) for c in live.credits("RMA-C1")] == [(grade, amount)]
    location = grade.upper()
    assert live.stock() == [("SKU-1", location, 1)]
    [unit] = final["lines"][0]["units"]
    assert (unit["state"], unit["grade"], unit["location"]) == ("credited", grade, location)
    # one webhook per change: created, received, decided; one credit, one stock move
    assert [d["payload"]["data"]["revision"] for d in live.outbox("rma.state_changed")] == [
        revision + 1,
        revision,
        revision - 1,
    ]
    assert len(live.outbox("credit.issued")) == 1
    assert len(live.outbox("stock.moved")) == 1
    wait(lambda: len(live.hooks.of("credit.issued", "RMA-C1")) == 1, what="credit webhook")
    wait(lambda: len(live.hooks.of("rma.state_changed", "RMA-C1")) == 3, what="state webhooks")
    decided = live.hooks.of("rma.state_changed", "RMA-C1")[-1]
    assert (decided["state"], decided["revision"]) == ("refunded", revision + 1)


def test_multi_line_rma_over_three_parcels_ends_with_exact_credits_stock_and_history(
    live: Live, wait: Callable[..., Any]
) -> None:
    body = {
        "number": "RMA-M1",
        "order_ref": "ORD-M1",
        "reason": "size",
        "resolution": "refund",
        "lines": [
            {
                "sku": "SHIRT",
                "quantity": 2,
                "unit_price_cents": 1999,
                "category": "apparel",
                "gtin": "4006381333931",
            },
            {
                "sku": "PHONE",
                "quantity": 1,
                "unit_price_cents": 5000,
                "category": "electronics",
                "serial": "SN-77",
            },
            {"sku": "LAMP", "quantity": 1, "unit_price_cents": 1250, "rfid_uid": "E2801160"},
        ],
    }
    assert live.api.post("/api/v1/rmas", json=body).status_code == 201
    # parcel 1: a shirt by its GTIN and the phone by its serial, both diverts confirmed
    live.send(
        parcel(
            "RMA-M1",
            "restock",
            [(1, "SHIRT", 1, "gtin", "04006381333931"), (2, "PHONE", 1, "serial", "SN-77")],
            divert_confirmed=True,
        )
    )
    wait(lambda: len(live.credits("RMA-M1")) == 2, what="parcel 1 credited")
    # parcel 2: the second shirt, label only: unverified, the station quarantines it (a
    # restock of an unverified unit of a line with identifiers is refused: issue 15)
    live.send(parcel("RMA-M1", "quarantine", [(1, "SHIRT", 2, "label", None)]))
    wait(lambda: live.rma("RMA-M1")["lines"][0]["received_quantity"] == 2, what="parcel 2")
    # parcel 3: the lamp by its tag, but its lane's confirm sensor never saw it
    live.send(
        parcel("RMA-M1", "refurbish", [(3, "LAMP", 1, "tag", "E2801160")], divert_confirmed=False)
    )
    wait(lambda: live.rma("RMA-M1")["state"] == "received", what="parcel 3")
    waiting = live.rma("RMA-M1")
    assert waiting["awaiting_decision"] is True
    units = [
        (ln["sku"], u["unit_no"], u["state"], u["reason"], u["location"])
        for ln in waiting["lines"]
        for u in ln["units"]
    ]
    assert units == [
        ("SHIRT", 1, "credited", "", "RESTOCK"),
        ("SHIRT", 2, "awaiting", "quarantine", None),
        ("PHONE", 1, "credited", "", "RESTOCK"),
        ("LAMP", 1, "awaiting", "divert_unconfirmed", "UNCONFIRMED"),
    ]
    assert live.stock() == [
        ("LAMP", "UNCONFIRMED", 1),
        ("PHONE", "RESTOCK", 1),
        ("SHIRT", "RESTOCK", 1),
    ]
    # a lead checks the second shirt, then finds the lamp in the refurbish cage
    unit_url = "/api/v1/rmas/RMA-M1/lines/{}/units/{}/decision"
    verified = live.api.post(unit_url.format(1, 2), json={"action": "verify", "grade": "restock"})
    assert verified.status_code == 200, verified.text
    again = live.api.post(unit_url.format(1, 2), json={"action": "verify", "grade": "restock"})
    assert again.status_code == 422 and "already credited" in again.json()["detail"]
    stale = live.api.post(
        unit_url.format(3, 1),
        json={"action": "confirm_location", "grade": "refurbish", "revision": waiting["revision"]},
    )
    assert stale.status_code == 409  # decided on a page older than the shirt's verification
    assert stale.json()["rma"]["revision"] == verified.json()["revision"]
    found = live.api.post(
        unit_url.format(3, 1),
        json={
            "action": "confirm_location",
            "grade": "refurbish",
            "revision": stale.json()["rma"]["revision"],
        },
    )
    assert found.status_code == 200, found.text
    final = found.json()
    assert (final["state"], final["grade"], final["awaiting_decision"]) == (
        "refunded",
        "mixed",
        False,
    )
    got = [
        (
            c["sku"],
            c["unit_no"],
            c["grade"],
            c["paid_cents"],
            c["amount_cents"],
            c["restocking_fee_cents"],
            c["shipping_cost_cents"],
        )
        for c in live.credits("RMA-M1")
    ]
    assert got == [
        ("LAMP", 1, "refurbish", 1250, 1000, 0, 123),  # 80 %
        ("PHONE", 1, "restock", 5000, 4250, 750, 123),  # 15 % electronics restocking fee
        ("SHIRT", 1, "restock", 1999, 1999, 0, 126),  # 4.95 over 4 units, remainder here
        ("SHIRT", 2, "restock", 1999, 1999, 0, 123),
    ]
    assert sum(c[4] for c in got) == 9248
    assert live.stock() == [
        ("LAMP", "REFURBISH", 1),
        ("LAMP", "UNCONFIRMED", 0),
        ("PHONE", "RESTOCK", 1),
        ("SHIRT", "RESTOCK", 2),
    ]
    history = [(t["trigger"], t["to_state"], t["actor"]) for t in final["transitions"]]
    assert history == [
        ("authorize", "authorized", "api-key:bootstrap"),
        ("receive_part", "partially_received", "station:st1"),
        ("receive_part", "partially_received", "station:st1"),
        ("receive", "received", "station:st1"),
        ("grade", "graded", "api-key:bootstrap"),
        ("refund", "refunded", "api-key:bootstrap"),
    ]
    assert len(live.outbox("credit.issued")) == 4
    moves = [
        (d["payload"]["data"]["location"], d["payload"]["data"]["quantity"])
        for d in reversed(live.outbox("stock.moved"))
    ]
    assert moves == [
        ("RESTOCK", 1),
        ("RESTOCK", 1),
        ("UNCONFIRMED", 1),
        ("RESTOCK", 1),
        ("UNCONFIRMED", -1),
        ("REFURBISH", 1),
    ]
