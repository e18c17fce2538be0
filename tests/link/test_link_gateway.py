"""Station link and gateway bridge together through real brokers: outages and catch-up."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from edge.store import StationStore
from gateway.db import Database
from gateway.models import StationEvent
from gateway.schemas import RmaDraft
from gateway.services.announcements import to_announcement
from gateway.services.rmas import create_rma
from gateway.settings import Settings
from protocol import RmaAnnouncement, RmaCancellation
from simulator.procs import free_port

pytestmark = pytest.mark.broker


class RecordingStore(StationStore):
    """A station store that remembers the order in which changes were applied."""

    applied: list[tuple[str, int]]

    def _apply_one(self, change: RmaAnnouncement | RmaCancellation) -> int:
        done = super()._apply_one(change)
        if done:
            self.applied.append((change.number, change.revision))
        return done


def draft(number: str) -> RmaDraft:
    return RmaDraft(
        number=number,
        order_ref=f"O-{number}",
        reason="damaged",
        resolution="refund",
        lines=[{"sku": "SKU-1", "quantity": 1}],
    )


def announce(s: Any, site: str, d: RmaDraft) -> RmaAnnouncement:
    """Create the RMA through the gateway's service and return what stations are sent."""
    return to_announcement(create_rma(s, Settings(site=site), d))


def event_rows(db: Database) -> tuple[int, int]:
    with db.session() as s:
        total = s.scalar(select(func.count(StationEvent.id))) or 0
        distinct = s.scalar(select(func.count(func.distinct(StationEvent.event_id)))) or 0
    return int(total), int(distinct)


def test_station_offline_while_1000_rmas_are_announced_catches_up_in_order(
    tmp_path: Any,
    gateway_db: Database,
    make_bridge: Callable[..., Any],
    make_link: Callable[..., Any],
    site: str,
    wait: Any,
) -> None:
    bridge = make_bridge()
    store = RecordingStore(tmp_path / "st1.db")
    store.applied = []
    link = make_link(store=store)
    link.start()
    wait(lambda: link.in_sync, what="in sync at revision 0")
    link.stop()

    with gateway_db.session() as s:
        for i in range(1, 1001):
            assert bridge.publish_rma(announce(s, site, draft(f"R{i:04d}")))

    back = make_link(store=store)
    back.start()
    wait(lambda: back.in_sync and store.rma_count() == 1000, timeout_s=60, what="caught up")
    assert store.applied == [(f"R{i:04d}", i) for i in range(1, 1001)]
    assert store.rma_revision() == 1000
    status = back.status()
    assert (status["sync_lag"], status["head_revision"], status["in_sync"]) == (0, 1000, True)


def test_catch_up_comes_in_batches_and_reports_lag_until_done(
    tmp_path: Any,
    gateway_db: Database,
    make_bridge: Callable[..., Any],
    make_link: Callable[..., Any],
    site: str,
    wait: Any,
) -> None:
    with gateway_db.session() as s:
        for i in range(1, 451):
            create_rma(s, Settings(site=site), draft(f"B{i}"))
    bridge = make_bridge(sync_batch_size=100)
    link = make_link()
    link.start()
    wait(lambda: link.in_sync, what="in sync")
    assert link.store.rma_count() == 450
    wait(lambda: bridge.status()["sync_batches"] >= 5, what="5 batches counted")
    assert bridge.status()["sync_batches"] == 5
    assert link.status()["sync_lag"] == 0


def test_broker_restart_mid_run_loses_and_doubles_no_event(
    gateway_db: Database,
    mosquitto: Callable[..., Any],
    make_bridge: Callable[..., Any],
    make_link: Callable[..., Any],
    site: str,
    wait: Any,
) -> None:
    port = free_port()
    broker = mosquitto(port=port)
    bridge = make_bridge(port=port)
    with gateway_db.session() as s:
        bridge.publish_rma(announce(s, site, draft("KNOWN-1")))
    link = make_link(port=port)
    link.start()
    wait(lambda: link.in_sync and link.store.rma_count() == 1, what="station in sync")

    sent = 0
    lookups_ok = 0
    for phase in ("before", "during", "after"):
        if phase == "during":
            broker.stop()
            wait(lambda: not link.status()["connected"], what="station notices the outage")
        elif phase == "after":
            broker.start()
        for _ in range(20):
            # the station keeps sorting: cache lookups and events, whatever the broker does
            lookups_ok += link.store.lookup_rma("KNOWN-1") is not None
            link.publish_event(_event(site, sent))
            sent += 1
    wait(lambda: event_rows(gateway_db) == (60, 60), timeout_s=60, what="60 events ingested")
    wait(lambda: link.store.outbox_depth() == 0, what="outbox drained")
    assert lookups_ok == 60
    # the counter follows the commit: it may trail the rows by a moment
    wait(lambda: bridge.status()["events_ingested"] == 60, what="60 counted")
    with gateway_db.session() as s:
        parcels = sorted(s.scalars(select(StationEvent.parcel_id)))
    assert parcels == list(range(1, 61))


def _event(site: str, n: int) -> bytes:
    return json.dumps(
        {
            "kind": "parcel",
            "schema_version": 1,
            "event_id": f"{site}-{n:06d}",
            "station": "st1",
            "parcel_id": n + 1,
            "inducted_at": "2026-01-01T00:00:00Z",
            "length_mm": 300.0,
            "barcode": "KNOWN-1",
            "rma_number": "KNOWN-1",
            "lane": "quarantine",  # an RMA the gateway never announced: quarantined
            "disposition": "quarantine",
            "reason": "unknown_rma",
            "diverted": False,
        }
    ).encode()
