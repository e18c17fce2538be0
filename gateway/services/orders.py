"""Orders: the minimum that return policies need (delivered units and paid prices)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.models import Order, OrderLine
from gateway.schemas import OrderDraft


class DuplicateOrder(Exception):
    """An order with this reference already exists (HTTP 409)."""


class InvalidOrder(ValueError):
    """The order contradicts itself, e.g. more delivered than ordered (HTTP 422)."""


def create_order(
    session: Session, draft: OrderDraft, *, before_commit: Callable[[Order], None] | None = None
) -> Order:
    """Store an order with lines numbered 1..n and commit.

    ``before_commit`` is called with the flushed order just before the commit.

    Raises:
        InvalidOrder: when a line has more units delivered than ordered.
        DuplicateOrder: when ``draft.order_ref`` is taken (nothing is stored).
    """
    for i, line in enumerate(draft.lines, start=1):
        if line.delivered_quantity > line.ordered_quantity:
            raise InvalidOrder(
                f"order line {i} ({line.sku}): delivered {line.delivered_quantity} > "
                f"ordered {line.ordered_quantity}"
            )
    if get_order(session, draft.order_ref) is not None:
        raise DuplicateOrder(f"order {draft.order_ref!r} already exists")
    order = Order(
        order_ref=draft.order_ref,
        customer=draft.customer,
        currency=draft.currency,
        delivered_at=draft.delivered_at,
        lines=[
            OrderLine(
                line_no=i,
                sku=line.sku,
                category=line.category,
                ordered_quantity=line.ordered_quantity,
                delivered_quantity=line.delivered_quantity,
                unit_price_cents=line.unit_price_cents,
            )
            for i, line in enumerate(draft.lines, start=1)
        ],
    )
    session.add(order)
    try:
        session.flush()
        if before_commit is not None:
            before_commit(order)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateOrder(f"order {draft.order_ref!r} already exists") from exc
    return order


def get_order(session: Session, order_ref: str) -> Order | None:
    """Return the order with this reference, or None."""
    return session.scalar(select(Order).where(Order.order_ref == order_ref))
