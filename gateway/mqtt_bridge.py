"""The gateway's MQTT link: the only gateway module that imports paho.

Subscribes to every station of the site (status, parcel events, catch-up requests,
command replies, telemetry), records what arrives, answers catch-up requests, and publishes
RMA announcements, cancellations and commands. Payloads that are not valid protocol
messages go to the dead-letter table.

Nothing is lost on a database failure: QoS 1 messages are acknowledged by hand
(``manual_ack``), and only after their effect is committed. paho's network thread only
queues what arrives; one ingest thread handles the queue in arrival order (so PUBACKs go
out in order), retrying with backoff while the database fails (transient errors only: a
message whose handling fails for any other reason is poison, dead-lettered with its error,
so it cannot block the messages behind it). A message not yet
acknowledged when the gateway stops is redelivered by the broker to the persistent session.

Stations are not trusted because their credential is valid (issue 15): every parcel event
is screened against what its station could know before it is ingested
(:mod:`gateway.security.event_checks`; a refused one is dead-lettered with an alarm),
what is kept of untrusted input is bounded per station (:mod:`gateway.services.quotas`),
and catch-up requests are answered by their own thread at a rate per station
(:mod:`gateway.services.catch_up`), never on the ingest thread.

Batches: the ingest thread takes what is queued (up to ``batch_max`` messages, waiting at
most ``batch_wait_ms`` for more) and stores all its parcel events in one transaction
(:func:`gateway.services.events.ingest_events`: set-based, the batch's RMAs read once and
its rows written one statement per table, credits in the same transaction; a batch that
fails so is done again event by event, a savepoint each), after screening them all
against the RMAs read at once (:func:`gateway.services.events.screen_events`), then
handles the other messages of the batch one by one, then sends the PUBACKs of the whole
batch in arrival order, so none goes out before its commit. An event that fails in its
savepoint is dead-lettered (poison) and one whose RMA kept changing (stale) is ingested
again on its own after the batch; neither holds the others back. An event of a parcel
already recorded under another event id (a replay, or another replica storing the first
meanwhile) is refused by the screen (``parcel_reported_again``: dead letter and alarm).

Announcements: every RMA change writes its announcement to the announcement outbox in the
change's transaction (:func:`gateway.services.rma_writer.apply_change`). An announce
thread publishes the pending rows in order (QoS 1) and marks each sent when the broker's
PUBACK for it comes back, so an announcement is never lost between a commit and a crash:
after a restart, or a row whose PUBACK never came within :data:`INFLIGHT_TIMEOUT_S`, it is
published again (stations apply announcements by revision, so a repeat changes nothing).
After each batch the broker acknowledged, and after every (re)connect, the announce thread
publishes the site's head revision (the highest announced revision, :class:`HeadRevision`,
retained on ``rs/v1/{site}/head``): a station that is connected but missed announcements
(a broker that dropped them, a bridge outage between brokers) sees that it holds less and
asks for catch-up, without waiting for a reconnect.

Sites: one bridge serves every site of the gateway (``sites``): it subscribes to the
station topics of each (``rs/v1/{site}/+/...``), takes a message's site from its topic
(a topic of a site it does not serve is dead-lettered), stores events with that site and
refuses an event whose RMA is another site's (:data:`gateway.security.event_checks.SITE_RULE`),
publishes each outbox row on its RMA's site's ``rma`` topic, keeps one retained head
revision per site, and answers catch-up requests per site (one
:class:`~gateway.services.catch_up.CatchUpServer` each, over that site's RMAs only).

Replicas: with ``shared_group`` set, the bridge speaks MQTT 5 and subscribes to events and
catch-up requests as ``$share/{group}/...``, so several gateways share the ingest (each
needs its own ``client_id``); statuses are subscribed by every replica (retained messages
are not delivered to shared subscriptions, and a status upsert is idempotent).
"""

from __future__ import annotations

import functools
import logging
import math
import queue
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.models import AnnouncementRow, utcnow
from gateway.services.alarms import raise_refused_event
from gateway.services.catch_up import SYNC_RATE, CatchUpServer
from gateway.services.commands import record_reply
from gateway.services.dead_letters import record_dead_letter
from gateway.services.events import (
    MAX_BATCH,
    BatchResult,
    Outcome,
    ingest_event,
    ingest_events,
    screen_event,
    screen_events,
)
from gateway.services.photos import PhotoStore
from gateway.services.quotas import DROPPED, MAX_REPLIES_PER_REQUEST, StationQuotas
from gateway.services.rma_writer import StaleRma
from gateway.services.stations import StationOfAnotherSite, upsert_station
from protocol import (
    Command,
    CommandName,
    CommandReply,
    HeadRevision,
    ParcelEvent,
    PhotoUpload,
    ProtocolError,
    RmaAnnouncement,
    RmaCancellation,
    StationStatus,
    SyncRequest,
    Telemetry,
    Topics,
    decode,
    encode,
    shared,
)

