"""Gateway throughput: RMA creation, ingestion + credit, lead decisions; SQLite and PostgreSQL.

Everything runs in this process through the ASGI app (Starlette's TestClient, no sockets),
so the baseline, the trivial ``GET /livez`` of the same app measured in the same run, shows
what the framework alone costs (measured in blocks between blocks of the RMA creations,
:data:`CREATION_BLOCK`, so that a drift of the machine's speed weighs on both alike).
Event ingestion is the MQTT bridge's path without paho:
``ingest_event`` for a parcel of a known RMA whose unit the station verified (by its
GTIN), including its per-unit credit, stock move and writer-path rows (revision, webhook,
announcement outbox): :data:`SINGLE` of them one per transaction, :data:`BATCHED` in
batches of :data:`BATCH` (``ingest_events``, what the bridge does with what is queued, up
to ``RS_MQTT_BATCH_MAX``, default 500). Lead decisions:
``POST /api/v1/rmas/{n}/decision`` on RMAs whose label-only parcel went to quarantine
(row lock or revision compare-and-set, credit, resolution). PostgreSQL figures need a
server (``RS_TEST_PG_URL``, default ``postgresql://postgres@127.0.0.1:5432/postgres``);
without one they are left out. While it measures, the process's collector is tuned as
the gateway process tunes its own (:func:`gateway.main.tune_collector`: start-up heap
frozen, :data:`gateway.settings.GC_THRESHOLD`), then restored.
"""

from __future__ import annotations

import contextlib
import gc
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
from gateway.main import create_app, tune_collector
from gateway.models import Credit
from gateway.services.events import Outcome, ingest_event, ingest_events
from gateway.settings import GC_THRESHOLD, Settings
from protocol import Evidence, ParcelEvent, UnitReceipt

SINGLE = 150  # events ingested one per transaction
BATCH = 500  # events per transaction in the batched figure (the MQTT bridge's most, default)
BATCHED = 1000  # events ingested in batches of BATCH
N_EVENTS = SINGLE + BATCHED  # RMAs 0..N_EVENTS-1 get a verified parcel
N_RMAS = N_EVENTS + 150  # the last 150 a label-only one and a lead's decision
N_TRIVIAL = 1000
CREATION_BLOCK = 100  # creations between two blocks of the baseline's requests
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


@contextlib.contextmanager
def _collector_as_the_gateway_process() -> Iterator[None]:
    """The collector tuned as the gateway process tunes it (:func:`tune_collector`); restored."""
    before = gc.get_threshold()
    tune_collector(GC_THRESHOLD)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def _event(i: int, *, verified: bool) -> ParcelEvent:
    """Parcel of RMA ``B{i}``: its unit verified by GTIN (restock) or label only (quarantine)."""
    return ParcelEvent(
        event_id=uuid.uuid4().hex,
        station="st1",
        parcel_id=i + 1,
        inducted_at=datetime.now(UTC),
        length_mm=300.0,
        barcode=f"B{i:06d}",
        rma_number=f"B{i:06d}",
        lane="restock" if verified else "quarantine",
        disposition="restock" if verified else "quarantine",
        reason="matched" if verified else "unverified",
        diverted=verified,
        divert_confirmed=True if verified else None,
        units=(
            UnitReceipt(
                line_no=1,
                sku=f"SKU-{i % 7}",
                unit=1,
                evidence=Evidence.GTIN if verified else Evidence.LABEL,
                verified=verified,
                identifier="04006381333931" if verified else None,
            ),
        ),
    )


def _measure(url: str) -> tuple[float, float, float, float, float]:
    """Return (trivial req/s, creations/s, events/s one per commit, batched, decisions/s).

    Events are ingested and credited, one per transaction and in batches of :data:`BATCH`.
    """
    settings = Settings(
        env="dev", database_url=url, mqtt_port=1, bootstrap_api_key=KEY, site="bench"
    )
    app = create_app(settings)
    with TestClient(app, headers={"X-API-Key": KEY}) as client:
        for _ in range(50):  # warm-up
            client.get("/livez")
        # the baseline and the creations in alternating blocks, so that the machine's
        # speed, which drifts over seconds here, weighs on both alike
        trivial_s = creations_s = 0.0
        blocks = list(range(0, N_RMAS, CREATION_BLOCK))
        for start in blocks:
            t0 = time.perf_counter()
            for _ in range(N_TRIVIAL // len(blocks)):
                client.get("/livez")
            t1 = time.perf_counter()
            for i in range(start, min(start + CREATION_BLOCK, N_RMAS)):
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
            trivial_s += t1 - t0
            creations_s += time.perf_counter() - t1
        trivial = _rate(N_TRIVIAL // len(blocks) * len(blocks), trivial_s)
        creations = _rate(N_RMAS, creations_s)
        sessions = app.state.db.sessions
        t0 = time.perf_counter()
        for i in range(SINGLE):
            with sessions() as session:
                assert ingest_event(session, _event(i, verified=True))
        events = _rate(SINGLE, time.perf_counter() - t0)
        batches = [
            [_event(i, verified=True) for i in range(start, min(start + BATCH, N_EVENTS))]
            for start in range(SINGLE, N_EVENTS, BATCH)
        ]
        t0 = time.perf_counter()
        for batch in batches:
            with sessions() as session:
                results = ingest_events(session, batch)
            assert all(r.outcome is Outcome.STORED for r in results)
        batched = _rate(BATCHED, time.perf_counter() - t0)
        for i in range(N_EVENTS, N_RMAS):  # label only: they wait for a lead
            with sessions() as session:
                assert ingest_event(session, _event(i, verified=False))
        t0 = time.perf_counter()
        for i in range(N_EVENTS, N_RMAS):
            resp = client.post(f"/api/v1/rmas/B{i:06d}/decision", json={"grade": "refurbish"})
            assert resp.status_code == 200, resp.text
        decisions = _rate(N_RMAS - N_EVENTS, time.perf_counter() - t0)
        with sessions() as session:
            assert session.query(Credit).count() == N_RMAS  # one credit per unit, none twice
    return trivial, creations, events, batched, decisions


def run() -> list[Figure]:
    """Creations, ingestions + credits, decisions per second per backend, beside GET /livez."""
    figures: list[Figure] = []
    logging.getLogger("gateway").setLevel(logging.ERROR)  # "queued until the broker is back"
    with tempfile.TemporaryDirectory() as tmp, _pg() as pg:
        backends = [("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}")]
        if pg is not None:
            backends.append(("postgresql", pg))
        for name, url in backends:
            with _collector_as_the_gateway_process():
                trivial, creations, events, batched, decisions = _measure(url)
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
                Figure(
                    f"gateway {name}: events + credits, batches of {BATCH}",
                    batched,
                    "1/s",
                    "GET /livez same app",
                    trivial,
                ),
                Figure(
                    f"gateway {name}: lead decisions + credit (HTTP)",
                    decisions,
                    "1/s",
                    "GET /livez same app",
                    trivial,
                ),
            ]
    return figures
