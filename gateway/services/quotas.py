"""Quotas and retention for what stations send that the gateway keeps (issue 15, kind 1).

Every store of untrusted input is bounded per station, in count and in bytes, and has a
retention period, so one station (compromised, or stuck in a loop) cannot fill the
database, the photo folder or the alarm list:

- dead letters: the oldest of the station's are dropped past ``max_count`` or
  ``max_bytes`` (counted in :data:`DROPPED`), and every one older than ``retention_s``;
- one-off alarms (a divert not confirmed, an event refused) not yet acknowledged: a new
  one past ``max_count`` for the station is refused (counted), so the alarms a lead has
  not seen yet stay; acknowledged and cleared alarms go after ``retention_s``;
- orphan photos (a photo no parcel event has named yet): the station's oldest is deleted
  past ``max_count`` or ``max_bytes``, and each after ``retention_s``
  (:class:`gateway.services.photos.PhotoStore`);
- command replies: at most :data:`MAX_REPLIES_PER_REQUEST` per request id, in memory
  (:class:`gateway.mqtt_bridge.MqttBridge`).

The limits come from the settings (``RS_QUOTA_*``); :class:`RetentionWorker` applies the
retention periods hourly.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.models import Alarm, DeadLetter, IdempotencyRecord, utcnow
from gateway.services.worker import PeriodicWorker
from gateway.settings import Settings

log = logging.getLogger(__name__)

MAX_REPLIES_PER_REQUEST = 4
"""Command replies kept per request id: ``accepted``, then ``done`` or ``failed``, and room
for one redelivery each; more are dropped and counted."""

DROPPED: Counter[str] = Counter()
"""What the quotas dropped or refused since start, by store (``dead_letters``,
``alarms``, ``orphan_photos``, ``command_replies``); shown by ``/metrics``."""


@dataclass(frozen=True)
class Quota:
    """The bound of one store of untrusted input, per station.

    Attributes:
        max_count: most entries one station may have in the store.
        max_bytes: most bytes they may take together (0: no byte bound).
        retention_s: entries older than this are deleted, s.
    """

    max_count: int
    max_bytes: int
    retention_s: float


@dataclass(frozen=True)
class StationQuotas:
    """The quotas of every store of untrusted input (see the module docstring)."""

    dead_letters: Quota = Quota(1000, 16 * 1024 * 1024, 30 * 86_400.0)
    alarms: Quota = Quota(200, 0, 90 * 86_400.0)
    orphan_photos: Quota = Quota(200, 200 * 1024 * 1024, 86_400.0)

    @classmethod
    def from_settings(cls, settings: Settings) -> StationQuotas:
        """The quotas configured by ``RS_QUOTA_*``."""
        return cls(
            dead_letters=Quota(
                settings.quota_dead_letters,
                settings.quota_dead_letter_bytes,
                settings.quota_dead_letter_days * 86_400.0,
            ),
            alarms=Quota(settings.quota_open_alarms, 0, settings.quota_alarm_days * 86_400.0),
            orphan_photos=Quota(
                settings.quota_orphan_photos,
                settings.quota_orphan_photo_bytes,
                settings.quota_orphan_photo_hours * 3600.0,
            ),
        )


def enforce_dead_letters(session: Session, station: str | None, quota: Quota) -> int:
    """Drop the station's oldest dead letters past its quota; return how many. Does not commit."""
    count, size = session.execute(
        select(func.count(DeadLetter.id), func.coalesce(func.sum(DeadLetter.size), 0)).where(
            DeadLetter.station == station
        )
    ).one()
    if count <= quota.max_count and (not quota.max_bytes or size <= quota.max_bytes):
        return 0
    rows = session.execute(
        select(DeadLetter.id, DeadLetter.size)
        .where(DeadLetter.station == station)
        .order_by(DeadLetter.id.desc())
    ).all()
    kept, total, doomed = 0, 0, []
    for row_id, row_size in rows:
        if kept < quota.max_count and (not quota.max_bytes or total + row_size <= quota.max_bytes):
            kept, total = kept + 1, total + row_size
        else:
            doomed.append(row_id)
    session.execute(delete(DeadLetter).where(DeadLetter.id.in_(doomed)))
    DROPPED["dead_letters"] += len(doomed)
    log.warning("dead letters over quota station=%s dropped=%d", station, len(doomed))
    return len(doomed)


def open_one_offs(session: Session, stations: Sequence[str]) -> dict[str, int]:
    """Unacknowledged one-off alarms (raised already cleared) of each station, one query.

    ``{station: count}`` for every station given (0 when it has none): what a station's
    alarm quota counts.
    """
    counts = dict.fromkeys(stations, 0)
    counts.update(
        (station, n)  # pairs: the result itself has keys() and would read as a mapping
        for station, n in session.execute(
            select(Alarm.station, func.count(Alarm.id))
            .where(
                Alarm.station.in_(sorted(counts)),
                Alarm.acknowledged_at.is_(None),
                Alarm.cleared_at.is_not(None),
            )
            .group_by(Alarm.station)
        )
    )
    return counts


def may_raise_one_off(session: Session, station: str, quota: Quota) -> bool:
    """True when the station has room for one more unacknowledged one-off alarm.

    A refusal is counted in :data:`DROPPED` (``alarms``).
    """
    if open_one_offs(session, [station])[station] < quota.max_count:
        return True
    DROPPED["alarms"] += 1
    return False


def purge_expired(
    session: Session, quotas: StationQuotas, idempotency_s: float | None = None
) -> dict[str, int]:
    """Delete dead letters, settled alarms and old idempotency records; commit.

    Dead letters and alarms go past their quota's retention (a settled alarm is cleared
    and acknowledged); idempotency records (an API caller's ``Idempotency-Key``, the
    return form's twin records) ``idempotency_s`` seconds after they were stored (None:
    kept). A key reused after that is a new request. Returns how many went, by store.
    """
    now = utcnow()
    keys: Sequence[object] = ()
    if idempotency_s is not None:
        keys = session.execute(
            delete(IdempotencyRecord)
            .where(IdempotencyRecord.created_at < now - timedelta(seconds=idempotency_s))
            .returning(IdempotencyRecord.id)
        ).all()
    letters = session.execute(
        delete(DeadLetter)
        .where(DeadLetter.received_at < now - timedelta(seconds=quotas.dead_letters.retention_s))
        .returning(DeadLetter.id)
    ).all()
    alarms = session.execute(
        delete(Alarm)
        .where(
            Alarm.acknowledged_at.is_not(None),
            Alarm.cleared_at.is_not(None),
            Alarm.raised_at < now - timedelta(seconds=quotas.alarms.retention_s),
        )
        .returning(Alarm.id)
    ).all()
    session.commit()
    gone = {"dead_letters": len(letters), "alarms": len(alarms), "idempotency_keys": len(keys)}
    if any(gone.values()):
        log.info("retention purge dead_letters=%d alarms=%d idempotency_keys=%d", *gone.values())
    return gone


class RetentionWorker(PeriodicWorker):
    """Hourly: :func:`purge_expired`, and the photo store's orphan and age purge."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        quotas: StationQuotas,
        purge_photos: Callable[[], object] | None = None,
        interval_s: float = 3600.0,
        idempotency_s: float | None = None,
    ) -> None:
        def job() -> None:
            with sessions() as session:
                purge_expired(session, quotas, idempotency_s)
            if purge_photos is not None:
                purge_photos()

        super().__init__("retention", interval_s, job)
