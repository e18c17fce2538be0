"""Ingest under load (issue 17): site brokers bridged to a central one, gateway replicas.

The production layout in small, all real processes on 127.0.0.1: ``sites`` Mosquitto
brokers, each bridged to a central Mosquitto with the shipped bridge topics
(:func:`simulator.procs.bridge_config`); ``replicas`` gateway processes on one PostgreSQL
database sharing the ingest through an MQTT 5 shared subscription; ``stations``
lightweight station publishers (one paho client each, on its site's broker) publishing
valid schema-2 parcel events (one verified unit each) for RMAs that were created and
announced before, plus a few redeliveries of events already sent.

:func:`run_load` measures, in the same run and through the same brokers, the raw paho
QoS 1 receive rate at the central broker (a plain subscriber, nothing stored) and then
the gateways' ingest + credit rate, and checks that nothing was lost, nothing doubled and
every unit credited once. Each site broker is a site of its own (``load0``, ``load1``,
...: its RMAs are created for that site, its stations publish on its topics); every
gateway replica serves them all (``RS_SITES``), as in the production layout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from gateway.db import Database
from gateway.models import Credit, StationEvent, WebhookDelivery
from gateway.schemas import RmaDraft
from gateway.services.rmas import create_rma
from gateway.settings import Settings
from protocol import Evidence, ParcelEvent, Topics, UnitReceipt, encode
from simulator.procs import GatewayProcess, MosquittoBroker, bridge_config

log = logging.getLogger(__name__)

SITE = "load"  # the site ids are SITE + the site broker's index
SHARE_GROUP = "gateways"
MAX_EVENTS = 100_000
PUBLISHER_INFLIGHT = 100  # QoS 1 messages a station publisher keeps in flight, at most


class LoadCheckFailed(AssertionError):
    """The run lost, doubled or mis-credited something; the message says what."""


@dataclass(frozen=True)
class LoadResult:
    """What one :func:`run_load` measured.

    ``events_per_s``: distinct events ingested and credited per second, from the first
    publish to the moment every event and credit was committed; ``raw_per_s``: messages
    per second a plain paho QoS 1 subscriber of the central broker received from the same
    publishers through the same bridges; ``commit_p99_ms`` / ``commit_p50_ms``: the worst
    replica's percentile of arrival-at-the-gateway to commit of its batch, ms;
    ``per_replica``: events each replica stored; ``creations_per_s`` RMAs created per s
    (service call, before the run); ``notified_per_s``: distinct events per second from
    the first publish until the shop had every ``credit.issued`` webhook (delivered while
    the ingest runs, by the leading replica).
    """

    events: int
    duplicates: int
    events_per_s: float
    raw_per_s: float
    commit_p50_ms: float
    commit_p99_ms: float
    per_replica: tuple[int, ...]
    creations_per_s: float
    notified_per_s: float


class StationPublisher:
    """One station: a paho client on its site broker publishing parcel events at QoS 1."""

    def __init__(self, station: str, port: int, site: str) -> None:
        self.station = station
        self.site = site
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{station}-{uuid.uuid4().hex[:6]}"
        )
        self.client.max_inflight_messages_set(PUBLISHER_INFLIGHT)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self._infos: list[mqtt.MQTTMessageInfo] = []

    def publish(self, payloads: list[bytes]) -> None:
        """Queue every payload on the station's event topic (QoS 1)."""
        topic = Topics(self.site, self.station).event
        self._infos = [self.client.publish(topic, p, qos=1) for p in payloads]

    def wait(self, timeout_s: float) -> None:
        """Wait until the site broker acknowledged every payload."""
        deadline = time.monotonic() + timeout_s
        for info in self._infos:
            info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


class HookCounter:
    """A shop's webhook endpoint on 127.0.0.1: counts deliveries by type and delivery id.

    ``last_at``: ``time.perf_counter()`` of the latest delivery received, by event type.
    """

    def __init__(self) -> None:
        self.deliveries: dict[str, list[str]] = {}  # event type -> X-RS-Delivery ids
        self.last_at: dict[str, float] = {}
        lock = threading.Lock()
        got, last_at = self.deliveries, self.last_at

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a shop's web server does

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    got.setdefault(self.headers["X-RS-Event"], []).append(
                        self.headers["X-RS-Delivery"]
                    )
                    last_at[self.headers["X-RS-Event"]] = time.perf_counter()
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, event_type: str) -> list[str]:
        """Delivery ids received for ``event_type`` so far."""
        return list(self.deliveries.get(event_type, ()))

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


