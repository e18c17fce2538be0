"""The station's MQTT link: the only edge module that touches paho-mqtt.

- Persistent session (clean_session=False), QoS 1 everywhere, last will ``offline``
  (retained) and a retained birth/status message with software version and config hash.
- RMA announcements and cancellations are applied to the cache as they arrive
  (idempotent by (RMA, revision)); on every (re)connect the link asks the gateway for
  everything after its highest applied revision and reports itself in sync only when the
  last catch-up batch is applied. An unanswered catch-up is asked again.
- The gateway publishes the site's head revision (retained ``rs/v1/{site}/head``) after
  each announcement batch: a connected station whose cache holds less missed
  announcements while connected and asks for catch-up at once (``head_gaps`` counts it).
- Events (and command replies) go into the store's outbox first and leave it only when the
  broker acknowledged them (PUBACK); what is unacknowledged is sent again after a
  reconnect or a restart of the station process.
- Commands run in the link's own thread, never in paho's; a retained or expired command is
  not executed (dead letter). Replies: ``accepted``, then ``done`` or ``failed``.
- Every paho callback is guarded: a malformed payload is a dead letter, never a crash. The
  link's thread supervises paho's network thread and restarts it should it die.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.store import StationStore
from protocol import (
    Command,
    CommandName,
    CommandReply,
    CommandState,
    HeadRevision,
    LinkStatus,
    ProtocolError,
    StationHealth,
    StationStatus,
    SyncBatch,
    SyncRequest,
    Telemetry,
    Topics,
    UnitReceipt,
    decode,
    decode_rma_change,
    encode,
)

if TYPE_CHECKING:
    from edge.config import StationConfig

log = logging.getLogger(__name__)

RESEND_AFTER_S = 10.0
SYNC_RETRY_S = 15.0

CommandHandler = Callable[[Command], Mapping[str, str | int | float | bool | None]]
"""Runs a command in the link's thread; returns the reply's ``result``; raises to fail."""


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
        status_provider: returns the station's typed health for the status message
            (:class:`~protocol.StationHealth`; the link fills in its own ``link``).
        software_version: reported in the birth message.
        config_hash: hash of the station config, reported in the birth message.
        keepalive_s: MQTT keepalive, s.
        status_interval_s: how often the retained status is refreshed, s.
        telemetry_interval_s: how often telemetry is published (QoS 0), s; 0 disables.
        username, password: broker credentials, optional.
        tls_ca: CA certificate file; when given the link uses TLS (server verified).
        tls_cert, tls_key: client certificate and key for mutual TLS, optional.
        command_handlers: handlers by command name, besides the built-in ``ping``,
            ``resync`` and ``publish_status``; a command without a handler fails.
        on_policy: applies a disposition policy payload from ``rs/v1/{site}/policy``
            (retained); a ValueError it raises puts the payload in the dead letters and the
            current policy stays.
        sync_retry_s: ask for catch-up again when no last batch came within this time, s.
    """

    def __init__(
        self,
        *,
        site: str,
        station: str,
        host: str,
        port: int,
        store: StationStore,
        status_provider: Callable[[], StationHealth] = StationHealth,
        software_version: str = "",
        config_hash: str = "",
        keepalive_s: int = 15,
        status_interval_s: float = 5.0,
        telemetry_interval_s: float = 10.0,
        username: str | None = None,
        password: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        command_handlers: Mapping[CommandName, CommandHandler] | None = None,
        on_policy: Callable[[bytes], object] | None = None,
        sync_retry_s: float = SYNC_RETRY_S,
    ) -> None:
        self.topics = Topics(site, station)
        self.site_topics = Topics(site)
        self.station = station
        self.host, self.port = host, port
        self.store = store
        self.status_provider = status_provider
        self.software_version = software_version
        self.config_hash = config_hash
        self.keepalive_s = keepalive_s
        self.status_interval_s = status_interval_s
        self.telemetry_interval_s = telemetry_interval_s
        self.sync_retry_s = sync_retry_s
        self._handlers: dict[CommandName, CommandHandler] = {
            CommandName.PING: lambda cmd: {"pong": True},
            CommandName.RESYNC: self._cmd_resync,
            CommandName.PUBLISH_STATUS: self._cmd_publish_status,
            **(command_handlers or {}),
        }
        self._on_policy = on_policy
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"station-{site}-{station}",
            clean_session=False,
        )
        if username:
            self._client.username_pw_set(username, password)
        if tls_ca:
            self._client.tls_set(
                ca_certs=tls_ca,
                certfile=tls_cert,
                keyfile=tls_key,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
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
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self._sync_wanted = False
        self._sync_request_id = ""
        self._sync_sent_at = 0.0
        self._status_now = False
        self.in_sync = False
        self.head_revision = 0
        #: the highest head revision the gateway published (``rs/v1/{site}/head``): what
        #: the cache must reach (unlike a catch-up's head, never an unannounced revision)
        self._announced_head = 0
        self.counters = {
            "connects": 0,
            "announcements": 0,
            "announcements_applied": 0,
            "dead_letters": 0,
            "published": 0,
            "acked": 0,
            "sync_requests": 0,
            "heads": 0,
            "head_gaps": 0,
            "commands": 0,
            "loop_restarts": 0,
        }

    @classmethod
    def for_station(
        cls,
        config: StationConfig,
        store: StationStore,
        *,
        software_version: str,
        status_provider: Callable[[], StationHealth],
        on_policy: Callable[[bytes], object],
        command_handlers: Mapping[CommandName, CommandHandler],
    ) -> StationLink:
        """The link of the station ``config`` describes (``[station]`` and ``[mqtt]``)."""
        section = config.mqtt
        ca, cert, key = (
            str(path) if path else None
            for path in (section.tls_ca, section.tls_cert, section.tls_key)
        )
        return cls(
            site=config.station.site,
            station=config.station.id,
            host=section.host,
            port=section.port,
            store=store,
            status_provider=status_provider,
            software_version=software_version,
            config_hash=config.config_hash,
            keepalive_s=section.keepalive_s,
            status_interval_s=section.status_interval_s,
            username=section.username,
            password=section.password,
            tls_ca=ca,
            tls_cert=cert,
            tls_key=key,
            on_policy=on_policy,
            command_handlers=command_handlers,
        )

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background and start the network and outbox threads."""
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive_s)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="link-outbox", daemon=True)
        self._thread.start()

    def stop(self, publish_offline: bool = True) -> None:
        """Stop the link thread, publish ``offline`` (retained) and disconnect.

        Events still in the outbox stay there for the next start.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if publish_offline and self._connected.is_set():
            info = self._client.publish(
                self.topics.status,
                encode(
                    StationStatus(
                        station=self.station,
                        state="offline",
                        software_version=self.software_version,
                        config_hash=self.config_hash,
                        rma_revision=self.store.rma_revision(),
                    )
                ),
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
    def publish_event(
        self,
        payload: bytes,
        rma_number: str | None = None,
        receipts: Sequence[UnitReceipt] = (),
    ) -> int:
        """Queue an event for the gateway: persisted in the outbox first; returns its id.

        ``receipts``: the RMA units the parcel claimed (``ParcelExited.units``), written
        with the outbox row in one transaction (``StationStore.outbox_put``).
        """
        item_id = self.store.outbox_put(self.topics.event, payload, rma_number, receipts)
        self._wake.set()
        return item_id

    def publish_photo(self, payload: bytes) -> int:
        """Queue a parcel photo (``PhotoUpload``) for the gateway, like an event; its id."""
        item_id = self.store.outbox_put(self.topics.photo, payload)
        self._wake.set()
        return item_id

    def request_status(self) -> None:
        """Publish the retained status now rather than at the next interval (thread-safe).

        For changes a lead must see at once: an alarm raised or cleared, the belt stopped.
        """
        self._status_now = True
        self._wake.set()

    def status(self) -> dict[str, object]:
        """JSON-able link state.

        ``sync_lag`` is the number of site revisions known to exist (``head_revision``,
        from the gateway) that the cache has not applied yet.
        """
        applied = self.store.rma_revision()
        return {
            "connected": self._connected.is_set(),
            "in_sync": self.in_sync,
            "rma_revision": applied,
            "head_revision": self.head_revision,
            "sync_lag": max(0, self.head_revision - applied),
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
        self.counters["connects"] += 1
        client.subscribe(
            [
                (self.site_topics.rma, 1),
                (self.topics.sync_response, 1),
                (self.topics.command, 1),
                (self.site_topics.policy, 1),
                (self.site_topics.head, 1),
            ],
        )
        self._connected.set()
        self.in_sync = False
        self._sync_wanted = True
        self._wake.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        self._connected.clear()
        self.in_sync = False
        if not self._stop.is_set():
            log.warning("disconnected from broker: %s (reconnecting)", reason_code)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, props: Any
    ) -> None:
        # Called with paho's internal lock held: record only, reconcile in our thread.
        self._acked.append(mid)
        self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        try:
            if msg.topic == self.site_topics.rma:
                self._apply(decode_rma_change(payload))
            elif msg.topic == self.topics.sync_response:
                self._apply_batch(decode(payload, SyncBatch))
            elif msg.topic == self.topics.command:
                self._accept_command(payload, retained=bool(msg.retain))
            elif msg.topic == self.site_topics.policy:
                self._apply_policy(payload)
            elif msg.topic == self.site_topics.head:
                self._apply_head(payload)
            else:
                raise ProtocolError(f"unexpected topic {msg.topic}")
        except ProtocolError as exc:
            self.counters["dead_letters"] += 1
            self.store.dead_letter(msg.topic, payload, str(exc))
        except Exception as exc:  # any failure to apply is a dead letter, with its error
            # A message that passed decoding but could not be applied (e.g. a value the
            # store cannot hold) is kept with the error, never lost in a log line only.
            log.exception("applying a message from %s failed", msg.topic)
            self.counters["dead_letters"] += 1
            self.store.dead_letter(msg.topic, payload, f"{type(exc).__name__}: {exc}")

    def _apply_policy(self, payload: bytes) -> None:
        if not payload:  # a retained policy being cleared: keep the cached one
            return
        if self._on_policy is None:
            raise ProtocolError("this station takes no policies")
        try:
            self._on_policy(payload)
        except ValueError as exc:  # ProtocolError included: refused, the old one stays
            raise ProtocolError(f"policy refused: {exc}") from exc
        self.counters["policies"] = self.counters.get("policies", 0) + 1

    def _apply(self, change: Any) -> None:
        self.counters["announcements"] += 1
        if self.store.apply_announcement(change):
            self.counters["announcements_applied"] += 1
        self.head_revision = max(self.head_revision, change.revision)

    def _apply_head(self, payload: bytes) -> None:
        """Compare the site's head revision with the cache; behind: ask for catch-up.

        Messages arrive in order, so the announcements published before the head were
        applied already: a cache still below it missed some. A catch-up already asked and
        not yet answered is not asked again (it reaches the head, or is retried after
        ``sync_retry_s``).
        """
        if not payload:  # a retained head being cleared
            return
        head = decode(payload, HeadRevision)
        if head.site != self.site_topics.site:
            raise ProtocolError(f"head of site {head.site!r} on {self.site_topics.site!r}'s topic")
        self.counters["heads"] += 1
        self.head_revision = max(self.head_revision, head.revision)
        self._announced_head = max(self._announced_head, head.revision)
        if self.store.rma_revision() >= head.revision:
            return
        waiting = not self.in_sync and time.monotonic() - self._sync_sent_at <= self.sync_retry_s
        if self._sync_wanted or waiting:  # the catch-up's last batch checks the head again
            return
        log.warning(
            "behind the head revision: applied=%d head=%d, catching up",
            self.store.rma_revision(),
            head.revision,
        )
        self.counters["head_gaps"] += 1
        self.in_sync = False
        self._sync_wanted = True
        self._wake.set()

    def _apply_batch(self, batch: SyncBatch) -> None:
        self.counters["announcements"] += len(batch.announcements)
        self.counters["announcements_applied"] += self.store.apply_changes(batch.announcements)
        self.head_revision = max(self.head_revision, batch.head_revision)
        if batch.last and batch.request_id == self._sync_request_id:
            applied = self.store.rma_revision()
            self.in_sync = applied >= batch.head_revision
            log.info("catch-up done at revision %d", applied)
            if applied < self._announced_head:  # a head came meanwhile: the reply predates it
                self.in_sync = False
                self.counters["head_gaps"] += 1
                self._sync_wanted = True
                self._wake.set()

    def _accept_command(self, payload: bytes, *, retained: bool) -> None:
        if retained:
            # C6: a command left retained on the broker is stale by definition.
            raise ProtocolError("retained command not executed")
        cmd = decode(payload, Command)
        age_s = (datetime.now(UTC) - cmd.issued_at).total_seconds()
        if age_s > cmd.expires_in_s:
            raise ProtocolError(f"command {cmd.request_id} expired {age_s:.0f} s after issue")
        self._commands.put(cmd)
        self._wake.set()

    # -- link thread ------------------------------------------------------------------
    def _run(self) -> None:
        next_status = 0.0
        next_telemetry = time.monotonic() + self.telemetry_interval_s
        while not self._stop.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            try:
                self._supervise()
                self._reconcile_acks()
                if not self._connected.is_set():
                    continue
                now = time.monotonic()
                if self._sync_wanted or (
                    not self.in_sync and now - self._sync_sent_at > self.sync_retry_s
                ):
                    self._sync_wanted = False
                    self._request_sync()
                    next_status = 0.0
                if now >= next_status or self._status_now:
                    self._status_now = False
                    self._publish_status()
                    next_status = now + self.status_interval_s
                if self.telemetry_interval_s > 0 and now >= next_telemetry:
                    self._publish_telemetry()
                    next_telemetry = now + self.telemetry_interval_s
                self._run_commands()
                self._flush()
            except Exception:
                log.exception("link loop error")
                time.sleep(0.5)

    def _supervise(self) -> None:
        # paho clears its private ``_thread`` when its loop thread ends; until stop() that
        # only happens when an exception escaped into paho's loop.
        thread = getattr(self._client, "_thread", None)
        if self._stop.is_set() or (thread is not None and thread.is_alive()):
            return
        log.error("paho network thread died: restarting it")
        self.counters["loop_restarts"] += 1
        self._client._thread = None  # paho refuses loop_start while it holds a thread
        self._client.loop_start()

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
        self._sync_sent_at = time.monotonic()
        self.counters["sync_requests"] += 1
        req = SyncRequest(
            station=self.station,
            after_revision=self.store.rma_revision(),
            request_id=self._sync_request_id,
        )
        self._client.publish(self.topics.sync_request, encode(req), qos=1)

    def link_status(self) -> LinkStatus:
        """The typed link state the status message carries (see :meth:`status`)."""
        applied = self.store.rma_revision()
        return LinkStatus(
            connected=self._connected.is_set(),
            in_sync=self.in_sync,
            rma_revision=applied,
            head_revision=self.head_revision,
            sync_lag=max(0, self.head_revision - applied),
            outbox_depth=self.store.outbox_depth(),
            inflight=len(self._inflight),
            counters=dict(self.counters),
        )

    def _publish_status(self) -> None:
        health = self.status_provider().model_copy(update={"link": self.link_status()})
        status = StationStatus(
            station=self.station,
            state="degraded" if health.degraded else "online",
            software_version=self.software_version,
            config_hash=self.config_hash,
            rma_revision=self.store.rma_revision(),
            health=health,
        )
        self._client.publish(self.topics.status, encode(status), qos=1, retain=True)

    def _publish_telemetry(self) -> None:
        metrics = {
            k: float(v) for k, v in self.status().items() if isinstance(v, int | float | bool)
        }
        msg = Telemetry(station=self.station, at=datetime.now(UTC), metrics=metrics)
        self._client.publish(self.topics.telemetry, encode(msg), qos=0)

    # -- commands (link thread) -------------------------------------------------------
    def _run_commands(self) -> None:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            self.counters["commands"] += 1
            self._reply(cmd, CommandState.ACCEPTED)
            handler = self._handlers.get(cmd.command)
            if handler is None:
                self._reply(cmd, CommandState.FAILED, "not supported by this station")
                continue
            try:
                result = dict(handler(cmd))
            except Exception as exc:
                log.warning("command %s %s failed: %s", cmd.command, cmd.request_id, exc)
                self._reply(cmd, CommandState.FAILED, str(exc) or type(exc).__name__)
            else:
                self._reply(cmd, CommandState.DONE, result=result)

    def _reply(
        self,
        cmd: Command,
        state: CommandState,
        detail: str = "",
        result: dict[str, str | int | float | bool | None] | None = None,
    ) -> None:
        reply = CommandReply(
            request_id=cmd.request_id,
            station=self.station,
            command=cmd.command,
            state=state,
            detail=detail,
            result=result or {},
        )
        self.store.outbox_put(self.topics.command_reply, encode(reply))

    def _cmd_resync(self, cmd: Command) -> dict[str, str | int | float | bool | None]:
        self.in_sync = False
        self._request_sync()
        return {"after_revision": self.store.rma_revision()}

    def _cmd_publish_status(self, cmd: Command) -> dict[str, str | int | float | bool | None]:
        self.request_status()
        return {}
