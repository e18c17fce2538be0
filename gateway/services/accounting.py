"""Accounting kept apart from the physical side: facts in, credits and stock moves out.

A station reports what it did with a parcel (a :class:`gateway.models.StationEvent`). For a
parcel of a known RMA that can still receive goods, :func:`after_ingest` (called by the
event ingestion, in the same transaction) receives the outstanding units and then:

- disposition ``restock`` / ``refurbish`` / ``recycle``: that is the grade; :func:`settle`
  applies the credit policy by grade and requested resolution, writes one
  :class:`Credit` and one :class:`StockMovement` per line (unique per line, so it happens
  exactly once whatever is redelivered), and moves the RMA to refunded / credited /
  exchanged;
- anything else (quarantine): the RMA waits, ``awaiting_decision``, for a lead's decision
  (:func:`settle` with the lead's grade, or ``refuse``).

Credit policy (minor units, from what was actually paid for the units received, by the
rules of :mod:`gateway.returns.refunds`: discounts, voucher, tax, shipping): a reason that
is the merchant's fault (defective, wrong item, ...) gets 100 % and no restocking fee;
otherwise ``credit_percent_by_grade[grade]`` % of the paid price minus the category's
restocking fee (``restocking_fee_percent``), never below 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from gateway.models import Credit, ReturnReason, Rma, utcnow
from gateway.services import webhooks
from gateway.services.lifecycle import RESOLUTION_TRIGGER, fire
from gateway.services.policies import percent_of
from gateway.services.refund_terms import line_refund, recovery_percent, return_shipping_shares
from gateway.services.rmas import (
    announceable,
    bump,
    get_rma,
    outstanding,
    receive_units,
    to_announcement,
)
from gateway.services.stock import move_line
from gateway.services.write_offs import write_off
from gateway.settings import Settings
from protocol import ParcelEvent, RmaAnnouncement

log = logging.getLogger(__name__)

GRADES = ("restock", "refurbish", "recycle")
RECEIVABLE_STATES = ("authorized", "in_transit", "partially_received")
_ANNOUNCE_KEY = "rs_announce"

Publisher = Callable[[RmaAnnouncement], object]


class _Config:
    settings: Settings | None = None
    publish: Publisher | None = None


def configure(settings: Settings | None, publish: Publisher | None = None) -> None:
    """Set the policy and the announcement publisher used by :func:`after_ingest`.

    The app's lifespan calls this; ``configure(None)`` switches automatic accounting off.
    """
    _Config.settings = settings
    _Config.publish = publish


def announce_after_commit(session: Session, rma: Rma) -> None:
    """Publish ``rma``'s announcement once the session's transaction commits."""
    if announceable(rma):
        session.info.setdefault(_ANNOUNCE_KEY, []).append(to_announcement(rma))


@event.listens_for(Session, "after_commit")
def _publish_pending(session: Session) -> None:
    pending: list[RmaAnnouncement] = session.info.pop(_ANNOUNCE_KEY, [])
    publish = _Config.publish
    if publish is None:
        return
    for announcement in pending:
        try:
            publish(announcement)
        except Exception:
            log.exception("publishing rma %s failed", announcement.number)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_ANNOUNCE_KEY, None)


def state_changed(session: Session, settings: Settings, rma: Rma, actor: str) -> None:
    """Queue the ``rma.state_changed`` webhook and the station announcement."""
    webhooks.enqueue(
        session,
        settings,
        "rma.state_changed",
        {"number": rma.number, "state": rma.state, "revision": rma.revision, "actor": actor},
    )
    announce_after_commit(session, rma)


def settle(
    session: Session,
    settings: Settings,
    rma: Rma,
    grade: str,
    *,
    actor: str,
    now: datetime | None = None,
    destination: str | None = None,
) -> list[Credit]:
    """Grade a received RMA and apply the credit policy; inside the caller's transaction.

    ``grade`` is ``restock``, ``refurbish``, ``recycle``, or ``refuse`` (no credit, the
    RMA is closed, the received goods go to ``destination``: ``return_to_vendor``,
    ``scrap`` or ``return_to_customer``, default ``settings.refusal_default``; see
    :func:`gateway.services.write_offs.write_off`). ``actor`` is recorded on the
    transitions and credits.

    Returns:
        The credits created now (lines already credited are skipped: exactly once).

    Raises:
        IllegalTransition: when the RMA is not ``received``.
    """
    now = now or utcnow()
    fire(rma, "grade", actor=actor, note=f"grade {grade}", at=now)
    rma.grade = grade
    rma.awaiting_decision = False
    if grade == "refuse":
        fire(rma, "close", actor=actor, note="credit refused", at=now)
        write_off(session, settings, rma, destination or settings.refusal_default, actor, now)
        return []
    reason = session.get(ReturnReason, rma.reason)
    merchant_fault = bool(reason and reason.merchant_fault)
    received = [line for line in rma.lines if line.received_quantity > 0]
    shipping = return_shipping_shares(settings, len(received))
    credits: list[Credit] = []
    for i, line in enumerate(received):
        if session.scalar(select(Credit.id).where(Credit.rma_line_id == line.id)) is not None:
            continue
        category = line.category or "default"
        part = line_refund(
            session,
            settings,
            rma,
            line,
            line.received_quantity,
            grade=grade,
            merchant_fault=merchant_fault,
        )
        paid = part.paid_cents
        credit = Credit(
            rma_line_id=line.id,
            rma_number=rma.number,
            sku=line.sku,
            category=category,
            kind=rma.resolution,
            grade=grade,
            quantity=line.received_quantity,
            paid_cents=paid,
            amount_cents=part.amount_cents,
            restocking_fee_cents=part.restocking_fee_cents,
            tax_refund_cents=part.tax_refund_cents,
            shipping_refund_cents=part.shipping_refund_cents,
            recovered_value_cents=percent_of(paid, recovery_percent(settings, grade, category)),
            shipping_cost_cents=shipping[i],
            currency=rma.currency,
            source=actor,
            created_at=now,
        )
        session.add(credit)
        location = settings.stock_locations.get(grade, grade.upper())
        move_line(session, settings, line, location=location, kind="return_in", now=now)
        credits.append(credit)
        webhooks.enqueue(session, settings, "credit.issued", credit_payload(credit), now=now)
    fire(rma, RESOLUTION_TRIGGER[rma.resolution], actor=actor, note="by credit policy", at=now)
    return credits


def credit_payload(credit: Credit) -> dict[str, Any]:
    """JSON-able view of a credit (webhooks and API)."""
    return {
        "rma_number": credit.rma_number,
        "sku": credit.sku,
        "category": credit.category,
        "kind": credit.kind,
        "grade": credit.grade,
        "quantity": credit.quantity,
        "paid_cents": credit.paid_cents,
        "amount_cents": credit.amount_cents,
        "restocking_fee_cents": credit.restocking_fee_cents,
        "currency": credit.currency,
    }


def apply_parcel(
    session: Session,
    settings: Settings,
    rma: Rma,
    disposition: str,
    *,
    actor: str,
    now: datetime | None = None,
) -> bool:
    """Receive the parcel's outstanding units, then settle by grade or await a lead.

    Inside the caller's transaction. Returns False (nothing done) when the RMA cannot
    receive goods in its state (already received, cancelled, expired, ...).
    """
    if rma.state not in RECEIVABLE_STATES:
        log.info("parcel for rma %s in state %s: no accounting", rma.number, rma.state)
        return False
    now = now or utcnow()
    receive_units(rma, outstanding(rma), actor=actor, note=f"sorted to {disposition}", at=now)
    if disposition in GRADES:
        settle(session, settings, rma, disposition, actor=actor, now=now)
    else:
        rma.awaiting_decision = True
    bump(session, settings, rma)
    state_changed(session, settings, rma, actor)
    return True


def after_ingest(session: Session, stored: ParcelEvent) -> None:
    """Hook of the event ingestion: apply accounting for a newly stored parcel event.

    Runs in a savepoint of the ingesting transaction, so the event and its accounting
    commit together, and a failure here is logged without losing the event.
    """
    settings = _Config.settings
    if settings is None or not stored.rma_number:
        return
    try:
        with session.begin_nested():
            rma = get_rma(session, stored.rma_number)
            if rma is not None:
                apply_parcel(
                    session, settings, rma, stored.disposition, actor=f"station:{stored.station}"
                )
    except Exception:
        log.exception("accounting failed for event %s", stored.event_id)
