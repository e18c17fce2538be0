"""Goods refused credit: a stock movement to where the lead chose, and their cost.

When a lead refuses credit for a received return (grade ``refuse``), each received line
gets one :class:`gateway.models.StockMovement` (kind ``refused``) to the location of the
lead's choice (``settings.refusal_locations``: return to vendor, scrap, back to the
customer) and one :class:`gateway.models.WriteOff` with what the goods cost the customer,
the value the shop recovers (by destination and category, see
:func:`gateway.services.refund_terms.recovery_percent`) and the return shipping spent, so
the financial report counts them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Rma, WriteOff
from gateway.returns.refunds import percent_of
from gateway.services.refund_terms import line_refund, recovery_percent, return_shipping_shares
from gateway.services.stock import move_line
from gateway.settings import REFUSAL_DESTINATIONS, Settings


class UnknownDestination(ValueError):
    """The place named for refused goods is not one of :data:`REFUSAL_DESTINATIONS`."""


def write_off(
    session: Session, settings: Settings, rma: Rma, destination: str, actor: str, now: datetime
) -> list[WriteOff]:
    """Book ``rma``'s received goods, refused credit, to ``destination``.

    Inside the caller's transaction; lines already written off are skipped (exactly once).

    Returns:
        The write-offs created now.

    Raises:
        UnknownDestination: ``destination`` is not ``return_to_vendor``, ``scrap`` or
            ``return_to_customer``.
    """
    if destination not in REFUSAL_DESTINATIONS:
        raise UnknownDestination(
            f"refused goods go to one of {', '.join(REFUSAL_DESTINATIONS)}, not {destination!r}"
        )
    received = [line for line in rma.lines if line.received_quantity > 0]
    shipping = return_shipping_shares(settings, len(received))
    out: list[WriteOff] = []
    for line, shipping_cents in zip(received, shipping, strict=True):
        if session.scalar(select(WriteOff.id).where(WriteOff.rma_line_id == line.id)):
            continue
        category = line.category or "default"
        paid = line_refund(
            session,
            settings,
            rma,
            line,
            line.received_quantity,
            grade="restock",
            merchant_fault=True,
        ).paid_cents
        entry = WriteOff(
            rma_line_id=line.id,
            rma_number=rma.number,
            sku=line.sku,
            category=category,
            destination=destination,
            quantity=line.received_quantity,
            paid_cents=paid,
            recovered_value_cents=percent_of(
                paid, recovery_percent(settings, destination, line.category)
            ),
            shipping_cost_cents=shipping_cents,
            currency=rma.currency,
            source=actor,
            created_at=now,
        )
        session.add(entry)
        location = settings.refusal_locations[destination]
        move_line(session, settings, line, location=location, kind="refused", now=now)
        out.append(entry)
    return out
