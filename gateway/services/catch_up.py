"""Catch-up served off the ingest path, at a rate per station (issue 15, kind 1).

A station that was offline asks for every RMA change after its applied revision
(:class:`~protocol.SyncRequest`); answering means reading and publishing up to the whole
revision history. Done on the ingest thread, one station flooding requests delayed every
other station's events. :class:`CatchUpServer` takes each request from the ingest thread
(:meth:`CatchUpServer.submit`, which never touches the database) and answers it on its own
thread:

- per station, a request over ``rate`` (a ``limits`` rate string, default ``"6/minute"``)
  is refused and counted (``throttled``): the station asks again after its retry time;
- per station at most one request waits: a newer one replaces it (``coalesced``), since
  the answer to the newest covers the older;
- the answer is the batches of :func:`answer`, published by the ``publish`` callback.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.orm import Session, sessionmaker

from gateway.services.revisions import head_revision
from gateway.services.rmas import read_announcements
from protocol import SyncBatch, SyncRequest, encode
from protocol.messages import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

SYNC_RATE = "6/minute"
"""Catch-up requests served per station (a ``limits`` rate string)."""
MAX_WAITING = 10_000
"""Most stations with a request waiting; past it a new station's request is refused."""


def answer(session: Session, site: str, request: SyncRequest, batch_size: int) -> Iterator[bytes]:
    """The encoded batches answering ``request``, the last with ``last`` True.

    Every change after its revision up to the site's head, at most ``batch_size`` per
    batch and each under the broker's message limit
    (:data:`~protocol.messages.MAX_MESSAGE_BYTES`). An RMA the protocol cannot carry is
    left out (logged), never sent to make the station refuse the whole batch.
    """
    after = request.after_revision
    head = head_revision(session, site)
    while True:
        page, read, read_up_to = read_announcements(
            session, after_revision=after, up_to_revision=head, limit=batch_size, site=site
        )
        # by the RMAs read: one the protocol cannot carry is left out of the page
        last = read < batch_size or read_up_to >= head
        batch = SyncBatch(
            request_id=request.request_id, announcements=tuple(page), last=last, head_revision=head
        )
        data = encode(batch)
        while len(data) > MAX_MESSAGE_BYTES and len(page) > 1:
            page, last = page[: len(page) // 2], False
            read_up_to = page[-1].revision
            data = encode(batch.model_copy(update={"announcements": tuple(page), "last": False}))
        yield data
        if last:
            return
        after = read_up_to


class CatchUpServer:
    """Answers catch-up requests on its own thread, rate-limited and coalesced per station.

    Args:
        site: the site whose revisions are served.
        sessions: the gateway's session factory.
        publish: ``publish(station, payload)`` sends one encoded :class:`SyncBatch` to the
            station's ``sync/resp`` topic (QoS 1).
        batch_size: announcements per batch (>= 1).
        rate: requests served per station, a ``limits`` rate string (``"6/minute"``).

    Attributes:
        counters: ``submitted``, ``throttled``, ``coalesced``, ``refused``, ``served``,
            ``batches``, ``errors``.
    """

    def __init__(
        self,
        site: str,
        sessions: sessionmaker[Session],
        publish: Callable[[str, bytes], object],
        *,
        batch_size: int,
        rate: str = SYNC_RATE,
    ) -> None:
        self.site = site
        self._sessions = sessions
        self._publish = publish
        self._batch_size = batch_size
        self._rate = parse(rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._waiting: OrderedDict[str, SyncRequest] = OrderedDict()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.counters: Counter[str] = Counter()

    def start(self) -> None:
        """Start the serving thread (idempotent)."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="catch-up", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the serving thread; requests still waiting are dropped (stations retry)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)

    def waiting(self) -> dict[str, str]:
        """Station -> request id of the requests waiting to be served."""
        with self._cond:
            return {station: r.request_id for station, r in self._waiting.items()}

    def submit(self, station: str, request: SyncRequest) -> str:
        """Take a request from the ingest thread; returns what became of it.

        ``queued``, ``coalesced`` (it replaced the station's waiting one), ``throttled``
        (over the station's rate) or ``refused`` (too many stations waiting).
        """
        with self._cond:
            self.counters["submitted"] += 1
            if station in self._waiting:
                self._waiting[station] = request
                outcome = "coalesced"
            elif not self._limiter.hit(self._rate, self.site, station):
                outcome = "throttled"
            elif len(self._waiting) >= MAX_WAITING:
                outcome = "refused"
            else:
                self._waiting[station] = request
                self._cond.notify()
                outcome = "queued"
            if outcome != "queued":
                self.counters[outcome] += 1
        if outcome in ("throttled", "refused"):
            log.warning(
                "sync request %s station=%s request_id=%s", outcome, station, request.request_id
            )
        return outcome

    def _next(self) -> tuple[str, SyncRequest] | None:
        with self._cond:
            while not self._waiting and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            return self._waiting.popitem(last=False)

    def _run(self) -> None:
        while (item := self._next()) is not None:
            station, request = item
            try:
                self.serve(station, request)
            except Exception:
                self.counters["errors"] += 1
                log.exception("sync request failed station=%s", station)

    def serve(self, station: str, request: SyncRequest) -> None:
        """Answer one request now (on the calling thread)."""
        sent = 0
        with self._sessions() as session:
            for data in answer(session, self.site, request, self._batch_size):
                self._publish(station, data)
                sent += 1
        self.counters["served"] += 1
        self.counters["batches"] += sent
        log.info(
            "sync answered station=%s request_id=%s after=%d batches=%d",
            station,
            request.request_id,
            request.after_revision,
            sent,
        )
