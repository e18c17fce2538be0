"""Orders: the minimum that return policies need (delivered units and paid prices)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.db import begin_writing
from gateway.models import Order, OrderLine, Rma, RmaLineRecord
from gateway.schemas import OrderDraft, OrderLineDraft, RmaDraft
from gateway.services.policies import returnable_for
from gateway.settings import DEFAULT_SITE

log = logging.getLogger(__name__)


class DuplicateOrder(Exception):
    """An order with this reference already exists (HTTP 409)."""


class InvalidOrder(ValueError):
    """The order contradicts itself, e.g. more delivered than ordered (HTTP 422)."""


def create_order(
    session: Session,
    draft: OrderDraft,
    *,
    before_commit: Callable[[Order], None] | None = None,
    site: str = DEFAULT_SITE,
) -> Order:
    """Store an order with lines numbered 1..n and commit.

    ``before_commit`` is called with the flushed order just before the commit; the
    order's site is ``draft.site``, else ``site`` (the caller checked it is a known one).

    RMAs the shop created for this order before the gateway knew it are linked to its
    lines (:func:`link_early_rmas`), so that what they claim counts.

    Raises:
        InvalidOrder: when a line has more units delivered than ordered.
        DuplicateOrder: when ``draft.order_ref`` is taken (nothing is stored).
    """
    _check_lines(draft)
    if get_order(session, draft.order_ref) is not None:
        raise DuplicateOrder(f"order {draft.order_ref!r} already exists")
    order = Order(
        order_ref=draft.order_ref,
        site=draft.site or site,
        customer=draft.customer,
        customer_email=draft.customer_email,
        customer_address=draft.customer_address,
        customer_language=draft.customer_language,
        currency=draft.currency,
        **_order_money(draft),
        delivered_at=_utc(draft.delivered_at),
        lines=[_set_line(OrderLine(line_no=i), line) for i, line in enumerate(draft.lines, 1)],
    )
    session.add(order)
    try:
        session.flush()
        link_early_rmas(session, order)
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


def rma_contact(draft: RmaDraft, order: Order | None) -> dict[str, str]:
    """The customer fields of a new RMA: each one from the request, else from the order.

    Returns the keyword arguments ``customer``, ``customer_email``, ``customer_address``
    and ``customer_language`` of :class:`gateway.models.Rma` ("" when neither knows).
    """
    fields = ("customer", "customer_email", "customer_address", "customer_language")
    return {
        name: getattr(draft, name) or (getattr(order, name) if order is not None else "") or ""
        for name in fields
    }


_ORDER_MONEY = ("discount_cents", "voucher_cents", "shipping_paid_cents", "tax_inclusive")


def _order_money(source: OrderDraft | Order) -> dict[str, Any]:
    return {name: getattr(source, name) for name in _ORDER_MONEY}


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def _check_lines(draft: OrderDraft) -> None:
    for i, line in enumerate(draft.lines, start=1):
        if line.delivered_quantity > line.ordered_quantity:
            raise InvalidOrder(
                f"order line {i} ({line.sku}): delivered {line.delivered_quantity} > "
                f"ordered {line.ordered_quantity}"
            )


def _set_line(target: OrderLine, line: OrderLineDraft) -> OrderLine:
    target.sku = line.sku
    target.category = line.category
    target.ordered_quantity = line.ordered_quantity
    target.delivered_quantity = line.delivered_quantity
    target.unit_price_cents = line.unit_price_cents
    target.line_discount_cents = line.line_discount_cents
    target.tax_rate_bp = line.tax_rate_bp
    target.name = line.name
    target.gtin = line.gtin
    target.serials = list(line.serials)
    target.rfid_uids = list(line.rfid_uids)
    return target


def _line_draft(line: OrderLine) -> OrderLineDraft:
    return OrderLineDraft(
        sku=line.sku,
        category=line.category,
        ordered_quantity=line.ordered_quantity,
        delivered_quantity=line.delivered_quantity,
        unit_price_cents=line.unit_price_cents,
        line_discount_cents=line.line_discount_cents,
        tax_rate_bp=line.tax_rate_bp,
        name=line.name,
        gtin=line.gtin,
        serials=list(line.serials or []),
        rfid_uids=list(line.rfid_uids or []),
    )


def as_draft(order: Order) -> OrderDraft:
    """Return the stored order as the draft that would store it again unchanged."""
    return OrderDraft(
        order_ref=order.order_ref,
        site=order.site,
        customer=order.customer,
        customer_email=order.customer_email,
        customer_address=order.customer_address,
        customer_language=order.customer_language,
        currency=order.currency,
        **_order_money(order),
        delivered_at=order.delivered_at,
        lines=[_line_draft(line) for line in order.lines],
    )


def lock_order(session: Session, order: Order) -> None:
    """Hold the order's row lock until the transaction ends (PostgreSQL ``FOR NO KEY UPDATE``).

    Whoever counts what is returnable of the order's lines (:func:`returnable_for`) and
    then changes it (an RMA's creation adds claims, an order update lowers the delivered
    quantities) takes it first: they take it in turn, and each counts after the other's
    commit (READ COMMITTED: each later statement sees what was committed before it),
    also creations on different sites, which share no site lock. SQLite: nothing here;
    both began their transaction with the database's write lock
    (:func:`gateway.db.begin_writing`, ``BEGIN IMMEDIATE``), so they take turns too.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK_ORDER, {"order_id": order.id})


_LOCK_ORDER = (
    select(Order.id).where(Order.id == bindparam("order_id")).with_for_update(key_share=True)
)


