"""Gateway throughput: RMA creation (HTTP) and event ingestion, on SQLite and PostgreSQL.

Everything runs in this process through the ASGI app (Starlette's TestClient, no sockets),
so the baseline, the trivial ``GET /livez`` of the same app measured in the same run, shows
what the framework alone costs. Event ingestion is the MQTT bridge's path without paho:
``ingest_event`` for a parcel of a known RMA, including its automatic credits and stock
moves. PostgreSQL figures need a server (``RS_TEST_PG_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``); without one they are left out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import make_url

from benchmarks import Figure
from gateway.main import create_app
from gateway.services.events import ingest_event
from gateway.settings import Settings
from protocol import ParcelEvent

N_RMAS = 300
N_EVENTS = 300
N_TRIVIAL = 1000
KEY = "bench-admin-key-0123456789abcdef"
PG_URL = os.environ.get("RS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def _pg() -> Iterator[str | None]:
    try:
        import psycopg

        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except Exception:
        yield None
        return
    name = f"rs_bench_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield (
                make_url(PG_URL)
                .set(drivername="postgresql+psycopg", database=name)
                .render_as_string(hide_password=False)
            )
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def _measure(url: str) -> tuple[float, float, float]:
    """Return (trivial req/s, RMA creations/s, events ingested/s) on database ``url``."""
    settings = Settings(database_url=url, mqtt_port=1, bootstrap_api_key=KEY, site="bench")
    app = create_app(settings)
    with TestClient(app, headers={"X-API-Key": KEY}) as client:
        for _ in range(50):  # warm-up
            client.get("/livez")
        t0 = time.perf_counter()
        for _ in range(N_TRIVIAL):
            client.get("/livez")
        trivial = _rate(N_TRIVIAL, time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(N_RMAS):
            resp = client.post(
                "/api/v1/rmas",
                json={
                    "number": f"B{i:06d}",
                    "order_ref": f"O{i}",
                    "reason": "changed_mind",
                    "resolution": "refund",
                    "lines": [{"sku": f"SKU-{i % 7}", "quantity": 1, "unit_price_cents": 1999}],
                },
            )
            assert resp.status_code == 201, resp.text
        creations = _rate(N_RMAS, time.perf_counter() - t0)
        sessions = app.state.db.sessions
        t0 = time.perf_counter()
        for i in range(N_EVENTS):
            event = ParcelEvent(
                event_id=uuid.uuid4().hex,
                station="st1",
                parcel_id=i + 1,
                inducted_at=datetime.now(UTC),
                length_mm=300.0,
                barcode=f"B{i:06d}",
                rma_number=f"B{i:06d}",
                lane="restock",
                disposition="restock",
                reason="matched",
                diverted=True,
            )
            with sessions() as session:
                assert ingest_event(session, event)
        events = _rate(N_EVENTS, time.perf_counter() - t0)
    return trivial, creations, events


def run() -> list[Figure]:
    """RMA creations/s and events/s per backend, beside GET /livez req/s of the same app."""
    figures: list[Figure] = []
    logging.getLogger("gateway").setLevel(logging.ERROR)  # "queued until the broker is back"
    with tempfile.TemporaryDirectory() as tmp, _pg() as pg:
        backends = [("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}")]
        if pg is not None:
            backends.append(("postgresql", pg))
        for name, url in backends:
            trivial, creations, events = _measure(url)
            figures += [
                Figure(
                    f"gateway {name}: RMA creations (HTTP)",
                    creations,
                    "1/s",
                    "GET /livez same app",
                    trivial,
                ),
                Figure(
                    f"gateway {name}: events ingested + credited",
                    events,
                    "1/s",
                    "GET /livez same app",
                    trivial,
                ),
            ]
    return figures
