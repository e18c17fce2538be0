"""The gateway as a real process in production mode, for the attacks of issue 15.

One gateway per module, production settings (``RS_ENV=prod``, a strong secret), the test
broker, ``127.0.0.1`` as the trusted TLS proxy (so a test can play several client
addresses with ``X-Forwarded-For``) and small credential budgets so throttling shows fast.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.db import Database
from simulator.procs import GatewayProcess

PASSWORDS = {
    "lee": "lee's long password",
    "vera": "vera's long password",  # the throttling tests spray her name
    "wes": "wes's long password",  # a viewer no test throttles
}
ENV = {
    "RS_ENV": "prod",
    "RS_TRUSTED_PROXIES": "127.0.0.1",
    "RS_AUTH_RATE_LIMIT_IP": "12/minute",
    "RS_AUTH_RATE_LIMIT_USER": "5/minute",
    "RS_AUTH_HASH_CONCURRENCY": "1",
    "RS_AUTH_HASH_QUEUE": "2",
    "RS_FORM_RATE_LIMIT_IP": "200/minute",
}


class ProdGateway:
    """The running process, its admin API client and helpers."""

    def __init__(self, proc: GatewayProcess) -> None:
        self.proc = proc
        self.url = proc.url
        self.secret_key = proc.secret_key
        self.admin = httpx.Client(
            base_url=proc.url, headers={"X-API-Key": proc.api_key}, timeout=15
        )

    def anonymous(self, **headers: str) -> httpx.Client:
        """A client without credentials (``headers`` e.g. an X-Forwarded-For)."""
        return httpx.Client(base_url=self.url, headers=headers, timeout=15)

    def key(self, name: str, scopes: list[str]) -> str:
        """Create an API key; return it."""
        r = self.admin.post("/api/v1/api-keys", json={"name": name, "scopes": scopes})
        assert r.status_code == 201, r.text
        return str(r.json()["key"])

    def sign_in(
        self, user: str, address: str = "10.1.0.1", password: str | None = None
    ) -> httpx.Client:
        """A browser-like client signed in through the form (plain HTTP: not Secure)."""
        c = self.anonymous(**{"X-Forwarded-For": address, "Accept": "text/html"})
        r = c.post("/login", data={"username": user, "password": password or PASSWORDS[user]})
        assert r.status_code == 303, r.text
        assert "rs_session" in c.cookies
        return c

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a query on the gateway's own SQLite database (read only)."""
        with sqlite3.connect(f"file:{self.proc.workdir / 'gateway.db'}?mode=ro", uri=True) as db:
            return db.execute(sql).fetchall()

    def log_text(self) -> str:
        """The gateway's log so far."""
        return (self.proc.workdir / "gateway.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def site() -> str:
    return f"x{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def prod(
    tmp_path_factory: pytest.TempPathFactory, mqtt_broker: Any, site: str
) -> Iterator[ProdGateway]:
    # RS_SECRET_KEY: the process's own random one (proc.secret_key), which the tests forge with
    proc = GatewayProcess(tmp_path_factory.mktemp("prod"), mqtt_broker.port, site, env=ENV)
    proc.start()
    gw = ProdGateway(proc)
    for name, role in (("lee", "lead"), ("vera", "viewer"), ("wes", "viewer")):
        body = {"username": name, "password": PASSWORDS[name], "role": role}
        assert gw.admin.post("/api/v1/users", json=body).status_code == 201
    try:
        yield gw
    finally:
        gw.admin.close()
        proc.stop()


@pytest.fixture
def publisher(mqtt_broker: Any) -> Iterator[mqtt.Client]:
    """A paho client on the test broker, publishing as a station would."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", mqtt_broker.port)
    client.loop_start()
    yield client
    client.loop_stop()
    client.disconnect()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A migrated gateway database in a temporary SQLite file."""
    database = Database(f"sqlite:///{tmp_path / 'gateway.db'}")
    database.migrate()
    yield database
    database.dispose()
