"""Station parcel events: exactly-once ingestion, listing and per-lane counts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from gateway.models import Station, StationEvent, utcnow
from gateway.security.event_checks import Refusal, check_event
from gateway.services import webhooks
from gateway.services.announcements import announceable, to_announcement
from gateway.services.credits import after_ingest
from gateway.services.rma_writer import StaleRma
from gateway.services.rmas import get_rma
from gateway.services.webhook_endpoints import active_endpoints
from gateway.settings import DEFAULT_SITE
from protocol import ParcelEvent

log = logging.getLogger(__name__)

#: attempts at one event while other writers keep changing its RMA (each sees their result)
MAX_STALE_RETRIES = 5
#: events in one batch, at most (the bridge drains its queue up to this)
MAX_BATCH = 1000


class Outcome(Enum):
    """What :func:`ingest_events` did with one event of a batch."""

    STORED = "stored"  # new: stored with its credits, committed with the batch
    DUPLICATE = "duplicate"  # its event_id was already recorded (or twice in the batch)
    STALE = "stale"  # its RMA kept changing under every attempt: nothing stored, retry it
    POISON = "poison"  # its handling failed for good: nothing stored, dead-letter it


@dataclass(frozen=True)
class BatchResult:
    """One event's outcome in a batch; ``error`` is the failure of a POISON / STALE one."""

    event_id: str
    outcome: Outcome
    error: BaseException | None = None


@dataclass(frozen=True)
class LaneCount:
    """Number of parcels a station sent to one lane."""

    station: str
    lane: str
    count: int


def ingest_event(
    session: Session,
    event: ParcelEvent,
    *,
    received_at: datetime | None = None,
    site: str = DEFAULT_SITE,
) -> bool:
    """Record a parcel event once, with its credits, and commit.

    ``site`` is the site of the topic it came on (screened first: :func:`screen_event`).

    Also refreshes the station's ``last_seen`` when the station is known. When another
    writer changed the event's RMA between the read and the commit (a lead deciding at
    the same moment), the whole ingestion is rolled back and done again on the RMA's
    new state, up to :data:`MAX_STALE_RETRIES` times.

    Returns:
        True when the event was new and stored; False when its ``event_id`` was already
        recorded (a redelivery: nothing changes).

    Raises:
        StaleRma: the RMA kept changing under every attempt (nothing stored; the bridge
            retries the message, which stays unacknowledged).
    """
    for attempt in range(1, MAX_STALE_RETRIES + 1):
        try:
            return _ingest_once(session, event, received_at=received_at, site=site)
        except (StaleRma, StaleDataError):
            session.rollback()
            log.info("rma changed meanwhile, ingesting again event_id=%s", event.event_id)
            if attempt == MAX_STALE_RETRIES:
                raise
    raise AssertionError("unreachable")


def ingest_events(
    session: Session,
    events: Sequence[ParcelEvent],
    *,
    received_at: datetime | None = None,
    is_transient: Callable[[BaseException], bool] = lambda _exc: False,
    site: str = DEFAULT_SITE,
) -> list[BatchResult]:
    """Record many parcel events in one transaction, each with its credits, and commit once.

    Exactly once by ``event_id`` like :func:`ingest_event`: ids already recorded (one
    query for the whole batch) or repeated within the batch are duplicates. Each event is
    stored in its own savepoint, so one that fails leaves the others intact: an RMA that
    another writer changed meanwhile (:class:`StaleRma`) is tried again on its new state up
    to :data:`MAX_STALE_RETRIES` times and then reported STALE (the caller retries it
    later); any other exception, unless it is an ``is_transient`` one, makes it POISON
    (nothing of it stored). The stations' ``last_seen`` is refreshed once per station,
    and the active webhook endpoints are read once per batch.

    Args:
        session: a session with no transaction of its own pending.
        events: at most :data:`MAX_BATCH` events, in arrival order.
        received_at: the receipt time recorded on every event (default: now, UTC).
        is_transient: true for an exception that aborts the whole batch instead (a
            database that went away: nothing is committed, the caller retries the batch).
        site: the site of the topics every event of the batch came on.

    Returns:
        One :class:`BatchResult` per event, in the order given.

    Raises:
        ValueError: more than :data:`MAX_BATCH` events.
        Exception: an ``is_transient`` one, or the commit's own failure (rolled back:
            nothing of the batch stored).
    """
    if len(events) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} events per batch, got {len(events)}")
    now = received_at or utcnow()
    ids = [e.event_id for e in events]
    stmt = select(StationEvent.event_id).where(StationEvent.event_id.in_(ids))
    known = set(session.scalars(stmt))
    results: list[BatchResult] = []
    seen_by_station: dict[str, datetime] = {}
    session.info[webhooks.ENDPOINTS_KEY] = active_endpoints(session)  # once per batch
    try:
        for event in events:
            if event.event_id in known:
                results.append(BatchResult(event.event_id, Outcome.DUPLICATE))
                continue
            result = _ingest_in_savepoint(session, event, now, is_transient, site)
            if result.outcome is Outcome.STORED:
                known.add(event.event_id)
                seen_by_station[event.station] = now
            results.append(result)
        for station, seen in sorted(seen_by_station.items()):
            session.execute(update(Station).where(Station.id == station).values(last_seen=seen))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop(webhooks.ENDPOINTS_KEY, None)
    stored = sum(r.outcome is Outcome.STORED for r in results)
    log.info("event batch committed events=%d stored=%d", len(events), stored)
    return results


