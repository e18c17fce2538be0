"""The site's head revision (``rs/v1/{site}/head``): a connected station sees a gap by it.

Real Mosquitto, the real gateway bridge (announcement outbox) and the real station link.
What is faked is the loss itself: a station store that drops live announcements, as a
broker or a bridge between brokers dropping them would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.store import StationStore
from gateway.db import Database
from gateway.schemas import RmaDraft
from gateway.services.rmas import create_rma
from gateway.settings import Settings
from protocol import (
    HeadRevision,
    RmaAnnouncement,
    RmaCancellation,
    SyncBatch,
    SyncRequest,
    Topics,
    decode,
    encode,
)
from tests.link.conftest import ann

pytestmark = pytest.mark.broker


class DroppingStore(StationStore):
    """A station store that loses every live announcement (catch-up batches still apply)."""

    dropped: list[tuple[str, int]]

    def apply_announcement(self, ann: RmaAnnouncement | RmaCancellation) -> bool:
        self.dropped.append((ann.number, ann.revision))
        return False


def draft(number: str) -> RmaDraft:
    return RmaDraft(
        number=number,
        order_ref=f"O-{number}",
        reason="damaged",
        resolution="refund",
        lines=[{"sku": "SKU-1", "quantity": 1}],
    )


def retained_head(port: int, site: str, wait: Any) -> HeadRevision:
    """Read the retained head revision of ``site`` with a fresh client."""
    got: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: got.append(bytes(msg.payload))
    client.connect("127.0.0.1", port)
    client.subscribe(Topics(site).head, qos=1)
    client.loop_start()
    try:
        wait(lambda: got, what="retained head")
    finally:
        client.loop_stop()
        client.disconnect()
    return decode(got[0], HeadRevision)


def test_station_that_missed_announcements_while_connected_catches_up_from_the_head(
    tmp_path: Any,
    gateway_db: Database,
    make_bridge: Callable[..., Any],
    make_link: Callable[..., Any],
    mqtt_broker: Any,
    site: str,
    wait: Any,
) -> None:
    bridge = make_bridge()
    store = DroppingStore(tmp_path / "st1.db")
    store.dropped = []
    link = make_link(store=store)
    link.start()
    wait(lambda: link.in_sync, what="in sync at revision 0")
    assert link.counters["sync_requests"] == 1

    with gateway_db.session() as s:
        for i in range(1, 4):
            create_rma(s, Settings(site=site), draft(f"H{i}"))

    wait(lambda: store.rma_count() == 3 and link.in_sync, what="caught up from the head")
    assert store.dropped == [("H1", 1), ("H2", 2), ("H3", 3)]  # every live one was lost
    assert store.rma_revision() == 3
    assert link.counters["connects"] == 1  # caught up without reconnecting
    assert link.counters["head_gaps"] >= 1
    assert link.counters["sync_requests"] == 1 + link.counters["head_gaps"]
    status = link.status()
    assert (status["head_revision"], status["sync_lag"], status["in_sync"]) == (3, 0, True)
    # the station can catch up by request before the bridge has retained head 3: wait for it
    head = HeadRevision(site=site, revision=3)
    wait(lambda: retained_head(mqtt_broker.port, site, wait) == head, what="retained head 3")
    assert bridge.status()["announcements_sent"] == 3


def test_station_that_got_every_announcement_asks_for_no_catch_up(
    tmp_path: Any,
    gateway_db: Database,
    make_bridge: Callable[..., Any],
    make_link: Callable[..., Any],
    site: str,
    wait: Any,
) -> None:
    bridge = make_bridge()
    link = make_link()
    link.start()
    wait(lambda: link.in_sync, what="in sync at revision 0")
    with gateway_db.session() as s:
        for i in range(1, 4):
            create_rma(s, Settings(site=site), draft(f"K{i}"))
    wait(lambda: link.store.rma_revision() == 3, what="3 announcements applied")
    wait(lambda: bridge.status()["heads_published"] >= 2, what="head after the batch")
    heads = bridge.status()["heads_published"]  # on connect (0), after each PUBACKed batch
    wait(lambda: link.counters["heads"] == heads, what="every head received")
    assert (link.counters["head_gaps"], link.counters["sync_requests"]) == (0, 1)
    assert link.head_revision == 3


def test_head_of_another_site_or_garbage_is_a_dead_letter(
    make_link: Callable[..., Any],
    mqtt_broker: Any,
    site: str,
    wait: Any,
) -> None:
    link = make_link()
    link.start()
    assert link.wait_connected(10)
    wait(lambda: link.counters["sync_requests"] == 1, what="first catch-up asked")
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", mqtt_broker.port)
    pub.loop_start()
    try:
        for payload in (encode(HeadRevision(site="elsewhere", revision=9)), b'{"kind":"head"}'):
            pub.publish(Topics(site).head, payload, qos=1).wait_for_publish(5)
        wait(lambda: link.counters["dead_letters"] == 2, what="two dead letters")
    finally:
        pub.loop_stop()
        pub.disconnect()
    assert (link.head_revision, link.counters["head_gaps"]) == (0, 0)


def test_head_arriving_during_a_catch_up_is_checked_when_the_catch_up_ends(
    make_link: Callable[..., Any],
    make_probe: Callable[..., Any],
    site: str,
    wait: Any,
) -> None:
    """The reply to a catch-up can predate a head that came meanwhile: ask again at once."""
    gateway = make_probe()  # plays the gateway, so the order of messages is the test's
    topics = Topics(site, "st1")
    gateway.subscribe(topics.sync_request)
    link = make_link(sync_retry_s=3600.0)  # no retry timer: only the head can ask again
    link.start()

    def requests() -> list[SyncRequest]:
        return [decode(p, SyncRequest) for p in gateway.payloads(topics.sync_request)]

    wait(lambda: len(requests()) == 1, what="the first catch-up request")
    gateway.publish(Topics(site).head, encode(HeadRevision(site=site, revision=2)))
    wait(lambda: link.counters["heads"] == 1, what="head received during the catch-up")
    assert len(requests()) == 1  # a catch-up is pending: not asked twice
    first = SyncBatch(
        request_id=requests()[0].request_id, announcements=(ann("R1", 1),), head_revision=1
    )
    gateway.publish(topics.sync_response, encode(first))
    wait(lambda: len(requests()) == 2, what="asked again: the head is ahead of the reply")
    assert requests()[1].after_revision == 1
    assert link.in_sync is False
    second = SyncBatch(
        request_id=requests()[1].request_id, announcements=(ann("R2", 2),), head_revision=2
    )
    gateway.publish(topics.sync_response, encode(second))
    wait(lambda: link.in_sync, what="in sync at the head")
    assert (link.store.rma_revision(), link.counters["head_gaps"], len(requests())) == (2, 1, 2)
