"""Station status: upsert from birth / last-will messages, and listing."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from gateway.models import REVISION_MAX, Station, StationStateChange, utcnow
from gateway.services.alarms import sync_station
from protocol import StationStatus

log = logging.getLogger(__name__)


class StationOfAnotherSite(ValueError):
    """A status for a station id known at another site (the bridge dead-letters it).

    Two sites' stations must not share an id: the second one's status would move the
    station to its site, and the first site's lead would then command, on the second
    site's topic, a belt they cannot see. The message names both sites and what to do.
    """

    def __init__(self, station: str, known_at: str, site: str) -> None:
        super().__init__(
            f"station {station!r} is site {known_at!r}'s: a station on site {site!r} must"
            " have another id (station ids are unique across sites)"
        )
        self.station, self.known_at, self.site = station, known_at, site


def upsert_station(
    session: Session,
    site: str,
    status: StationStatus,
    *,
    seen_at: datetime | None = None,
    retained: bool = False,
) -> Station:
    """Create or update the station named in ``status`` and commit.

    ``retained`` marks a status the broker replayed on subscription: it sets the state but
    does not move ``last_seen`` of a known station, since the message may be old. The
    status's typed health and its birth's ``config_hash`` are kept in ``details`` (read
    them as :attr:`Station.health` and :attr:`Station.config_hash`). The station's
    ``rma_revision`` is mirrored as :func:`mirrored_revision` reads it (at most
    :data:`~gateway.models.REVISION_MAX`).

    A station id names one station across every site (commands, alarms and the status
    page find a station by its id): a status on another site's topic for a station
    known at one site is refused (:class:`StationOfAnotherSite`), never moves it.

    Every gateway replica takes every status (statuses are not a shared subscription),
    so on PostgreSQL the station's row is created if need be and locked first
    (:func:`_locked_station`): replicas upserting one status take turns, and each raises
    and clears alarms and records belt modes on what the one before committed.
    """
    now = seen_at or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        station, created = _locked_station(session, status, site, now)
    else:  # one gateway process on a SQLite file
        found = session.get(Station, status.station)
        created = found is None
        station = found or Station(id=status.station, site=site, last_seen=now)
        if created:
            session.add(station)
    if station.site != site:
        raise StationOfAnotherSite(status.station, station.site, site)
    previous = None if created else station.state
    if not created and (not retained or station.last_seen is None):
        station.last_seen = now
    station.state = status.state
    station.software_version = status.software_version
    station.rma_revision = mirrored_revision(status)
    station.details = {
        "config_hash": status.config_hash,
        "health": status.health.model_dump(mode="json", exclude_defaults=True),
    }
    sync_station(session, station)  # alarms follow the reported conditions
    if not retained:
        record_mode(session, station.id, belt_mode(status), now)
    session.commit()
    if previous != status.state:
        log.info(
            "station state station=%s site=%s state=%s previous=%s",
            status.station,
            site,
            status.state,
            previous,
        )
    return station


def mirrored_revision(status: StationStatus) -> int:
    """The site revision a station reports having applied, as the gateway stores it.

    The protocol lets a station report up to 2^63 - 1 (``StationStatus.rma_revision``),
    but the gateway never issues a revision above :data:`~gateway.models.REVISION_MAX`
    (the 32-bit ``rmas.revision``; ``stations.rma_revision`` is as wide), so a station
    claiming more claims what it cannot have been sent (a store kept from another
    gateway's database, or a corrupt one). Such a claim is clamped to ``REVISION_MAX``
    (and logged), not refused: the rest of the status (online / offline, E-stop, jams,
    devices down, the alarms they raise) is what the status is for, and refusing it
    would dead-letter all of that over a number the gateway only mirrors. The clamp
    changes nothing the gateway derives from the number: every head revision is at most
    ``REVISION_MAX``, so the clamped value is, like the claim, at or beyond any head
    (sync lag 0). Before this, PostgreSQL refused the UPDATE (``integer out of range``)
    and the status was dead-lettered, while SQLite stored the claim as it was.

    Returns:
        ``status.rma_revision``, at most ``REVISION_MAX`` (0 .. 2^31 - 1).
    """
    claimed = status.rma_revision
    if claimed <= REVISION_MAX:
        return claimed
    log.warning(
        "station claims a revision beyond any the gateway issues station=%s "
        "rma_revision=%d stored=%d",
        status.station,
        claimed,
        REVISION_MAX,
    )
    return REVISION_MAX


def _locked_station(
    session: Session, status: StationStatus, site: str, now: datetime
) -> tuple[Station, bool]:
    """The status's station, its row locked until the commit; ``(station, created)``.

    PostgreSQL: ``INSERT ... ON CONFLICT (id) DO NOTHING`` (a replica creating the same
    new station at the same moment waits for it, then finds it there), then ``SELECT ...
    FOR UPDATE`` of the row as committed (also when the session holds it already).
    """
    created = (
        session.execute(
            pg_insert(Station)
            .values(id=status.station, site=site, state=status.state, last_seen=now)
            .on_conflict_do_nothing(index_elements=[Station.id])
            .returning(Station.id)
        ).first()
        is not None
    )
    station = session.scalars(
        select(Station)
        .where(Station.id == status.station)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return station, created


def belt_mode(status: StationStatus) -> str:
    """What the belt does per a status: ``offline``, ``jammed``, ``stopped`` or ``running``."""
    if status.state == "offline":
        return "offline"
    health = status.health
    if health.core is not None and health.core.jammed:
        return "jammed"
    return "stopped" if health.belt_running is False else "running"


def record_mode(session: Session, station: str, mode: str, at: datetime) -> None:
    """Add a :class:`StationStateChange` when ``mode`` differs from the station's last one."""
    last = session.scalar(
        select(StationStateChange.mode)
        .where(StationStateChange.station == station)
        .order_by(StationStateChange.at.desc(), StationStateChange.id.desc())
        .limit(1)
    )
    if last != mode:
        session.add(StationStateChange(station=station, mode=mode, at=at))


def list_stations(session: Session, *, sites: list[str] | None = None) -> list[Station]:
    """Return every known station (of ``sites``; None: of every site), ordered by id."""
    stmt = select(Station).order_by(Station.id)
    if sites is not None:
        stmt = stmt.where(Station.site.in_(sites))
    return list(session.scalars(stmt))
