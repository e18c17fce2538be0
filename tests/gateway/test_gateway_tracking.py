"""Carrier tracking on RMAs (issue 18 item 4): set at creation, on ship, from a label
bought for the RMA; validated by the code classifier; announced to stations (schema 3)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from gateway.models import AnnouncementRow
from protocol import RmaAnnouncement, decode

pytestmark = pytest.mark.broker

UPS = "1Z999AA10123456784"  # UPS 1Z, check digit 4
S10 = "RB123456785GB"  # UPU S10, check digit 5
S10_OTHER = "EE123456785FR"


def body(**over: Any) -> dict[str, Any]:
    return {
        "order_ref": "ORD-T1",
        "reason": "size",
        "resolution": "refund",
        "lines": [{"sku": "A", "quantity": 1, "unit_price_cents": 900}],
        **over,
    }


def announced(client: TestClient, number: str) -> list[RmaAnnouncement]:
    with client.app.state.db.session() as s:  # type: ignore[attr-defined]
        rows = s.scalars(
            select(AnnouncementRow.payload)
            .where(AnnouncementRow.rma_number == number)
            .order_by(AnnouncementRow.revision)
        ).all()
    return [decode(p.encode(), RmaAnnouncement) for p in rows]


def test_created_with_its_tracking_number_and_announced_in_schema_3(client: TestClient) -> None:
    rma = client.post("/api/v1/rmas", json=body(tracking_number=" 1z999aa10123456784 "))
    assert rma.status_code == 201, rma.text
    got = rma.json()
    assert (got["carrier"], got["tracking_number"]) == ("UPS", UPS)
    (wire,) = announced(client, got["number"])
    assert (wire.schema_version, wire.tracking_number, wire.carrier) == (3, UPS, "UPS")
    plain = client.post("/api/v1/rmas", json=body()).json()
    assert (plain["carrier"], plain["tracking_number"]) == ("", None)
    (old,) = announced(client, plain["number"])  # stations not yet upgraded take it
    assert (old.schema_version, old.tracking_number, old.carrier) == (2, None, None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"tracking_number": "RB123456784GB"}, "UPU S10 tracking number fails its check"),
        ({"tracking_number": "1Z999AA10123456785"}, "UPS tracking number fails its check"),
        (
            {"tracking_number": "hello"},
            "'HELLO' is not a carrier tracking number the stations recognise",
        ),
        ({"carrier": "DHL"}, "a carrier needs its tracking_number"),
        ({"tracking_number": S10, "carrier": "C" * 33}, "at most 32 characters"),
        ({"tracking_number": "1" * 49}, "at most 48 characters"),
    ],
)
def test_a_bad_tracking_number_is_refused_with_its_reason(
    client: TestClient, extra: dict[str, str], message: str
) -> None:
    refused = client.post("/api/v1/rmas", json=body(**extra))
    assert refused.status_code == 422
    assert message in refused.text


def test_ship_moves_to_in_transit_with_the_tracking_once(client: TestClient) -> None:
    number = client.post("/api/v1/rmas", json=body()).json()["number"]
    shipped = client.post(
        f"/api/v1/rmas/{number}/ship", json={"tracking_number": S10, "carrier": "La Poste"}
    )
    assert shipped.status_code == 200, shipped.text
    got = shipped.json()
    assert (got["state"], got["carrier"], got["tracking_number"]) == (
        "in_transit",
        "La Poste",
        S10,
    )
    assert [t["trigger"] for t in got["transitions"]] == ["authorize", "ship"]
    again = client.post(f"/api/v1/rmas/{number}/ship", json={"tracking_number": S10.lower()})
    assert again.status_code == 200
    assert again.json()["revision"] == got["revision"]  # a retried request changes nothing
    assert again.json()["carrier"] == "La Poste"
    wire = announced(client, number)
    assert [(a.schema_version, a.tracking_number, a.carrier) for a in wire] == [
        (2, None, None),
        (3, S10, "La Poste"),
    ]


def test_a_tracking_number_belongs_to_one_rma(client: TestClient) -> None:
    first = client.post("/api/v1/rmas", json=body(tracking_number=S10)).json()["number"]
    twice = client.post("/api/v1/rmas", json=body(tracking_number=S10))
    assert twice.status_code == 409
    assert twice.json()["detail"] == f"tracking number {S10!r} is already RMA {first!r}'s"
    other = client.post("/api/v1/rmas", json=body()).json()
    taken = client.post(f"/api/v1/rmas/{other['number']}/ship", json={"tracking_number": S10})
    assert taken.status_code == 409
    assert taken.json()["rma"]["state"] == "authorized"  # nothing of the request written
    assert taken.json()["rma"]["revision"] == other["revision"]


def test_ship_is_refused_for_a_cancelled_rma(client: TestClient) -> None:
    number = client.post("/api/v1/rmas", json=body()).json()["number"]
    cancel = client.post(f"/api/v1/rmas/{number}/transitions", json={"trigger": "cancel"})
    assert cancel.status_code == 200
    refused = client.post(f"/api/v1/rmas/{number}/ship", json={"tracking_number": UPS})
    assert refused.status_code == 409
    assert "'ship' is not allowed" in refused.json()["detail"]
    assert refused.json()["rma"]["tracking_number"] is None


def test_a_label_bought_sets_the_tracking_without_a_state_change(client: TestClient) -> None:
    created = client.post("/api/v1/rmas", json=body()).json()
    number = created["number"]
    put = client.put(
        f"/api/v1/rmas/{number}/tracking", json={"tracking_number": S10_OTHER, "carrier": "Colis"}
    )
    assert put.status_code == 200, put.text
    got = put.json()
    assert (got["state"], got["carrier"], got["tracking_number"]) == (
        "authorized",
        "Colis",
        S10_OTHER,
    )
    assert got["revision"] > created["revision"]
    same = client.put(
        f"/api/v1/rmas/{number}/tracking", json={"tracking_number": S10_OTHER, "carrier": "Colis"}
    )
    assert same.json()["revision"] == got["revision"]
    assert client.put(f"/api/v1/rmas/{number}/tracking", json={}).status_code == 422


def test_a_schema_2_announcement_cannot_carry_a_tracking_number() -> None:
    fields: dict[str, Any] = {
        "number": "RS0A1B2C3D4",
        "revision": 1,
        "order_ref": "O",
        "reason": "size",
        "resolution": "refund",
        "lines": [{"line_no": 1, "sku": "A", "quantity": 1}],
    }
    assert RmaAnnouncement(**fields, tracking_number=UPS).schema_version == 3
    with pytest.raises(ValidationError, match="tracking_number and carrier need schema_version 3"):
        RmaAnnouncement(**fields, schema_version=2, tracking_number=UPS)
    with pytest.raises(ValidationError, match="String should match pattern"):
        RmaAnnouncement(**fields, tracking_number="1Z 999")
