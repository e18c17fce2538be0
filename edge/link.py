"""The station's MQTT link: the only edge module that touches paho-mqtt.

- Persistent session (clean_session=False), QoS 1 everywhere, last will ``offline``
  (retained) and a retained birth/status message.
- RMA announcements are applied to the cache as they arrive; on every (re)connect the link
  asks the gateway for everything after its highest applied revision (catch-up).
- Events go into the store's outbox first and leave it only when the broker acknowledged
  them (PUBACK); what is unacknowledged is sent again after a reconnect or a restart.
- Every paho callback is guarded: a malformed payload is a dead letter, never a crash.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.store import StationStore
from protocol import (
    ProtocolError,
    RmaAnnouncement,
    StationStatus,
    SyncBatch,
    SyncRequest,
    Topics,
    decode,
    encode,
)

log = logging.getLogger(__name__)

RESEND_AFTER_S = 10.0


def _guarded(fn: Callable[..., None]) -> Callable[..., None]:
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            log.exception("MQTT callback %s failed", fn.__name__)

    wrapper.__name__ = fn.__name__
    return wrapper


class StationLink:
    """MQTT link of one station.

    Args:
        site: site id (topic segment).
        station: station id (topic segment).
        host, port: the site broker.
        store: the station store (RMA cache, outbox, dead letters).
        status_provider: returns the JSON-able ``details`` for the status message.
        software_version: reported in the birth message.
        keepalive_s: MQTT keepalive, s.
        status_interval_s: how often the retained status is refreshed, s.
        username, password: broker credentials, optional.
    """

    def __init__(
        self,
        *,
        site: str,
        station: str,
        host: str,
        port: int,
        store: StationStore,
        status_provider: Callable[[], dict[str, object]] = dict,
        software_version: str = "",
        keepalive_s: int = 15,
        status_interval_s: float = 5.0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.topics = Topics(site, station)
        self.site_topics = Topics(site)
        self.station = station
        self.host, self.port = host, port
        self.store = store
        self.status_provider = status_provider
        self.software_version = software_version
        self.keepalive_s = keepalive_s
        self.status_interval_s = status_interval_s
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"station-{site}-{station}",
            clean_session=False,
        )
        if username:
            self._client.username_pw_set(username, password)
        self._client.will_set(
            self.topics.status,
            encode(StationStatus(station=station, state="offline")),
            qos=1,
            retain=True,
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = _guarded(self._on_connect)
        self._client.on_disconnect = _guarded(self._on_disconnect)
        self._client.on_message = _guarded(self._on_message)
        self._client.on_publish = _guarded(self._on_publish)
        self._acked: deque[int] = deque()
        self._inflight: dict[int, tuple[int, float]] = {}  # mid -> (outbox id, sent at)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self._sync_wanted = False
        self._sync_request_id = ""
        self.in_sync = False
        self.head_revision = 0
        self.counters = {"announcements": 0, "dead_letters": 0, "published": 0, "acked": 0}

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background and start the network and outbox threads."""
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive_s)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="link-outbox", daemon=True)
        self._thread.start()

    def stop(self, publish_offline: bool = True) -> None:
        """Flush what can be flushed, publish ``offline`` (retained) and disconnect."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if publish_offline and self._connected.is_set():
            info = self._client.publish(
                self.topics.status,
                encode(StationStatus(station=self.station, state="offline")),
                qos=1,
                retain=True,
            )
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                log.warning("offline status not acknowledged before disconnect")
        self._client.disconnect()
        self._client.loop_stop()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected (True) or ``timeout_s`` passed (False)."""
        return self._connected.wait(timeout_s)

    # -- API ------------------------------------------------------------------------
    def publish_event(self, payload: bytes) -> int:
        """Queue an event for the gateway: persisted in the outbox first; returns its id."""
        item_id = self.store.outbox_put(self.topics.event, payload)
        self._wake.set()
        return item_id

    def status(self) -> dict[str, object]:
        """JSON-able link state."""
        return {
            "connected": self._connected.is_set(),
            "in_sync": self.in_sync,
            "rma_revision": self.store.rma_revision(),
            "head_revision": self.head_revision,
            "outbox_depth": self.store.outbox_depth(),
            "inflight": len(self._inflight),
            **self.counters,
        }

    # -- paho callbacks (network thread) --------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused connection: %s", reason_code)
            return
        log.info("connected to %s:%s", self.host, self.port)
        client.subscribe(
            [(self.site_topics.rma, 1), (self.topics.sync_response, 1)],
        )
        self._connected.set()
        self.in_sync = False
        self._sync_wanted = True
        self._wake.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("disconnected from broker: %s (reconnecting)", reason_code)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, props: Any
    ) -> None:
        # Called with paho's internal lock held: record only, reconcile in our thread.
        self._acked.append(mid)
        self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if msg.topic == self.site_topics.rma:
                self._apply(decode(bytes(msg.payload), RmaAnnouncement))
            elif msg.topic == self.topics.sync_response:
                self._apply_batch(decode(bytes(msg.payload), SyncBatch))
            else:
                raise ProtocolError(f"unexpected topic {msg.topic}")
        except ProtocolError as exc:
            self.counters["dead_letters"] += 1
            self.store.dead_letter(msg.topic, bytes(msg.payload), str(exc))

    def _apply(self, ann: RmaAnnouncement) -> None:
        self.counters["announcements"] += 1
        self.store.apply_announcement(ann)
        self.head_revision = max(self.head_revision, ann.revision)

    def _apply_batch(self, batch: SyncBatch) -> None:
        for ann in batch.announcements:
            self._apply(ann)
        self.head_revision = max(self.head_revision, batch.head_revision)
        if batch.last and batch.request_id == self._sync_request_id:
            self.in_sync = self.store.rma_revision() >= batch.head_revision
            log.info("catch-up done at revision %d", self.store.rma_revision())

    # -- outbox thread ----------------------------------------------------------------
    def _run(self) -> None:
        next_status = 0.0
        while not self._stop.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            try:
                self._reconcile_acks()
                if not self._connected.is_set():
                    continue
                if self._sync_wanted:
                    self._sync_wanted = False
                    self._request_sync()
                    next_status = 0.0
                if time.monotonic() >= next_status:
                    self._publish_status()
                    next_status = time.monotonic() + self.status_interval_s
                self._flush()
            except Exception:
                log.exception("link outbox loop error")
                time.sleep(0.5)

    def _reconcile_acks(self) -> None:
        while self._acked:
            mid = self._acked.popleft()
            entry = self._inflight.pop(mid, None)
            if entry is not None:
                self.store.outbox_ack(entry[0])
                self.counters["acked"] += 1

    def _flush(self) -> None:
        now = time.monotonic()
        waiting = {oid for oid, sent in self._inflight.values() if now - sent < RESEND_AFTER_S}
        for item in self.store.outbox_pending(limit=200):
            if item.id in waiting:
                continue
            for mid, (oid, _) in list(self._inflight.items()):
                if oid == item.id:
                    del self._inflight[mid]
            info = self._client.publish(item.topic, item.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            self._inflight[info.mid] = (item.id, now)
            self.counters["published"] += 1

    def _request_sync(self) -> None:
        self._sync_request_id = uuid.uuid4().hex
        req = SyncRequest(
            station=self.station,
            after_revision=self.store.rma_revision(),
            request_id=self._sync_request_id,
        )
        self._client.publish(self.topics.sync_request, encode(req), qos=1)

    def _publish_status(self) -> None:
        details = self.status_provider()
        status = StationStatus(
            station=self.station,
            state="degraded" if details.get("degraded") else "online",
            software_version=self.software_version,
            rma_revision=self.store.rma_revision(),
            details=details,
        )
        self._client.publish(self.topics.status, encode(status), qos=1, retain=True)
