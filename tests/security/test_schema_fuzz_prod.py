"""Schemathesis in production mode, authenticated (admin key) and anonymous: no 5xx.

On SQLite and PostgreSQL (which refuses what SQLite stores, such as NUL in text), each
bounded (4 examples per operation) so a backend takes about 20 s on a small machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from gateway.main import create_app
from gateway.settings import Settings
from tests.gateway.conftest import PROD_SECRET, pg_database

ADMIN_KEY = "fuzz-prod-Qm7xT2vL9pRw4nZk8cYb3JhF"
PROD = Settings(env="prod", secret_key=PROD_SECRET, mqtt_port=1, bootstrap_api_key=ADMIN_KEY)
# /healthz is 503 by design while the broker is unreachable (none runs here)
schema = schemathesis.openapi.from_dict(create_app(PROD).openapi()).exclude(path="/healthz")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def prod_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The production app on each backend (PostgreSQL refuses what SQLite stores: NUL)."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            db = Path(tmp_path_factory.mktemp("fuzz-prod")) / "gateway.db"
            url = f"sqlite:///{db}"
        else:
            url = stack.enter_context(pg_database())
        cfg = PROD.model_copy(update={"database_url": url})
        yield stack.enter_context(TestClient(create_app(cfg)))


@schema.parametrize()
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@pytest.mark.parametrize("who", ["admin", "anonymous"])
def test_no_server_error_in_production(case: Any, who: str, prod_client: TestClient) -> None:
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    kwargs.pop("verify", None)
    kwargs.pop("cookies", None)
    if isinstance(kwargs.get("data"), bytes | str):
        kwargs["content"] = kwargs.pop("data")
    headers = dict(kwargs.pop("headers", None) or {})
    headers.pop("X-API-Key", None)
    headers.pop("Authorization", None)
    if who == "admin":
        headers["X-API-Key"] = ADMIN_KEY
    response = prod_client.request(headers=headers, **kwargs)
    assert response.status_code < 500, (who, case.method, case.path, response.text[:300])
    if who == "anonymous" and case.path != "/livez":
        assert response.status_code in (401, 404, 405, 413, 422), (case.method, case.path)
