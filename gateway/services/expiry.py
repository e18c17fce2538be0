"""Expiry of RMAs whose goods never came: a periodic job and its worker thread."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.models import Rma, utcnow
from gateway.services.lifecycle import fire
from gateway.services.rma_writer import apply_change
from gateway.services.worker import PeriodicWorker
from gateway.settings import Settings

log = logging.getLogger(__name__)


def expire_overdue(
    session: Session,
    settings: Settings,
    *,
    now: datetime | None = None,
    sites: frozenset[str] | None = None,
) -> list[str]:
    """Expire RMAs not received in time; commit.

    An RMA ``requested`` / ``authorized`` last changed on shop-calendar day D expires once
    today is after D + ``settings.authorization_valid_days``; one ``in_transit`` since day
    S (``Rma.shipped_at``) once today is after S + ``settings.in_transit_expiry_days``,
    unless its carrier reported it delivered to the warehouse (the goods are here: a
    lead finds it on the status page's overdue list instead). Each is announced
    (stations then send its parcel to quarantine) and reported by webhook.

    ``sites``: only RMAs of these sites (None: every site; a caller limited to sites
    expires only theirs).

    Returns:
        The numbers expired now, in revision order.
    """
    now = now or utcnow()
    zone = settings.zone
    today = now.astimezone(zone).date()
    expired: list[str] = []
    candidates = session.scalars(
        select(Rma)
        .where(
            or_(
                Rma.state.in_(("requested", "authorized")),
                and_(Rma.state == "in_transit", Rma.carrier_status != "delivered"),
            )
        )
        .where(*([] if sites is None else [Rma.site.in_(sorted(sites))]))
        .order_by(Rma.revision)
    ).all()
    for rma in candidates:
        in_transit = rma.state == "in_transit"
        since = rma.shipped_at if in_transit and rma.shipped_at else rma.updated_at
        since_day = since.astimezone(zone).date()
        valid = settings.in_transit_expiry_days if in_transit else settings.authorization_valid_days
        if (today - since_day).days <= valid:
            continue
        note = f"in transit since {since_day}" if in_transit else f"not received since {since_day}"
        fire(rma, "expire", actor="system:expiry", note=note, at=now)
        apply_change(session, settings, rma, actor="system:expiry", now=now)
        expired.append(rma.number)
    session.commit()
    if expired:
        log.info("rmas expired count=%d numbers=%s", len(expired), expired[:20])
    return expired


class ExpiryWorker(PeriodicWorker):
    """Background thread running :func:`expire_overdue` every ``settings.expiry_check_s``.

    ``leader``: see :class:`gateway.services.worker.PeriodicWorker`.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        leader: Callable[[], bool] | None = None,
    ) -> None:
        def job() -> None:
            with sessions() as session:
                expire_overdue(session, settings)

        super().__init__("expiry", settings.expiry_check_s, job, leader)
