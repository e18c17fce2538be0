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
