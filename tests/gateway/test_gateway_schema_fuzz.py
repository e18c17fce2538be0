"""Schemathesis against the gateway's OpenAPI schema: no 5xx on generated input.

Bounded (a few examples per operation, no shrinking deadline) so it stays well under a
minute. The app runs with its lifespan (migrated SQLite, no broker needed: the bridge keeps
reconnecting in the background) and every request carries the bootstrap admin key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from gateway.main import create_app
from gateway.settings import Settings

ADMIN_KEY = "fuzz-admin-key-0123456789abcdef"
# /healthz is 503 by design while the broker is unreachable (none runs here)
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi()).exclude(path="/healthz")


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    db = Path(tmp_path_factory.mktemp("fuzz")) / "gateway.db"
    cfg = Settings(database_url=f"sqlite:///{db}", mqtt_port=1, bootstrap_api_key=ADMIN_KEY)
    with TestClient(create_app(cfg), headers={"X-API-Key": ADMIN_KEY}) as client:
        yield client


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_server_error(case: Any, fuzz_client: TestClient) -> None:
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    kwargs.pop("verify", None)
    if isinstance(kwargs.get("data"), bytes | str):
        kwargs["content"] = kwargs.pop("data")
    if kwargs.get("cookies"):
        fuzz_client.cookies.clear()
        fuzz_client.cookies.update(kwargs.pop("cookies"))
    kwargs.pop("cookies", None)
    response = fuzz_client.request(**kwargs)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