log = logging.getLogger(__name__)

QOS = 1
SYNC_BATCH_SIZE = 200
SESSION_EXPIRY_S = 7 * 24 * 3600  # MQTT 5 persistent session lifetime
RETRY_MAX_S = 5.0
ANNOUNCE_POLL_S = 0.1  # how often the announce thread looks at the outbox
ANNOUNCE_BATCH = 200  # rows published per look, at most
INFLIGHT_TIMEOUT_S = 30.0  # a row whose PUBACK did not come by then is published again
BATCH_MAX = 500  # messages per ingest batch, at most
BATCH_WAIT_MS = 10.0  # how long a batch waits for more messages after its first, at most
LATENCY_WINDOW = 10_000  # commit latencies kept for the percentiles of status()
BEHIND_S = 0.5  # the ingest is behind while an event waits longer than this for its commit


def is_transient(exc: BaseException) -> bool:
    """True for a failure worth retrying: the database or the disk is unavailable.

    SQLAlchemy ``OperationalError`` / ``InterfaceError`` / pool ``TimeoutError``, a DBAPI
    error that invalidated the connection, and ``OSError`` (connection refused, disk full)
    are transient, and so is :class:`StaleRma` (an RMA that other writers kept changing
    under the ingestion: the next attempt sees their result). Anything else
    (``ValueError``, ``OverflowError``, a ``DataError`` or ``IntegrityError`` from the
    values themselves...) fails the same way every time: the
    message is poison and is dead-lettered instead of blocking the ordered ingest.
    """
    if isinstance(
        exc,
        sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError | OSError | StaleRma,
    ):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


KEEP_REPLIES = 1000
F = TypeVar("F", bound=Callable[..., None])