class RawCounter:
    """A plain QoS 1 subscriber (paho acknowledges at once); counts what it receives."""

    def __init__(self, port: int, topics: list[str], expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.done = threading.Event()
        self.last_at = 0.0
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw-baseline")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.subscribe([(t, 1) for t in topics])
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("raw subscriber not subscribed")

    def _on_message(self, _c: object, _u: object, _msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.count += 1
            if self.count >= self.expected:
                self.last_at = time.perf_counter()
                self.done.set()

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


PRODUCT_GTIN = "4006381333931"
"""The EAN-13 every load-test RMA line declares and every parcel's unit is verified by."""


def parcel(
    number: str,
    station: str,
    parcel_id: int,
    units: tuple[UnitReceipt, ...] | None = None,
    inducted_at: datetime | None = None,
) -> ParcelEvent:
    """A restocked, diverted parcel of RMA ``number`` proving ``units``.

    ``units`` default: its one unit (line 1, SKU A) verified by GTIN :data:`PRODUCT_GTIN`;
    ``inducted_at`` default: now (UTC).
    """
    if units is None:
        units = (
            UnitReceipt(
                line_no=1,
                sku="A",
                unit=1,
                evidence=Evidence.GTIN,
                verified=True,
                identifier=PRODUCT_GTIN.zfill(14),
            ),
        )
    return ParcelEvent(
        event_id=uuid.uuid4().hex,
        station=station,
        parcel_id=parcel_id,
        inducted_at=inducted_at or datetime.now(UTC),
        length_mm=300.0,
        barcode=number,
        rma_number=number,
        lane="restock",
        disposition="restock",
        reason="matched",
        diverted=True,
        divert_confirmed=True,
        units=units,
    )


def site_id(index: int) -> str:
    """The site id of the ``index``-th site broker (``load0``, ``load1``, ...)."""
    return f"{SITE}{index}"


def _stations(sites: int, stations: int) -> list[tuple[int, str]]:
    """(site index, station id) for every station, spread round-robin over the sites."""
    return [(i % sites, f"st{i % sites}x{i:02d}") for i in range(stations)]


def _publish_all(
    publishers: list[StationPublisher], payloads: list[list[bytes]], timeout_s: float
) -> float:
    """Every publisher sends its payloads at once; return the start (perf_counter)."""
    t0 = time.perf_counter()
    for pub, mine in zip(publishers, payloads, strict=True):
        pub.publish(mine)
    for pub in publishers:
        pub.wait(timeout_s)
    return t0


@contextlib.contextmanager
def _layout(workdir: Path, sites: int) -> Iterator[tuple[MosquittoBroker, list[MosquittoBroker]]]:
    central = MosquittoBroker(workdir / "central")
    with central:
        site_brokers = [
            MosquittoBroker(
                workdir / f"site{i}",
                extra_config=bridge_config(site_id(i), central.port, f"b{i}"),
            )
            for i in range(sites)
        ]
        try:
            for b in site_brokers:
                b.start()
            yield central, site_brokers
        finally:
            for b in site_brokers:
                b.stop()


def _wait_bridges(central: MosquittoBroker, site_brokers: list[MosquittoBroker]) -> None:
    """Wait until a message from every site broker reaches the central one (bridges up)."""
    seen: set[str] = set()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"wait-{uuid.uuid4().hex[:6]}")
    client.on_message = lambda _c, _u, msg: seen.add(msg.topic)
    client.on_subscribe = lambda *_a: subscribed.set()
    client.connect("127.0.0.1", central.port, keepalive=30)
    for i in range(len(site_brokers)):
        client.subscribe(Topics(site_id(i), "+").telemetry, qos=0)
    client.loop_start()
    try:
        if not subscribed.wait(10):
            raise RuntimeError("bridge probe not subscribed")
        deadline = time.monotonic() + 20
        while len(seen) < len(site_brokers):
            if time.monotonic() > deadline:
                raise RuntimeError("site bridges did not connect within 20 s")
            for i, b in enumerate(site_brokers):
                _publish_once(b.port, Topics(site_id(i), f"bridge{i}").telemetry)
            time.sleep(0.3)
    finally:
        client.disconnect()
        client.loop_stop()


def _publish_once(port: int, topic: str) -> None:
    """Publish one empty QoS 0 message on ``topic`` of the broker on ``port``."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ping-{uuid.uuid4().hex[:6]}")
    client.connect("127.0.0.1", port, keepalive=10)
    client.loop_start()
    client.publish(topic, b"", qos=1).wait_for_publish(timeout=5)
    client.disconnect()
    client.loop_stop()


def run_load(
    workdir: Path,
    database_url: str,
    *,
    events: int,
    sites: int = 3,
    stations: int = 20,
    replicas: int = 2,
    duplicate_every: int = 50,
    timeout_s: float = 300.0,
) -> LoadResult:
    """Run the layout, publish ``events`` parcel events, check and measure.

    Args:
        workdir: folder for the brokers' and gateways' files.
        database_url: an empty PostgreSQL database (SQLAlchemy URL); the gateways migrate it.
        events: distinct parcel events (1 .. :data:`MAX_EVENTS`), one RMA each.
        sites: site brokers, each bridged to the central one.
        stations: station publishers, spread over the sites.
        replicas: gateway processes sharing the ingest.
        duplicate_every: every n-th event is published a second time (a redelivery).
        timeout_s: how long the ingest may take before the run fails.

    Raises:
        ValueError: ``events`` out of range, or fewer stations than sites.
        LoadCheckFailed: something was lost, doubled or not credited exactly once.
        RuntimeError: a process did not start, or the ingest did not finish in time.
    """
    if not 1 <= events <= MAX_EVENTS:
        raise ValueError(f"events must be in 1..{MAX_EVENTS}")
    if stations < sites:
        raise ValueError("at least one station per site")
    key = secrets.token_urlsafe(24)
    site_ids = [site_id(i) for i in range(sites)]
    settings = Settings(env="dev", database_url=database_url, site=site_ids[0], sites=site_ids)
    numbers = [f"L{i:06d}" for i in range(events)]
    placed = _stations(sites, stations)
    hooks = HookCounter()
    with contextlib.closing(hooks), _layout(workdir, sites) as (central, site_brokers):
        _wait_bridges(central, site_brokers)
        publishers = [StationPublisher(st, site_brokers[s].port, site_ids[s]) for s, st in placed]
        try:
            # 1. the baseline: raw paho QoS 1 receive rate through the same bridges
            raw_payloads = _payloads(numbers, placed, duplicate_every)
            total = sum(len(p) for p in raw_payloads)
            raw = RawCounter(central.port, [Topics(x, "+").event for x in site_ids], total)
            t0 = _publish_all(publishers, raw_payloads, timeout_s)
            if not raw.done.wait(timeout_s):
                raise RuntimeError(f"raw subscriber got {raw.count} of {total}")
            raw_per_s = total / (raw.last_at - t0)
            raw.close()
            # 2. the gateways on PostgreSQL, the RMAs created (and announced) before
            procs = [
                GatewayProcess(
                    workdir / f"gateway{r}",
                    central.port,
                    site_ids[0],
                    env={
                        "RS_SITES": json.dumps(site_ids),
                        "RS_DATABASE_URL": database_url,
                        "RS_MQTT_SHARE_GROUP": SHARE_GROUP,
                        "RS_MQTT_CLIENT_ID": f"gateway-{SITE}-{r}",
                        "RS_BOOTSTRAP_API_KEY": key,
                        "RS_WEBHOOK_URL": hooks.url,
                        "RS_WEBHOOK_SECRET": secrets.token_urlsafe(32),
                        "RS_WEBHOOK_POLL_S": "0.2",
                    },
                )
                for r in range(replicas)
            ]
            try:
                for p in procs:  # one after the other: the first migrates the database
                    p.start()
                db = Database(database_url)
                try:
                    sites_of = [site_ids[placed[i % len(placed)][0]] for i in range(events)]
                    creations_per_s = _create_rmas(db, settings, numbers, sites_of)
                    payloads = _payloads(numbers, placed, duplicate_every)
                    t0 = _publish_all(publishers, payloads, timeout_s)
                    took = _wait_ingested(db, events, t0, timeout_s)
                    _check(db, numbers, sites_of)
                    _wait_hooks(hooks, events, timeout_s)
                    notified = hooks.last_at["credit.issued"] - t0
                    statuses = [_bridge_status(p, key) for p in procs]
                finally:
                    db.dispose()
            finally:
                for p in procs:
                    p.stop()
        finally:
            for pub in publishers:
                pub.close()
    stored = tuple(int(s["events_ingested"]) for s in statuses)
    duplicates = sum(int(s["events_duplicate"]) for s in statuses)
    if sum(stored) != events or duplicates != total - events:
        raise LoadCheckFailed(f"replicas stored {stored} and {duplicates} duplicates")
    return LoadResult(
        events=events,
        duplicates=duplicates,
        events_per_s=events / took,
        raw_per_s=raw_per_s,
        commit_p50_ms=max(float(s["commit_latency_p50_ms"] or 0) for s in statuses),
        commit_p99_ms=max(float(s["commit_latency_p99_ms"] or 0) for s in statuses),
        per_replica=stored,
        creations_per_s=creations_per_s,
        notified_per_s=events / notified,
    )


def _payloads(
    numbers: list[str], placed: list[tuple[int, str]], duplicate_every: int
) -> list[list[bytes]]:
    """Each station's payloads: its share of the RMAs, every n-th one sent twice."""
    mine: list[list[bytes]] = [[] for _ in placed]
    for i, number in enumerate(numbers):
        k = i % len(placed)
        data = encode(parcel(number, placed[k][1], i + 1))
        mine[k].append(data)
        if duplicate_every and i % duplicate_every == 0:
            mine[k].append(data)
    return mine


def _create_rmas(db: Database, settings: Settings, numbers: list[str], sites: list[str]) -> float:
    """Create one single-unit RMA per number, at the site of the same index; creations/s.

    Through the writer path (:func:`gateway.services.rmas.create_rma`).
    """
    t0 = time.perf_counter()
    with db.session() as session:
        for n, site in zip(numbers, sites, strict=True):
            draft = RmaDraft.model_validate(
                {
                    "number": n,
                    "site": site,
                    "order_ref": f"O-{n}",
                    "reason": "changed_mind",
                    "resolution": "refund",
                    "lines": [
                        {"sku": "A", "quantity": 1, "unit_price_cents": 1999, "gtin": PRODUCT_GTIN}
                    ],
                }
            )
            create_rma(session, settings, draft, actor="api-key:load")
    return len(numbers) / (time.perf_counter() - t0)


def _wait_ingested(db: Database, events: int, t0: float, timeout_s: float) -> float:
    """Seconds from ``t0`` until every event and its credit are committed."""
    deadline = time.monotonic() + timeout_s
    while True:
        with db.session() as session:
            stored = session.scalar(select(func.count(StationEvent.id))) or 0
            credited = session.scalar(select(func.count(Credit.id))) or 0
        if stored >= events and credited >= events:
            return time.perf_counter() - t0
        if time.monotonic() > deadline:
            raise RuntimeError(f"ingest unfinished: {stored} events, {credited} credits")
        time.sleep(0.05)


def _check(db: Database, numbers: list[str], sites: list[str]) -> None:
    """Nothing lost, nothing doubled, every unit credited once (its webhook once), each site's.

    Every event is recorded at the site of its RMA (``sites``: the site of each number).
    """
    with db.session() as session:
        found = session.execute(select(StationEvent.rma_number, StationEvent.site)).all()
        at = {number: site for number, site in found}
        rows = session.scalar(select(func.count(StationEvent.id))) or 0
        distinct = session.scalar(select(func.count(func.distinct(StationEvent.event_id)))) or 0
        credited = sorted(session.scalars(select(Credit.rma_number)))
        hooks = (
            session.scalar(
                select(func.count(WebhookDelivery.id)).where(
                    WebhookDelivery.event_type == "credit.issued"
                )
            )
            or 0
        )
    if rows != len(numbers) or distinct != len(numbers):
        raise LoadCheckFailed(f"{rows} event rows, {distinct} distinct, {len(numbers)} sent")
    if credited != numbers:
        raise LoadCheckFailed(
            f"{len(credited)} credits for {len(numbers)} units (or not each once)"
        )
    if hooks != len(numbers):
        raise LoadCheckFailed(f"{hooks} credit webhooks queued for {len(numbers)} credits")
    wrong = [n for n, site in zip(numbers, sites, strict=True) if at.get(n) != site]
    if wrong:
        raise LoadCheckFailed(f"{len(wrong)} events not at their RMA's site, e.g. {wrong[0]}")


def _wait_hooks(hooks: HookCounter, credits: int, timeout_s: float) -> None:
    """Wait until the shop got one ``credit.issued`` webhook per credit, each once."""
    deadline = time.monotonic() + timeout_s
    while len(hooks.of("credit.issued")) < credits:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(hooks.of('credit.issued'))} of {credits} credit webhooks")
        time.sleep(0.1)
    got = hooks.of("credit.issued")
    if len(got) != credits or len(set(got)) != credits:
        raise LoadCheckFailed(f"{len(got)} credit webhooks ({len(set(got))} distinct)")


def _bridge_status(proc: GatewayProcess, key: str) -> dict[str, Any]:
    body = httpx.get(f"{proc.url}/healthz", headers={"X-API-Key": key}, timeout=10).json()
    status: dict[str, Any] = body["mqtt_status"]
    return status
