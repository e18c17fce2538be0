"""Goods refused credit: where the lead sent them, and what they cost.

When a lead refuses credit for a received unit (action ``refuse``, or grade ``refuse`` for
every waiting unit of an RMA), the unit gets one stock movement (kind ``refused``, booked
by :mod:`gateway.services.credits`) to the location of the lead's choice
(``settings.refusal_locations``: return to vendor, scrap, back to the customer) and one
:class:`gateway.models.WriteOff` with what the unit cost the customer, the value the shop
recovers (by destination and category, see
:func:`gateway.services.refund_terms.recovery_percent`) and its share of the return
shipping spent, so the financial report counts it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Rma, RmaLineRecord, WriteOff
from gateway.returns.refunds import percent_of
from gateway.services.refund_terms import line_refund, recovery_percent
from gateway.settings import REFUSAL_DESTINATIONS, Settings


class UnknownDestination(ValueError):
    """The place named for refused goods is not one of :data:`REFUSAL_DESTINATIONS`."""


def refusal_location(settings: Settings, destination: str) -> str:
    """The stock location of refused goods sent to ``destination``.

    Raises:
        UnknownDestination: ``destination`` is not ``return_to_vendor``, ``scrap`` or
            ``return_to_customer``.
    """
    if destination not in REFUSAL_DESTINATIONS:
        raise UnknownDestination(
            f"refused goods go to one of {', '.join(REFUSAL_DESTINATIONS)}, not {destination!r}"
        )
    return settings.refusal_locations[destination]


def write_off_unit(
    session: Session,
    settings: Settings,
    rma: Rma,
    line: RmaLineRecord,
    unit_no: int,
    destination: str,
    *,
    shipping_cost_cents: int,
    actor: str,
    now: datetime,
) -> WriteOff | None:
    """Record unit ``unit_no`` of ``line``, refused credit, as sent to ``destination``.

    Inside the caller's transaction; a unit already written off is skipped (exactly once,
    also by the unique key). Amounts in minor units of the RMA's currency.

    Returns:
        The write-off created now, or None when the unit had one.

    Raises:
        UnknownDestination: ``destination`` is not one of :data:`REFUSAL_DESTINATIONS`.
    """
    refusal_location(settings, destination)
    done = select(WriteOff.id).where(WriteOff.rma_line_id == line.id, WriteOff.unit_no == unit_no)
    if session.scalar(done) is not None:
        return None
    paid = line_refund(
        session, settings, rma, line, 1, grade="restock", merchant_fault=True
    ).paid_cents
    entry = WriteOff(
        rma_line_id=line.id,
        unit_no=unit_no,
        rma_number=rma.number,
        sku=line.sku,
        category=line.category or "default",
        destination=destination,
        quantity=1,
        paid_cents=paid,
        recovered_value_cents=percent_of(
            paid, recovery_percent(settings, destination, line.category)
        ),
        shipping_cost_cents=shipping_cost_cents,
        currency=rma.currency,
        source=actor,
        created_at=now,
    )
    session.add(entry)
    return entry