def _percentile(sorted_values: list[float], pct: float) -> float | None:
    """The ``pct`` percentile (nearest rank) of ascending values; None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return round(sorted_values[rank - 1], 3)


def _guarded(fn: F) -> F:
    """Wrap a paho callback so an exception is logged and counted, never raised."""

    @functools.wraps(fn)
    def wrapper(self: MqttBridge, *args: Any, **kwargs: Any) -> None:
        try:
            fn(self, *args, **kwargs)
        except Exception as exc:
            log.exception("mqtt callback %s failed", fn.__name__)
            self._note_error(f"{fn.__name__}: {exc!r}")

    return cast(F, wrapper)


class MqttBridge:
    """Connects the gateway to the site's broker.

    Args:
        host: broker host name or address.
        port: broker TCP port.
        site: the default site id (its topics ``rs/v1/{site}/...`` are served; commands
            and the policy go there when no site is named).
        sessions: database session factory used from the MQTT thread.
        client_id: MQTT client id; default ``gateway-{site}``. The session is persistent
            (clean_session=False), so station events published while the gateway is down
            are queued by the broker and ingested when it is back.
        keepalive_s: MQTT keep-alive in seconds.
        sync_batch_size: announcements per catch-up batch (at most).
        shared_group: MQTT 5 shared-subscription group for events and catch-up requests
            (e.g. ``"gateways"``); None: MQTT 3.1.1, plain subscriptions (one gateway).
        username, password: broker credentials, optional.
        tls_ca: CA certificate file; when given, the bridge connects with TLS.
        photos: where parcel photos from the stations' photo topics are stored (None:
            photos are dead-lettered).
        sync_rate: catch-up requests served per station, a ``limits`` rate string; they
            are answered off the ingest thread (:mod:`gateway.services.catch_up`).
        quotas: the per-station bounds of what the bridge keeps of untrusted input
            (dead letters, one-off alarms; :mod:`gateway.services.quotas`).
        announce_poll_s: seconds between two looks at the announcement outbox.
        batch_max: messages ingested per transaction, at most (1 ..
            :data:`gateway.services.events.MAX_BATCH`).
        batch_wait_ms: how long a batch waits for more messages after its first, ms.
        is_leader: whether this replica runs the once-per-cluster jobs (here: publishing
            the announcement outbox); None: always (a single gateway).
        sites: every site served (``site`` first whether listed or not); default just
            ``site``.

    Raises:
        ValueError: when ``sync_batch_size`` < 1, ``announce_poll_s`` <= 0, ``batch_max``
            out of range, ``batch_wait_ms`` < 0, or ``site`` is not a site id
            (:data:`protocol.messages.SITE_PATTERN`).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        site: str,
        sessions: sessionmaker[Session],
        client_id: str | None = None,
        keepalive_s: int = 30,
        sync_batch_size: int = SYNC_BATCH_SIZE,
        shared_group: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls_ca: str | None = None,
        photos: PhotoStore | None = None,
        quotas: StationQuotas | None = None,
        sync_rate: str = SYNC_RATE,
        announce_poll_s: float = ANNOUNCE_POLL_S,
        batch_max: int = BATCH_MAX,
        batch_wait_ms: float = BATCH_WAIT_MS,
        is_leader: Callable[[], bool] | None = None,
        sites: Sequence[str] | None = None,
    ) -> None:
        if sync_batch_size < 1:
            raise ValueError("sync_batch_size must be >= 1")
        if not 1 <= batch_max <= MAX_BATCH:
            raise ValueError(f"batch_max must be in 1..{MAX_BATCH}")
        if not batch_wait_ms >= 0:
            raise ValueError("batch_wait_ms must be >= 0")
        self._batch_max = batch_max
        self._batch_wait_s = batch_wait_ms / 1000
        self._is_leader = is_leader
        #: ingest thread: arrival-to-commit latencies of acknowledged messages, ms
        self._latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        #: every site served, the default first
        self.sites: tuple[str, ...] = tuple(dict.fromkeys([site, *(sites or ())]))
        for one in self.sites:
            HeadRevision(site=one, revision=0)  # a site id the head revision can carry
        if not announce_poll_s > 0:
            raise ValueError("announce_poll_s must be > 0")
        self._announce_poll_s = announce_poll_s
        self._announcer: threading.Thread | None = None
        #: PUBACKed message ids, from paho's network thread (never blocks it)
        self._pubacks: queue.Queue[int] = queue.Queue()
        #: announce thread only: message id -> (outbox row id, site, revision, monotonic time)
        self._inflight: dict[int, tuple[int, str, int, float]] = {}
        #: announce thread only: per site, the head revision last published in this
        #: connection (absent: not yet, e.g. after a reconnect: read from the database)
        self._head_published: dict[str, int] = {}
        self._head_due = threading.Event()
        self.host = host
        self.port = port
        self.site = site
        self.client_id = client_id or f"gateway-{site}"
        self._sessions = sessions
        self._photos = photos
        self._quotas = quotas or StationQuotas()
        self._keepalive_s = keepalive_s
        self._batch = sync_batch_size
        #: one catch-up server per site; ``catch_up`` is the default site's
        self.catch_ups = {
            one: CatchUpServer(
                one,
                sessions,
                functools.partial(self._publish_sync, one),
                batch_size=sync_batch_size,
                rate=sync_rate,
            )
            for one in self.sites
        }
        self.catch_up = self.catch_ups[site]
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._subscribe_mid: int | None = None
        self._started = False
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "connects",
                "disconnects",
                "messages_in",
                "events_ingested",
                "events_duplicate",
                "events_refused",
                "events_stale",
                "batches",
                "photos_stored",
                "photos_duplicate",
                "statuses",
                "sync_requests",
                "sync_batches",
                "rma_published",
                "announcements_sent",
                "heads_published",
                "dead_letters",
                "errors",
                "retries",
                "poison",
                "dropped",
                "acks",
                "acks_skipped",
                "command_replies",
                "telemetry",
                "commands_sent",
            ),
            0,
        )
        self._connected = False
        self._last_error: str | None = None
        self.shared_group = shared_group
        self._generation = 0  # bumped on every connect: a mid is only valid in its session
        #: (session generation, message, monotonic arrival time s)
        self._inbox: queue.Queue[tuple[int, mqtt.MQTTMessage, float]] = queue.Queue()
        #: ingest thread: arrival (monotonic s) of the oldest message of the batch being
        #: ingested, None between batches
        self._batch_since: float | None = None
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()
        self.command_replies: OrderedDict[str, list[CommandReply]] = OrderedDict()
        self.telemetry: dict[str, Telemetry] = {}
        if shared_group is None:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                clean_session=False,
                manual_ack=True,
            )
        else:
            shared("x", shared_group)  # validates the group name
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=self.client_id,
                protocol=MQTTProtocolVersion.MQTTv5,
                manual_ack=True,
            )
        if username:
            client.username_pw_set(username, password)
        if tls_ca:
            client.tls_set(ca_certs=tls_ca)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self._client = client

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the network thread; connects (and reconnects) in the background."""
        if self._started:
            return
        self._started = True
        log.info("mqtt connecting broker=%s:%d client_id=%s", self.host, self.port, self.client_id)
        self._stopping.clear()
        self._worker = threading.Thread(target=self._work, name="mqtt-ingest", daemon=True)
        self._worker.start()
        for server in self.catch_ups.values():
            server.start()
        self._announcer = threading.Thread(
            target=self._announce_loop, name="mqtt-announce", daemon=True
        )
        self._announcer.start()
        if self.shared_group is None:
            self._client.connect_async(self.host, self.port, keepalive=self._keepalive_s)
        else:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            self._client.connect_async(
                self.host,
                self.port,
                keepalive=self._keepalive_s,
                clean_start=False,
                properties=props,
            )
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect cleanly and stop the network thread (idempotent)."""
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        if self._worker is not None:
            self._worker.join(timeout=10)
        for server in self.catch_ups.values():
            server.stop()
        if self._announcer is not None:
            self._announcer.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()
        self._ready.clear()
        with self._lock:
            self._connected = False
        log.info("mqtt stopped client_id=%s", self.client_id)

    def wait_ready(self, timeout_s: float) -> bool:
        """Block until connected and subscribed, at most ``timeout_s`` seconds."""
        return self._ready.wait(timeout_s)

    @property
    def connected(self) -> bool:
        """True while the broker connection is up."""
        with self._lock:
            return self._connected

    def status(self) -> dict[str, Any]:
        """Return a JSON-able snapshot: connection, subscription and message counters.

        ``commit_latency_p50_ms`` / ``commit_latency_p99_ms``: from a message's arrival to
        the commit of its batch, over the last :data:`LATENCY_WINDOW` messages (None
        before the first).
        """
        with self._lock:
            latencies = sorted(self._latencies_ms)
            return {
                "commit_latency_p50_ms": _percentile(latencies, 50),
                "commit_latency_p99_ms": _percentile(latencies, 99),
                "connected": self._connected,
                "subscribed": self._ready.is_set(),
                "broker": f"{self.host}:{self.port}",
                "client_id": self.client_id,
                "site": self.site,
                "sites": list(self.sites),
                "shared_group": self.shared_group,
                "ingest_backlog": self._inbox.qsize(),
                "ingest_lag_ms": round(self.ingest_lag_s() * 1000.0, 1),
                **self._counters,
                "catch_up": dict(
                    sum((Counter(s.counters) for s in self.catch_ups.values()), Counter())
                ),
                "last_error": self._last_error,
            }

    # -- publishing ------------------------------------------------------------------------

    def publish_policy(self, payload: bytes, site: str | None = None) -> bool:
        """Publish a disposition policy on ``rs/v1/{site}/policy`` (QoS 1, retained).

        Retained, so a station that (re)connects later gets the site's current policy.
        ``site`` None: on every site served. Returns False when paho refused a message
        (e.g. its queue is full).
        """
        ok = True
        for one in self.sites if site is None else (site,):
            info = self._client.publish(Topics(one).policy, payload, qos=QOS, retain=True)
            ok = ok and info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)
        return ok

    def publish_rma(
        self, announcement: RmaAnnouncement | RmaCancellation, site: str | None = None
    ) -> bool:
        """Publish an announcement or cancellation on ``rs/v1/{site}/rma`` (QoS 1).

        ``site``: the RMA's site (default the bridge's default site).

        While disconnected paho keeps the message and sends it once connected; stations
        that miss it catch up by revision anyway.

        Returns:
            True when the message was sent or queued, False when paho refused it (e.g.
            its queue is full).
        """
        topic = Topics(site or self.site).rma
        info = self._client.publish(topic, encode(announcement), qos=QOS, retain=False)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:  # kept by paho, sent once connected
            log.warning(
                "rma queued until the broker is back number=%s revision=%d",
                announcement.number,
                announcement.revision,
            )
        elif info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.error(
                "rma publish refused number=%s revision=%d rc=%s",
                announcement.number,
                announcement.revision,
                mqtt.error_string(info.rc),
            )
            self._note_error(f"publish_rma: {mqtt.error_string(info.rc)}")
            return False
        self._count("rma_published")
        log.info("rma published number=%s revision=%d", announcement.number, announcement.revision)
        return True

    def publish_command(
        self,
        station: str,
        command: CommandName,
        args: dict[str, str | int | float | bool] | None = None,
        *,
        request_id: str | None = None,
        expires_in_s: float = 60.0,
        site: str | None = None,
    ) -> str:
        """Send a command to one station (QoS 1, never retained); return its request id.

        ``site``: the station's site (default the bridge's default site).

        Replies arrive in :attr:`command_replies` under that id (``accepted`` then
        ``done`` or ``failed``).

        Raises:
            ValueError: when ``station`` is not a valid topic segment.
        """
        cmd = Command(
            request_id=request_id or uuid.uuid4().hex,
            command=command,
            issued_at=datetime.now(UTC),
            expires_in_s=expires_in_s,
            args=args or {},
        )
        topic = Topics(site or self.site, station).command
        self._client.publish(topic, encode(cmd), qos=QOS, retain=False)
        self._count("commands_sent")
        return cmd.request_id

    # -- announcement outbox (announce thread) -----------------------------------------------

    def _announce_loop(self) -> None:
        while not self._stopping.wait(self._announce_poll_s):
            try:
                if self._is_leader is not None and not self._is_leader():
                    continue  # another replica publishes the outbox
                self._flush_announcements()
            except Exception as exc:  # the database is down: the rows wait for the next look
                self._note_error(f"announce: {exc!r}")
                log.warning("announcement outbox not published: %r", exc)

    def _flush_announcements(self) -> int:
        """Mark PUBACKed outbox rows sent, then publish the pending ones; return published.

        Only the announce thread calls it, every ``announce_poll_s``; rows are published in
        outbox order, only while connected, and never twice while their PUBACK is awaited
        (unless it did not come within :data:`INFLIGHT_TIMEOUT_S`).
        """
        sent: list[int] = []
        sent_head: dict[str, int] = {}  # per site, the highest revision just PUBACKed
        while True:
            try:
                mid = self._pubacks.get_nowait()
            except queue.Empty:
                break
            entry = self._inflight.pop(mid, None)
            if entry is not None:
                sent.append(entry[0])
                sent_head[entry[1]] = max(sent_head.get(entry[1], 0), entry[2])
        now_s = time.monotonic()
        for mid, (_row, _site, _rev, at) in list(self._inflight.items()):
            if now_s - at > INFLIGHT_TIMEOUT_S:
                del self._inflight[mid]
        waiting = {row for row, _site, _rev, _at in self._inflight.values()}
        with self._sessions() as session:
            if sent:
                session.execute(
                    update(AnnouncementRow)
                    .where(AnnouncementRow.id.in_(sent))
                    .values(sent_at=utcnow())
                )
                session.commit()
                with self._lock:
                    self._counters["announcements_sent"] += len(sent)
            if not self.connected:
                return 0
            for site in self.sites:
                self._publish_head(session, site, sent_head.get(site, 0))
            rows = session.execute(
                select(
                    AnnouncementRow.id,
                    AnnouncementRow.site,
                    AnnouncementRow.revision,
                    AnnouncementRow.payload,
                )
                .where(AnnouncementRow.sent_at.is_(None), AnnouncementRow.site.in_(self.sites))
                .order_by(AnnouncementRow.id)
                .limit(ANNOUNCE_BATCH)
            ).all()
        published = 0
        for row_id, site, revision, payload in rows:
            if row_id in waiting:
                continue
            topic = Topics(site).rma
            info = self._client.publish(topic, payload.encode(), qos=QOS, retain=False)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:  # not connected any more, or paho's queue full
                break
            self._inflight[info.mid] = (row_id, site, revision, time.monotonic())
            published += 1
        with self._lock:
            self._counters["rma_published"] += published
        return published

    def _publish_head(self, session: Session, site: str, sent_head: int) -> None:
        """Publish ``site``'s head revision (retained) when it moved or the connection is new.

        ``sent_head`` is the highest revision of the site among the rows just PUBACKed
        (0: none). After
        a (re)connect the head is read from the outbox (the highest revision sent), so the
        retained value is right even when this gateway sends nothing new. Announce thread
        only; the caller checked that the bridge is connected.
        """
        if self._head_due.is_set():
            self._head_due.clear()
            self._head_published.clear()
        published = self._head_published.get(site)
        if published is None:
            stored = session.scalar(
                select(func.max(AnnouncementRow.revision)).where(
                    AnnouncementRow.sent_at.is_not(None), AnnouncementRow.site == site
                )
            )
            sent_head = max(sent_head, int(stored or 0))
        elif sent_head <= published:
            return
        head = HeadRevision(site=site, revision=sent_head)
        info = self._client.publish(Topics(site).head, encode(head), qos=QOS, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:  # try again at the next look
            self._head_due.set()
            return
        self._head_published[site] = sent_head
        self._count("heads_published")
        log.info("head revision published site=%s revision=%d", site, sent_head)

    # -- paho callbacks (network thread) ---------------------------------------------------

    @_guarded
    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any, _props: Any
    ) -> None:
        self._pubacks.put(mid)

    @_guarded
    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("mqtt connect refused broker=%s:%d reason=%s", self.host, self.port, reason)
            return
        with self._lock:
            self._connected = True
            self._counters["connects"] += 1
            self._generation += 1
        self._head_due.set()  # the announce thread publishes the head in this session
        group = self.shared_group
        subscriptions: list[tuple[str, int]] = []
        for site in self.sites:
            topics = Topics(site)
            subscriptions += [
                (topics.status, QOS),
                (topics.telemetry, 0),
                (topics.command_reply, QOS),
            ] + [
                (t if group is None else shared(t, group), QOS)
                for t in (topics.event, topics.sync_request, topics.photo)
            ]
        result, mid = client.subscribe(subscriptions)
        with self._lock:
            self._subscribe_mid = mid
        log.info("mqtt connected broker=%s:%d subscribe_rc=%s", self.host, self.port, result)

    @_guarded
    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reasons: Any, _props: Any
    ) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            log.error("mqtt subscription refused reasons=%s", failed)
            self._note_error(f"subscribe refused: {failed}")
            return
        with self._lock:
            ours = mid == self._subscribe_mid
        if ours:
            self._ready.set()
            log.info("mqtt subscribed sites=%s", ",".join(self.sites))

    @_guarded
    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._ready.clear()
        with self._lock:
            was = self._connected
            self._connected = False
            self._counters["disconnects"] += 1
        if was and self._started:
            log.warning("mqtt connection lost broker=%s:%d reason=%s", self.host, self.port, reason)
        elif was:
            log.info("mqtt disconnected broker=%s:%d", self.host, self.port)

    @_guarded
    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Only queue: the ingest thread handles it and acknowledges it once committed.
        with self._lock:
            generation = self._generation
        self._inbox.put((generation, msg, time.monotonic()))

    # -- ingest thread ---------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopping.is_set():
            batch = self._take_batch()
            self._batch_since = batch[0][2] if batch else None
            try:
                if batch and not self._ingest_batch(batch):
                    return  # stopping with unacknowledged messages: the broker redelivers them
            finally:  # (also when stopped or raising: a stopped bridge is not behind)
                self._batch_since = None

    def ingest_lag_s(self) -> float:
        """How long the oldest message of the batch being ingested has waited, s.

        0.0 between batches. It grows while events arrive faster than batches commit (a
        burst: stations flushing their outboxes after an outage, or more stations than
        this replica keeps up with).
        """
        since = self._batch_since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    def behind(self) -> bool:
        """Whether the ingest is behind: an event has waited over :data:`BEHIND_S`.

        The background deliveries (webhooks, shop pushes, e-mails) give way to the ingest
        then (:class:`gateway.services.worker.PeriodicWorker` ``yield_to``): on the
        conveyor's side a PUBACK waits for the commit and the stations' outboxes fill,
        while a shop's notification can wait a few seconds.
        """
        return self.ingest_lag_s() > BEHIND_S

    def _take_batch(self) -> list[tuple[int, mqtt.MQTTMessage, float]]:
        """What is queued: up to ``batch_max``, waiting ``batch_wait_ms`` at most for more."""
        try:
            batch = [self._inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self._batch_wait_s
        while len(batch) < self._batch_max:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(self._inbox.get(timeout=left))
                except queue.Empty:
                    break
        return batch

    def _ingest_batch(self, batch: list[tuple[int, mqtt.MQTTMessage, float]]) -> bool:
        """Store the batch's events in one transaction, handle the rest, then PUBACK all.

        Returns False when the bridge stopped before everything was committed (nothing of
        the batch is acknowledged then).
        """
        events: list[tuple[int, ParcelEvent]] = []  # (index in the batch, its event)
        site_of: dict[int, str] = {}  # index in the batch -> the site of its topic
        singles: set[int] = set()  # indexes handled one by one, after the batch's commit
        for i, (_gen, msg, _at) in enumerate(batch):
            found = self._batchable_event(msg)
            if found is None:
                singles.add(i)
            else:
                site_of[i], event = found
                events.append((i, event))
        if events:  # screened first: a refused one goes the one-by-one way (dead letter, alarm)
            kept: list[tuple[int, ParcelEvent]] = []
            screen = functools.partial(self._screen_events, events, site_of, kept)
            if not self._retrying("event screening", screen, fallback=True):
                return False
            singles.update({i for i, _e in events} - {i for i, _e in kept})
            events = kept
        if events:  # one transaction for the batch, whatever sites its events came from
            results: list[BatchResult] = []
            step = functools.partial(
                self._commit_events,
                [site_of[i] for i, _e in events],
                [e for _i, e in events],
                results,
            )
            if not self._retrying("event batch", step, fallback=True):
                return False
            self._count("batches")
            if not results:  # the batch failed for good as a whole: each on its own then
                singles.update(i for i, _e in events)
            for (i, event), result in zip(events, results, strict=False):
                msg = batch[i][1]
                if result.outcome is Outcome.STORED and event.photo and self._photos is not None:
                    self._photos.claim(event.photo.sha256)  # no longer an orphan photo
                if result.outcome is Outcome.STALE:
                    self._count("events_stale")
                    singles.add(i)  # ingested again on its own (retried while it stays stale)
                elif result.outcome is Outcome.REPORTED_AGAIN:
                    singles.add(i)  # on its own, the screen refuses it: dead letter, alarm
                elif result.outcome is Outcome.POISON:
                    self._count("poison")
                    self._note_error(f"ingest {msg.topic}: {result.error!r}")
                    error = f"{type(result.error).__name__}: {result.error}"
                    dead = functools.partial(
                        self._dead_letter, msg.topic, bytes(msg.payload), error
                    )
                    if not self._retrying(msg.topic, dead):
                        return False
        for i in sorted(singles):
            msg = batch[i][1]
            if not self._retrying(msg.topic, functools.partial(self._ingest, msg)):
                return False
        committed = time.monotonic()
        with self._lock:
            self._latencies_ms.extend((committed - arrived) * 1000 for _g, _m, arrived in batch)
        for generation, msg, _arrived in batch:
            self._ack(generation, msg)
        return True

    def _batchable_event(self, msg: mqtt.MQTTMessage) -> tuple[str, ParcelEvent] | None:
        """(site, event) when the message is a valid event on its station's event topic."""
        try:
            site, station = Topics.station_of(msg.topic)
            if site not in self.sites or msg.topic != Topics(site, station).event:
                return None
            event = decode(bytes(msg.payload), ParcelEvent)
        except (ValueError, ProtocolError):
            return None  # dead-lettered by the one-by-one path, with its error
        return (site, event) if event.station == station else None

    def _screen_events(
        self,
        events: list[tuple[int, ParcelEvent]],
        site_of: dict[int, str],
        kept: list[tuple[int, ParcelEvent]],
    ) -> None:
        """Keep in ``kept`` the events the station could have sent (event checks, issue 15)."""
        with self._sessions() as session:
            refusals = screen_events(
                session, [e for _i, e in events], [site_of[i] for i, _e in events]
            )
            kept[:] = [ie for ie, refusal in zip(events, refusals, strict=True) if refusal is None]

    def _commit_events(
        self, sites: list[str], events: list[ParcelEvent], results: list[BatchResult]
    ) -> None:
        """Ingest ``events`` (from the topics of ``sites``, one each) in one transaction.

        Their outcomes go to ``results``, in the same order.
        """
        with self._sessions() as session:
            results[:] = ingest_events(session, events, is_transient=is_transient, sites=sites)
        with self._lock:
            self._counters["messages_in"] += len(events)
            for r in results:
                if r.outcome is Outcome.STORED:
                    self._counters["events_ingested"] += 1
                elif r.outcome is Outcome.DUPLICATE:
                    self._counters["events_duplicate"] += 1

    def _retrying(self, what: str, step: Callable[[], object], *, fallback: bool = False) -> bool:
        """Run ``step`` until it does not fail transiently (backoff); False when stopping.

        A non-transient failure is logged; unless ``fallback`` (the caller then handles the
        messages one by one), it is counted as dropped: ``step`` dead-letters what it can,
        and this is the case where even that failed for good.
        """
        delay = 0.05
        while True:
            try:
                step()
                return True
            except Exception as exc:
                if not is_transient(exc):
                    self._note_error(f"ingest {what}: {exc!r}")
                    if fallback:
                        log.exception("%s failed, handling its messages one by one", what)
                    else:
                        self._count("dropped")
                        log.exception("message dropped, cannot dead-letter it topic=%s", what)
                    return True
                self._count("retries")
                self._note_error(f"ingest {what}: {exc!r}")
                log.warning("ingest failed, retrying in %.2fs topic=%s: %r", delay, what, exc)
                if self._stopping.wait(delay):
                    log.warning("stopping with unacknowledged messages topic=%s", what)
                    return False
                delay = min(delay * 2, RETRY_MAX_S)

    def _ack(self, generation: int, msg: mqtt.MQTTMessage) -> None:
        if msg.qos == 0:
            return
        with self._lock:
            current = generation == self._generation and self._connected
        if not current:  # the session changed: the broker redelivers it, dedup absorbs it
            self._count("acks_skipped")
            return
        self._client.ack(msg.mid, msg.qos)
        self._count("acks")

    def _ingest(self, msg: mqtt.MQTTMessage) -> None:
        """Handle one message; a non-transient failure dead-letters it with its error.

        A transient failure (:func:`is_transient`) propagates, and the ingest loop retries
        the message with backoff; it stays unacknowledged meanwhile.
        """
        try:
            self._handle(msg)
        except Exception as exc:
            if is_transient(exc):
                raise
            self._count("poison")
            self._note_error(f"ingest {msg.topic}: {exc!r}")
            log.exception("message dead-lettered, handling failed topic=%s", msg.topic)
            self._dead_letter(msg.topic, bytes(msg.payload), f"{type(exc).__name__}: {exc}")

    def _handle(self, msg: mqtt.MQTTMessage) -> None:
        self._count("messages_in")
        topic = msg.topic
        payload = bytes(msg.payload)
        try:
            site, station = Topics.station_of(topic)
            topics = Topics(site, station)
        except ValueError as exc:
            self._dead_letter(topic, payload, str(exc))
            return
        if site not in self.sites:
            self._dead_letter(topic, payload, f"site {site!r} is not served by this gateway")
            return
        try:
            if topic == topics.event:
                self._handle_event(topic, site, station, payload)
            elif topic == topics.photo:
                self._handle_photo(station, payload)
            elif topic == topics.status:
                self._handle_status(site, station, payload, retained=bool(msg.retain))
            elif topic == topics.sync_request:
                self._handle_sync_request(site, station, payload)
            elif topic == topics.command_reply:
                self._handle_command_reply(station, payload)
            elif topic == topics.telemetry:
                self._handle_telemetry(station, payload)
            else:
                self._dead_letter(topic, payload, "unexpected topic")
        except ProtocolError as exc:
            self._dead_letter(topic, payload, str(exc))

    # -- handlers --------------------------------------------------------------------------

    def _handle_event(self, topic: str, site: str, station: str, payload: bytes) -> None:
        event = decode(payload, ParcelEvent)
        if event.station != station:
            raise ProtocolError(f"event for station {event.station!r} on {station!r}'s topic")
        with self._sessions() as session:
            refusal = screen_event(session, event, site)
            if refusal is not None:  # nothing of it is stored or credited
                self._count("events_refused")
                session.rollback()  # end the read before the writes
                record_dead_letter(
                    session, topic, payload, str(refusal), quota=self._quotas.dead_letters
                )
                raise_refused_event(
                    session, station, event.event_id, str(refusal), self._quotas.alarms
                )
                return
            new = ingest_event(session, event, site=site)
        if new and event.photo is not None and self._photos is not None:
            self._photos.claim(event.photo.sha256)
        self._count("events_ingested" if new else "events_duplicate")

    def _handle_photo(self, station: str, payload: bytes) -> None:
        upload = decode(payload, PhotoUpload)
        if upload.station != station:
            raise ProtocolError(f"photo for station {upload.station!r} on {station!r}'s topic")
        if self._photos is None:
            raise ProtocolError("this gateway keeps no photos")
        new = self._photos.store(upload)
        self._count("photos_stored" if new else "photos_duplicate")

    def _handle_status(self, site: str, station: str, payload: bytes, *, retained: bool) -> None:
        if not payload:  # a retained status being cleared
            log.info("retained status cleared station=%s", station)
            return
        status = decode(payload, StationStatus)
        if status.station != station:
            raise ProtocolError(f"status for station {status.station!r} on {station!r}'s topic")
        with self._sessions() as session:
            try:
                upsert_station(session, site, status, retained=retained)
            except StationOfAnotherSite as exc:  # never moved: a dead letter, and logged
                log.error("status refused: %s", exc)
                raise ProtocolError(str(exc)) from exc
        self._count("statuses")

    def _handle_sync_request(self, site: str, station: str, payload: bytes) -> None:
        request = decode(payload, SyncRequest)
        if request.station != station:
            raise ProtocolError(f"sync request for {request.station!r} on {station!r}'s topic")
        self._count("sync_requests")
        self.catch_ups[site].submit(station, request)  # answered on its own thread, not here

    def _publish_sync(self, site: str, station: str, data: bytes) -> None:
        self._client.publish(Topics(site, station).sync_response, data, qos=QOS, retain=False)
        self._count("sync_batches")

    def _handle_command_reply(self, station: str, payload: bytes) -> None:
        reply = decode(payload, CommandReply)
        if reply.station != station:
            raise ProtocolError(f"reply for station {reply.station!r} on {station!r}'s topic")
        with self._lock:
            replies = self.command_replies.setdefault(reply.request_id, [])
            if len(replies) >= MAX_REPLIES_PER_REQUEST:  # a station repeating itself
                DROPPED["command_replies"] += 1
                return
            replies.append(reply)
            while len(self.command_replies) > KEEP_REPLIES:
                self.command_replies.popitem(last=False)
            self._counters["command_replies"] += 1
        with self._sessions() as session:
            record_reply(session, reply)  # the status page shows it
        log.info(
            "command reply station=%s request_id=%s command=%s state=%s detail=%s",
            station,
            reply.request_id,
            reply.command,
            reply.state,
            reply.detail,
        )

    def _handle_telemetry(self, station: str, payload: bytes) -> None:
        telemetry = decode(payload, Telemetry)
        if telemetry.station != station:
            raise ProtocolError(f"telemetry of {telemetry.station!r} on {station!r}'s topic")
        with self._lock:
            self.telemetry[station] = telemetry
            self._counters["telemetry"] += 1

    # -- bookkeeping -----------------------------------------------------------------------

    def _dead_letter(self, topic: str, payload: bytes, error: str) -> None:
        self._count("dead_letters")
        with self._sessions() as session:
            record_dead_letter(session, topic, payload, error, quota=self._quotas.dead_letters)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counters[name] += 1

    def _note_error(self, error: str) -> None:
        with self._lock:
            self._counters["errors"] += 1
            self._last_error = error
