"""Messages the gateway could not accept, kept for inspection."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.models import DeadLetter, utcnow
from gateway.services.quotas import Quota, StationQuotas, enforce_dead_letters
from protocol import Topics

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 64 * 1024


def record_dead_letter(
    session: Session,
    topic: str,
    payload: bytes,
    error: str,
    *,
    received_at: datetime | None = None,
    quota: Quota = StationQuotas.dead_letters,
) -> DeadLetter:
    """Store a rejected message (payload truncated to 64 KiB) within its station's quota; commit.

    The station is the one whose topic it came on; past ``quota`` (count or bytes) that
    station's oldest dead letters are dropped
    (:func:`~gateway.services.quotas.enforce_dead_letters`).
    """
    try:
        station: str | None = Topics.station_of(topic)[1]
    except ValueError:
        station = None
    stored = bytes(payload[:MAX_PAYLOAD_BYTES])
    letter = DeadLetter(
        topic=topic[:255],
        payload=stored,
        error=error,
        received_at=received_at or utcnow(),
        station=station[:64] if station else None,
        size=len(stored),
    )
    session.add(letter)
    session.flush()
    enforce_dead_letters(session, letter.station, quota)
    session.commit()
    log.warning("dead letter topic=%s error=%s payload_hex=%s", topic, error, payload[:64].hex())
    return letter


def list_dead_letters(session: Session, *, limit: int = 100) -> list[DeadLetter]:
    """Return up to ``limit`` dead letters, newest first."""
    stmt = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    return list(session.scalars(stmt))


def count_dead_letters(session: Session) -> int:
    """Return how many dead letters are stored."""
    return int(session.scalar(select(func.count(DeadLetter.id))) or 0)
