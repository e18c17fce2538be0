"""Carrier tracking of RMAs: set at creation, on ship, or from a label bought for the RMA.

A carrier's tracking webhook (:func:`apply_carrier_event`) moves the RMA to in transit at
the carrier's first scan and records the carrier's last status (``delivered`` at the
warehouse, ``exception``). Every change goes through the writer path
(:func:`gateway.services.rma_writer.apply_change`), so stations learn an RMA's tracking
number in its announcement (schema version 3) and can identify the parcel by its carrier
barcode. A tracking number belongs to one RMA: a second RMA asking for it is refused
(:class:`TrackingNumberTaken`, HTTP 409); the unique index on ``rmas.tracking_number`` is
the last guard.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Rma, utcnow
from gateway.returns.tracking import check_tracking
from gateway.schemas import TrackingEventIn
from gateway.services.lifecycle import fire
from gateway.services.rma_writer import STATE_CHANGED as STATE
from gateway.services.rma_writer import apply_change, load_for_change
from gateway.settings import Settings

log = logging.getLogger(__name__)


class TrackingNumberTaken(Exception):
    """The tracking number is another RMA's (HTTP 409); nothing was changed."""

    def __init__(self, tracking_number: str, number: str) -> None:
        super().__init__(f"tracking number {tracking_number!r} is already RMA {number!r}'s")
        self.tracking_number = tracking_number
        self.number = number


def ensure_free(session: Session, tracking_number: str, rma_number: str | None = None) -> None:
    """Refuse ``tracking_number`` when an RMA other than ``rma_number`` holds it.

    Raises:
        TrackingNumberTaken: another RMA has it.
    """
    holder = session.scalar(select(Rma.number).where(Rma.tracking_number == tracking_number))
    if holder is not None and holder != rma_number:
        raise TrackingNumberTaken(tracking_number, holder)


def carrier_name(tracking_number: str, carrier: str | None, rma: Rma | None = None) -> str:
    """The carrier's name to store for ``tracking_number``.

    ``carrier`` if given, else ``rma``'s for this same number, else the one the number's
    format names (``UPS``, ``UPU S10``).
    """
    if carrier:
        return carrier
    if rma is not None and rma.tracking_number == tracking_number and rma.carrier:
        return rma.carrier
    return check_tracking(tracking_number)[0]


def set_tracking(session: Session, rma: Rma, carrier: str | None, tracking_number: str) -> bool:
    """Give ``rma`` this carrier tracking (validated by ``gateway.returns.tracking``).

    In the caller's transaction, without recording it (the caller calls ``apply_change``).
    ``carrier`` None: see :func:`carrier_name`. Returns False when ``rma`` already has
    exactly this tracking (nothing to change).

    Raises:
        TrackingNumberTaken: another RMA has the number.
    """
    carrier = carrier_name(tracking_number, carrier, rma)
    if (rma.carrier, rma.tracking_number) == (carrier, tracking_number):
        return False
    ensure_free(session, tracking_number, rma.number)
    rma.carrier, rma.tracking_number = carrier, tracking_number
    return True


def ship(
    session: Session,
    settings: Settings,
    rma: Rma,
    *,
    carrier: str | None,
    tracking_number: str | None,
    actor: str,
    note: str = "",
    now: datetime | None = None,
) -> Rma:
    """The customer's parcel left: ``ship`` (authorized → in_transit) with its tracking.

    A repeat for an RMA already in transit with the same (or no) tracking changes nothing
    (a retried request); a new tracking number on an RMA in transit replaces the old one
    (a parcel sent again). No commit.

    Raises:
        IllegalTransition: the RMA is neither authorized nor in transit.
        TrackingNumberTaken: another RMA has the number.
        StaleRma: another writer changed the RMA since it was read.
    """
    changed = False
    if tracking_number is not None:
        changed = set_tracking(session, rma, carrier, tracking_number)
    if rma.state != "in_transit":
        fire(rma, "ship", actor=actor, note=note or "shipped by the customer", at=now)
        rma.shipped_at = rma.updated_at
        changed = True
    if changed:
        apply_change(session, settings, rma, actor=actor, now=now)
        log.info("rma shipped number=%s carrier=%s actor=%s", rma.number, rma.carrier, actor)
    return rma


def update_tracking(
    session: Session,
    settings: Settings,
    rma: Rma,
    *,
    carrier: str | None,
    tracking_number: str,
    actor: str,
    now: datetime | None = None,
) -> Rma:
    """Set ``rma``'s tracking without a state change (e.g. a label bought); no commit.

    Raises:
        TrackingNumberTaken: another RMA has the number.
        StaleRma: another writer changed the RMA since it was read.
    """
    if set_tracking(session, rma, carrier, tracking_number):
        apply_change(session, settings, rma, actor=actor, now=now)
    return rma


#: order of carrier statuses reported at the same instant (the later one wins)
STATUS_RANK = {"in_transit": 0, "exception": 1, "delivered": 2}
#: RMA states in which a carrier's scan still moves the RMA (ship): nothing shipped yet
_SHIPPABLE = frozenset({"authorized"})


class UnknownTracking(LookupError):
    """No RMA has this tracking number, or it is another carrier's (HTTP 404)."""


def apply_carrier_event(
    session: Session,
    settings: Settings,
    event: TrackingEventIn,
    *,
    now: datetime | None = None,
) -> tuple[Rma, bool]:
    """Apply a carrier's tracking event to its RMA and commit; ``(rma, applied)``.

    Idempotent and out-of-order safe: an event not newer than the carrier's last one
    (``occurred_at``; at the same instant, delivered > exception > in_transit) changes
    nothing (``applied`` False). A newer one records the carrier's status; an
    ``in_transit`` or ``delivered`` event on an RMA not yet shipped fires ``ship`` (in
    transit since the event's time). It never moves an RMA back: received, cancelled or
    expired RMAs only record the status. The change goes through the writer path (the
    RMA row locked on PostgreSQL, compare-and-set on SQLite).

    Raises:
        UnknownTracking: no RMA has the number for this carrier (names compared
            case-insensitively).
        StaleRma: another writer changed the RMA meanwhile (nothing written; retry).
    """
    number = session.scalar(select(Rma.number).where(Rma.tracking_number == event.tracking_number))
    rma = load_for_change(session, number) if number is not None else None
    if rma is None or rma.carrier.casefold() != event.carrier.casefold():
        session.rollback()
        raise UnknownTracking(
            f"no RMA has {event.carrier} tracking number {event.tracking_number!r}"
        )
    at = event.occurred_at
    rank = STATUS_RANK[event.status]
    if rma.carrier_status_at is not None and (at, rank) <= (
        rma.carrier_status_at,
        STATUS_RANK.get(rma.carrier_status, -1),
    ):
        session.rollback()
        return rma, False
    actor = f"carrier:{event.carrier}"[:128]
    rma.carrier_status, rma.carrier_status_at = event.status, at
    if event.expected_on is not None:
        rma.expected_on = event.expected_on
    moved = event.status != "exception" and rma.state in _SHIPPABLE
    if moved:
        note = f"{event.carrier} {event.status.replace('_', ' ')}: {event.detail}".strip(": ")
        fire(rma, "ship", actor=actor, note=note[:500], at=now or utcnow())
        rma.shipped_at = at
    apply_change(session, settings, rma, actor=actor, webhook=None if not moved else STATE, now=now)
    session.commit()
    log.info(
        "carrier event rma=%s carrier=%s status=%s at=%s state=%s",
        rma.number,
        event.carrier,
        event.status,
        at.isoformat(),
        rma.state,
    )
    return rma, True