def _ingest_in_savepoint(
    session: Session,
    event: ParcelEvent,
    now: datetime,
    is_transient: Callable[[BaseException], bool],
    site: str = DEFAULT_SITE,
) -> BatchResult:
    """Stage one event and its credits in a savepoint; roll only that back on failure."""
    for attempt in range(1, MAX_STALE_RETRIES + 1):
        try:
            with session.begin_nested():
                _stage(session, event, now, site)
                session.flush()
            return BatchResult(event.event_id, Outcome.STORED)
        except (StaleRma, StaleDataError) as exc:
            log.info("rma changed meanwhile, ingesting again event_id=%s", event.event_id)
            if attempt == MAX_STALE_RETRIES:
                return BatchResult(event.event_id, Outcome.STALE, exc)
        except IntegrityError as exc:  # stored concurrently by another writer (a replica)?
            there = select(StationEvent.id).where(StationEvent.event_id == event.event_id)
            if session.scalar(there) is not None:
                return BatchResult(event.event_id, Outcome.DUPLICATE)
            log.exception("event not ingested, poison event_id=%s", event.event_id)
            return BatchResult(event.event_id, Outcome.POISON, exc)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception("event not ingested, poison event_id=%s", event.event_id)
            return BatchResult(event.event_id, Outcome.POISON, exc)
    raise AssertionError("unreachable")


def _stage(session: Session, event: ParcelEvent, now: datetime, site: str) -> None:
    """Add the event's row and its credits (:func:`after_ingest`) to the transaction.

    The row is flushed first, so an event that another writer (a replica) stored
    concurrently fails here with ``IntegrityError`` (the caller's duplicate), never inside
    the crediting, which would swallow it.

    Raises:
        IntegrityError: the ``event_id`` is already stored (committed by another writer).
    """
    session.add(
        StationEvent(
            site=site,
            event_id=event.event_id,
            station=event.station,
            parcel_id=event.parcel_id,
            rma_number=event.rma_number,
            lane=event.lane,
            disposition=event.disposition,
            reason=event.reason,
            diverted=event.diverted,
            barcode=event.barcode,
            length_mm=event.length_mm,
            inducted_at=event.inducted_at,
            received_at=now,
            raw=event.model_dump(mode="json"),
        )
    )
    session.flush()
    after_ingest(session, event)  # credits and stock moves, in the same transaction


def _ingest_once(
    session: Session, event: ParcelEvent, *, received_at: datetime | None, site: str
) -> bool:
    if session.scalar(select(StationEvent.id).where(StationEvent.event_id == event.event_id)):
        log.debug("duplicate event ignored event_id=%s", event.event_id)
        return False
    now = received_at or utcnow()
    try:
        _stage(session, event, now, site)
        session.execute(update(Station).where(Station.id == event.station).values(last_seen=now))
        session.commit()
    except IntegrityError:  # stored concurrently by another writer
        session.rollback()
        log.debug("duplicate event ignored event_id=%s", event.event_id)
        return False
    log.info(
        "event recorded event_id=%s station=%s parcel_id=%d lane=%s reason=%s",
        event.event_id,
        event.station,
        event.parcel_id,
        event.lane,
        event.reason,
    )
    return True


def screen_event(session: Session, event: ParcelEvent, site: str | None = None) -> Refusal | None:
    """Check an event from a station against what that station could know; None if sound.

    Looks up the RMA the event names as the gateway announces it to the site now (none
    when it was never announced) and applies :func:`gateway.security.event_checks.check_event`,
    with ``site`` (the site of the event's topic; None: not checked) against the RMA's.
    Reads only.
    """
    rma = get_rma(session, event.rma_number) if event.rma_number else None
    announced = to_announcement(rma) if rma is not None and announceable(rma) else None
    rma_site = rma.site if rma is not None else None
    return check_event(event, announced, site=site, rma_site=rma_site)


def list_events(
    session: Session,
    *,
    station: str | None = None,
    limit: int = 100,
    sites: list[str] | None = None,
) -> tuple[list[StationEvent], int]:
    """Return up to ``limit`` recorded events, newest first, and the total matching count.

    ``sites``: only events of these sites (None: every site).
    """
    where = [] if station is None else [StationEvent.station == station]
    if sites is not None:
        where.append(StationEvent.site.in_(sites))
    total = session.scalar(select(func.count(StationEvent.id)).where(*where)) or 0
    rows = session.scalars(
        select(StationEvent)
        .where(*where)
        .order_by(StationEvent.received_at.desc(), StationEvent.id.desc())
        .limit(limit)
    )
    return list(rows), int(total)


def lane_counts(
    session: Session, *, station: str | None = None, sites: list[str] | None = None
) -> list[LaneCount]:
    """Return parcel counts per station and lane, ordered by station then lane.

    ``sites``: only the parcels of these sites (None: every site).
    """
    stmt = (
        select(StationEvent.station, StationEvent.lane, func.count(StationEvent.id))
        .group_by(StationEvent.station, StationEvent.lane)
        .order_by(StationEvent.station, StationEvent.lane)
    )
    if station is not None:
        stmt = stmt.where(StationEvent.station == station)
    if sites is not None:
        stmt = stmt.where(StationEvent.site.in_(sites))
    return [LaneCount(s, lane, int(n)) for s, lane, n in session.execute(stmt)]


def lanes_by_station(counts: list[LaneCount]) -> dict[str, dict[str, int]]:
    """Group flat counts as ``{station: {lane: count}}``, keeping their order."""
    grouped: dict[str, dict[str, int]] = {}
    for c in counts:
        grouped.setdefault(c.station, {})[c.lane] = c.count
    return grouped
