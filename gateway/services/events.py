"""Station parcel events: exactly-once ingestion, listing and per-lane counts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from gateway.models import Station, StationEvent, utcnow
from gateway.security.event_checks import Refusal, check_event
from gateway.services.announcements import announceable, to_announcement
from gateway.services.credits import after_ingest
from gateway.services.rma_writer import StaleRma
from gateway.services.rmas import get_rma
from protocol import ParcelEvent

log = logging.getLogger(__name__)

#: attempts at one event while other writers keep changing its RMA (each sees their result)
MAX_STALE_RETRIES = 5


@dataclass(frozen=True)
class LaneCount:
    """Number of parcels a station sent to one lane."""

    station: str
    lane: str
    count: int


def ingest_event(
    session: Session, event: ParcelEvent, *, received_at: datetime | None = None
) -> bool:
    """Record a parcel event once, with its credits, and commit.

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
            return _ingest_once(session, event, received_at=received_at)
        except (StaleRma, StaleDataError):
            session.rollback()
            log.info("rma changed meanwhile, ingesting again event_id=%s", event.event_id)
            if attempt == MAX_STALE_RETRIES:
                raise
    raise AssertionError("unreachable")


def _ingest_once(session: Session, event: ParcelEvent, *, received_at: datetime | None) -> bool:
    if session.scalar(select(StationEvent.id).where(StationEvent.event_id == event.event_id)):
        log.debug("duplicate event ignored event_id=%s", event.event_id)
        return False
    now = received_at or utcnow()
    session.add(
        StationEvent(
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
    session.execute(update(Station).where(Station.id == event.station).values(last_seen=now))
    after_ingest(session, event)  # credits and stock moves, in the same transaction
    try:
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


def screen_event(session: Session, event: ParcelEvent) -> Refusal | None:
    """Check an event from a station against what that station could know; None if sound.

    Looks up the RMA the event names as the gateway announces it to the site now (none
    when it was never announced) and applies :func:`gateway.security.event_checks.check_event`.
    Reads only.
    """
    rma = get_rma(session, event.rma_number) if event.rma_number else None
    announced = to_announcement(rma) if rma is not None and announceable(rma) else None
    return check_event(event, announced)


def list_events(
    session: Session, *, station: str | None = None, limit: int = 100
) -> tuple[list[StationEvent], int]:
    """Return up to ``limit`` recorded events, newest first, and the total matching count."""
    where = [] if station is None else [StationEvent.station == station]
    total = session.scalar(select(func.count(StationEvent.id)).where(*where)) or 0
    rows = session.scalars(
        select(StationEvent)
        .where(*where)
        .order_by(StationEvent.received_at.desc(), StationEvent.id.desc())
        .limit(limit)
    )
    return list(rows), int(total)


def lane_counts(session: Session, *, station: str | None = None) -> list[LaneCount]:
    """Return parcel counts per station and lane, ordered by station then lane."""
    stmt = (
        select(StationEvent.station, StationEvent.lane, func.count(StationEvent.id))
        .group_by(StationEvent.station, StationEvent.lane)
        .order_by(StationEvent.station, StationEvent.lane)
    )
    if station is not None:
        stmt = stmt.where(StationEvent.station == station)
    return [LaneCount(s, lane, int(n)) for s, lane, n in session.execute(stmt)]


def lanes_by_station(counts: list[LaneCount]) -> dict[str, dict[str, int]]:
    """Group flat counts as ``{station: {lane: count}}``, keeping their order."""
    grouped: dict[str, dict[str, int]] = {}
    for c in counts:
        grouped.setdefault(c.station, {})[c.lane] = c.count
    return grouped
