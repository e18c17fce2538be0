"""Live updates of the status page: a change watcher and the server-sent event stream.

:class:`LiveWorker` (a thread started by the app) looks at the database every
``interval_s`` (0.25 s) while a page listens (an open ``/api/v1/stream``): it keeps a
fingerprint per page section; when one changes, that section's version goes up. With no
page open it reads nothing: a replica that nobody watches does not read the page's
figures four times a second. The alarms of parcel events are raised by the ingest, in the
event's own transaction (:func:`~gateway.services.alarms.raise_for_event`); at start the
worker rescans the recent past once (:func:`scan_events`) for events stored before that.
``GET /api/v1/stream`` (SSE) sends ``event: change`` with the changed section names; the
page then fetches just those sections (``/partials/{section}``). Whatever wrote the change
(the MQTT bridge, a lead's action, another replica), the page follows within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.models import Alarm, Rma, Station, StationCommand, StationEvent, StationStateChange
from gateway.services.alarms import scan_events

log = logging.getLogger(__name__)

SECTIONS = ("stations", "alarms", "quarantine", "lanes", "expected", "shift", "parcels")


def fingerprints(session: Session, now: datetime) -> dict[str, str]:
    """A short digest per page section; a section changed when its digest did."""
    # the newest event id (an index lookup; events are never deleted, so a count would
    # tell nothing more and read the whole table on PostgreSQL)
    events = session.scalar(select(func.max(StationEvent.id)))
    records = session.scalars(select(Station).order_by(Station.id)).all()
    stations = [(s.id, s.state, s.last_seen, s.rma_revision, s.details) for s in records]
    waiting = session.execute(
        select(Rma.number, Rma.updated_at).where(Rma.awaiting_decision.is_(True))
    ).all()
    alarms = session.execute(
        select(
            func.count(Alarm.id),
            func.max(Alarm.id),
            func.max(Alarm.cleared_at),
            func.max(Alarm.acknowledged_at),
        )
    ).one()
    full = sorted(lane for s in records if s.health.core for lane in s.health.core.lanes_full)
    commands = session.execute(
        select(func.count(StationCommand.id), func.max(StationCommand.updated_at))
    ).one()
    changes = session.execute(select(func.max(StationStateChange.id))).one()
    in_transit = session.execute(
        select(func.count(Rma.id), func.max(Rma.revision)).where(Rma.state == "in_transit")
    ).one()
    parts: dict[str, object] = {
        "stations": [list(map(str, row)) for row in stations] + [list(map(str, commands))],
        "shift": [str(events), str(changes), now.strftime("%Y-%m-%d %H:%M")],
        "lanes": [str(events), full, now.strftime("%Y-%m-%d %H:%M")],
        "parcels": str(events),
        "quarantine": [str(events), *(list(map(str, row)) for row in waiting)],
        "alarms": list(map(str, alarms)),
        "expected": [list(map(str, in_transit)), now.strftime("%Y-%m-%d")],
    }
    return {
        name: hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
        for name, value in parts.items()
    }


class LiveWorker:
    """Background thread: alarm scan of new events and section change tracking.

    Args:
        sessions: database session factory.
        interval_s: how often the database is looked at.
        clock: returns the current UTC time (tests may pass their own).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        interval_s: float = 0.25,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._digests: dict[str, str] = {}
        self._listeners = 0
        self.versions: dict[str, int] = dict.fromkeys(SECTIONS, 0)

    def start(self) -> None:
        """Start the thread (idempotent), after one rescan of the recent past.

        The rescan (:func:`scan_events` over the last 1,000 event rows: the alarms of
        events an older gateway stored without raising them) is best effort: when it
        fails, that is logged and the worker starts all the same.
        """
        if self._thread is not None:
            return
        try:
            with self._sessions() as session:
                latest = session.scalar(select(func.max(StationEvent.id))) or 0
                scan_events(session, max(0, latest - 1000))
        except Exception:
            log.exception("live worker: the rescan of recent events failed; starting anyway")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="live-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def snapshot(self) -> dict[str, int]:
        """The current version of every section."""
        with self._lock:
            return dict(self.versions)

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        """Mark a page as listening while the block runs (the section tracking is on)."""
        with self._lock:
            self._listeners += 1
        try:
            yield
        finally:
            with self._lock:
                self._listeners -= 1

    @property
    def listeners(self) -> int:
        """Pages listening now (open streams)."""
        with self._lock:
            return self._listeners

    def poll(self, *, track_sections: bool = True) -> list[str]:
        """Look once: bump the changed sections' versions; return their names.

        ``track_sections`` False (nobody listens): nothing is read, returns []; the next
        tracking poll compares with the digests of the last one that tracked, so a section
        that changed meanwhile is reported then.
        """
        if not track_sections:
            return []
        with self._sessions() as session:
            digests = fingerprints(session, self._clock())
        changed = [s for s in SECTIONS if digests[s] != self._digests.get(s)]
        with self._lock:
            self._digests = digests
            for name in changed:
                self.versions[name] += 1
        return changed

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll(track_sections=self.listeners > 0)
            except Exception:
                log.exception("live worker poll failed")
            self._stop.wait(self._interval_s)


async def event_stream(
    worker: LiveWorker,
    is_disconnected: Callable[[], object],
    *,
    tick_s: float = 0.1,
    keepalive_s: float = 15.0,
) -> AsyncIterator[str]:
    """Yield SSE messages: ``hello`` first, then ``change`` with the changed sections.

    The stream counts as a listener of ``worker`` (:meth:`LiveWorker.listening`) from
    its first message until it ends.
    """
    with worker.listening():
        async for message in _changes(worker, is_disconnected, tick_s, keepalive_s):
            yield message


async def _changes(
    worker: LiveWorker,
    is_disconnected: Callable[[], object],
    tick_s: float,
    keepalive_s: float,
) -> AsyncIterator[str]:
    seen = worker.snapshot()
    yield "retry: 1000\nevent: hello\ndata: {}\n\n"
    idle = 0.0
    while True:
        if await is_disconnected():  # type: ignore[misc]
            return
        await asyncio.sleep(tick_s)
        now = worker.snapshot()
        changed = [s for s in SECTIONS if now[s] != seen.get(s)]
        seen = now
        if changed:
            idle = 0.0
            yield f"event: change\ndata: {json.dumps({'sections': changed})}\n\n"
        else:
            idle += tick_s
            if idle >= keepalive_s:
                idle = 0.0
                yield ": keep-alive\n\n"
