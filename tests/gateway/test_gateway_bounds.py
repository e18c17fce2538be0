"""Integers from a request never reach the database unbounded (regression: schemathesis
found GET /api/v1/rmas?after_revision=<huge> overflowing SQLite's INTEGER with a 500)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.broker


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/rmas?after_revision=99999999999999999999999",
        "/api/v1/rmas?after_revision=-1",
        "/api/v1/rmas?limit=99999999999999999999999",
        "/api/v1/events?limit=99999999999999999999999",
    ],
)
def test_out_of_range_integer_is_a_422_not_a_500(client: TestClient, url: str) -> None:
    assert client.get(url).status_code == 422


def test_largest_revision_is_accepted(client: TestClient) -> None:
    resp = client.get(f"/api/v1/rmas?after_revision={2**63 - 1}")
    assert resp.status_code == 200
    assert resp.json()["rmas"] == []


# -- dates and times: within EARLIEST_DATE .. LATEST_DATE (regression: 9999-12-31 and
# -- 0001-01-01T00:00:00+14:00 overflowed the gateway's date arithmetic with a 500)


@pytest.mark.parametrize(
    ("url", "loc", "msg"),
    [
        (
            "/api/v1/reports/financial?end=9999-12-31",
            ["query", "end"],
            "Input should be less than or equal to 2999-12-31",
        ),
        (
            "/api/v1/reports/financial?start=1969-12-31",
            ["query", "start"],
            "Input should be greater than or equal to 1970-01-01",
        ),
        (
            "/api/v1/reports/shift?day=9999-12-31&shift=2",
            ["query", "day"],
            "Input should be less than or equal to 2999-12-31",
        ),
        (
            "/api/v1/reports/shift?day=1969-12-31&shift=0",
            ["query", "day"],
            "Input should be greater than or equal to 1970-01-01",
        ),
    ],
)
def test_a_report_day_outside_the_calendar_range_is_a_422_naming_it(
    client: TestClient, url: str, loc: list[str], msg: str
) -> None:
    resp = client.get(url)
    assert resp.status_code == 422, resp.text
    assert [(e["loc"], e["msg"]) for e in resp.json()["detail"]] == [(loc, msg)]


def test_report_days_at_the_ends_of_the_range_are_answered(client: TestClient) -> None:
    financial = client.get("/api/v1/reports/financial?start=1970-01-01&end=2999-12-31")
    assert financial.status_code == 200, financial.text
    night = client.get("/api/v1/reports/shift?day=2999-12-31&shift=2")  # ends in 3000
    assert night.status_code == 200, night.text
    assert night.json()["shift"] == "22:00-06:00"


def _order(ref: str, delivered_at: str) -> dict[str, object]:
    return {
        "order_ref": ref,
        "customer_email": "ann@example.com",
        "delivered_at": delivered_at,
        "lines": [
            {"sku": "A", "ordered_quantity": 2, "delivered_quantity": 2, "unit_price_cents": 1000}
        ],
    }


@pytest.mark.parametrize(
    ("delivered_at", "msg"),
    [
        ("9999-12-25T12:00:00+00:00", "Input should be less than 3000-01-01T00:00:00Z"),
        ("2999-12-31T23:59:59-12:00", "Input should be less than 3000-01-01T00:00:00Z"),
        (
            "0001-01-01T00:00:00+14:00",
            "Input should be greater than or equal to 1970-01-01T00:00:00Z",
        ),
        (
            "1970-01-01T00:59:59+01:00",
            "Input should be greater than or equal to 1970-01-01T00:00:00Z",
        ),
    ],
)
def test_an_order_delivered_outside_the_calendar_range_is_a_422_naming_delivered_at(
    client: TestClient, delivered_at: str, msg: str
) -> None:
    resp = client.put("/api/v1/orders/O-CAL", json=_order("O-CAL", delivered_at))
    assert resp.status_code == 422, resp.text
    assert [(e["loc"], e["msg"]) for e in resp.json()["detail"]] == [
        (["body", "delivered_at"], msg)
    ]
    assert client.get("/api/v1/orders/O-CAL").status_code == 404


def test_an_rma_delivery_day_is_bounded_and_its_window_checked_up_to_the_range_end(
    client: TestClient,
) -> None:
    """The last instant of the range, in the zone furthest east, and the last day."""
    order = _order("O-END", "2999-12-31T23:59:59+14:00")
    assert client.put("/api/v1/orders/O-END", json=order).status_code == 201
    rma: dict[str, object] = {
        "order_ref": "O-END",
        "reason": "size",
        "resolution": "refund",
        "lines": [{"sku": "A", "quantity": 1}],
    }
    refused = client.post("/api/v1/rmas", json={**rma, "delivered_on": "9999-12-31"})
    assert refused.status_code == 422, refused.text
    assert [(e["loc"], e["msg"]) for e in refused.json()["detail"]] == [
        (["body", "delivered_on"], "Input should be less than or equal to 2999-12-31")
    ]
    made = client.post("/api/v1/rmas", json={**rma, "delivered_on": "2999-12-31"})
    assert made.status_code == 201, made.text
    assert made.json()["delivered_on"] == "2999-12-31"
    again = client.post("/api/v1/rmas", json=rma)  # the order's delivery, window 30 days
    assert again.status_code == 201, again.text
    assert again.json()["delivered_on"] == "2999-12-31"