def upsert_order(
    session: Session,
    draft: OrderDraft,
    *,
    site: str = DEFAULT_SITE,
    check: Callable[[Order], None] | None = None,
) -> tuple[Order, str]:
    """Create the order, or bring a stored one to ``draft`` (lines matched by position).

    A new order's site is ``draft.site``, else ``site``; a stored one keeps its site
    unless ``draft.site`` names another.

    ``check`` is called with a stored order as committed once its lock is held, before
    anything is compared or written (e.g. the caller's right to its site: a read before
    the lock may predate another update moving the order to another site); it may raise
    to stop (nothing is stored). It is not called for an order to be created.

    Idempotent: the same draft again changes nothing. Returns the order and what happened:
    ``"created"``, ``"updated"`` or ``"unchanged"``; commits (also when unchanged), or
    rolls back when it raises.

    On SQLite the database's write lock is taken first (:func:`gateway.db.begin_writing`)
    and held until the commit: call it before anything is written in ``session``'s
    transaction.

    Raises:
        InvalidOrder: more delivered than ordered, or the update would drop a line or
            delivered units that RMAs already claim (returned or on open RMAs).
        Exception: whatever ``check`` raises.
        RuntimeError: something was written in ``session``'s transaction before, on
            SQLite (the claims would be counted without the write lock; nothing more is
            stored).
    """
    _check_lines(draft)
    if not begin_writing(session):
        raise RuntimeError("upsert_order: the transaction wrote before it took the write lock")
    try:
        return _upsert(session, draft, site, check)
    except BaseException:
        session.rollback()  # the lock goes with it, not when the caller closes the session
        raise


def _upsert(
    session: Session, draft: OrderDraft, site: str, check: Callable[[Order], None] | None
) -> tuple[Order, str]:
    """:func:`upsert_order` once its transaction holds the write lock (SQLite); commits."""
    order = get_order(session, draft.order_ref)
    if order is None:
        return create_order(session, draft, site=site), "created"
    lock_order(session, order)  # the claims below stay true until the commit
    # Read again under the lock, overwriting what the session already holds: the caller
    # may have loaded the order before (PUT /orders reads it for the site check), and a
    # plain read hands back that object as it was then, so an update committed between
    # that read and the lock would be compared against, and overwritten, unseen.
    order = session.scalars(
        select(Order).where(Order.id == order.id).execution_options(populate_existing=True)
    ).one()
    if check is not None:
        check(order)
    if draft.site is None:
        draft = draft.model_copy(update={"site": order.site})
    if as_draft(order) == draft:
        session.commit()  # nothing to write: the lock is given back at once
        return order, "unchanged"
    by_no = {line.line_no: line for line in order.lines}
    for line_no, line in by_no.items():
        claimed = returnable_for(session, line)
        new = draft.lines[line_no - 1] if line_no <= len(draft.lines) else None
        taken = claimed.returned + claimed.on_open
        referenced = session.scalar(
            select(RmaLineRecord.id).where(RmaLineRecord.order_line_id == line.id).limit(1)
        )
        if new is None and referenced is not None:
            raise InvalidOrder(f"order line {line_no} ({line.sku}) is on RMAs; it cannot go")
        if new is not None and referenced is not None and new.sku != line.sku:
            raise InvalidOrder(f"order line {line_no} is on RMAs as SKU {line.sku!r}")
        if new is not None and new.delivered_quantity < taken:
            raise InvalidOrder(
                f"order line {line_no} ({line.sku}): {taken} unit(s) already returned or on "
                f"open RMAs, more than the {new.delivered_quantity} delivered"
            )
    order.site = draft.site or order.site
    order.customer = draft.customer
    order.customer_email = draft.customer_email
    order.customer_address = draft.customer_address
    order.customer_language = draft.customer_language
    order.currency = draft.currency
    for name, value in _order_money(draft).items():
        setattr(order, name, value)
    order.delivered_at = _utc(draft.delivered_at)
    for line_no, line in list(by_no.items()):
        if line_no > len(draft.lines):
            order.lines.remove(line)
    for i, new in enumerate(draft.lines, start=1):
        if i in by_no:
            _set_line(by_no[i], new)
        else:
            order.lines.append(_set_line(OrderLine(line_no=i), new))
    session.flush()
    link_early_rmas(session, order)  # a line added now may be one they claim
    session.commit()
    return order, "updated"


def link_early_rmas(session: Session, order: Order) -> int:
    """Link the order's lines to RMA lines created before it, on the shop's word; a count.

    An RMA created for an order the gateway did not know yet (``require_order`` off)
    has lines with no order line: what they claim counted nowhere, so once the order
    came, the same delivered units could be returned again on another RMA. Each such
    line of an RMA of this ``order_ref`` is linked to the order's one line of its SKU
    (not when the SKU is on several lines, or on none: it stays as it was, logged), and
    from then on counts in the returnable units and is credited on the order's terms.
    Flushed order lines (ids) needed; does not commit.
    """
    early = session.scalars(
        select(RmaLineRecord)
        .join(Rma, Rma.id == RmaLineRecord.rma_id)
        .where(Rma.order_ref == order.order_ref, RmaLineRecord.order_line_id.is_(None))
        .order_by(RmaLineRecord.id)
    ).all()
    linked = 0
    for line in early:
        match = [ol for ol in order.lines if ol.sku == line.sku]
        if len(match) != 1:
            log.warning(
                "rma line not linked to order %s: sku %s is on %d of its lines",
                order.order_ref,
                line.sku,
                len(match),
            )
            continue
        line.order_line_id = match[0].id
        linked += 1
    if linked:
        log.info("order %s: %d earlier rma line(s) linked", order.order_ref, linked)
    return linked
