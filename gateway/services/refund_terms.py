"""The database side of refunds: an RMA line's order terms, earlier credits, the policy.

:func:`line_refund` is what the credit code calls for the refund of some units of one RMA
line; the arithmetic itself is :func:`gateway.returns.refunds.refund_units` (pure).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.models import Credit, Order, OrderLine, Rma, RmaLineRecord
from gateway.returns.refunds import (
    LineRefund,
    LineTerms,
    OrderTerms,
    RefundPolicy,
    largest_remainder,
    paid_lines,
    refund_units,
)
from gateway.schemas import order_terms
from gateway.services.lifecycle import OPEN_STATES
from gateway.settings import Settings


def refund_policy(settings: Settings, grade: str, merchant_fault: bool) -> RefundPolicy:
    """The refund policy of ``grade`` from the settings (credit %, restocking fees, shipping).

    Shipping paid is refunded per ``settings.shipping_refund``: ``never``,
    ``merchant_fault`` (only when the reason is the merchant's fault) or ``always``.
    """
    mode = settings.shipping_refund
    return RefundPolicy(
        merchant_fault=merchant_fault,
        credit_percent=float(settings.credit_percent_by_grade.get(grade, 0.0)),
        fee_percent=dict(settings.restocking_fee_percent),
        refund_shipping=mode == "always" or (mode == "merchant_fault" and merchant_fault),
    )


def recovery_percent(settings: Settings, disposition: str, category: str | None) -> float:
    """Percent of the paid price recovered by ``disposition`` for goods of ``category``.

    ``settings.recovery_percent_by_category[category][disposition]`` when set, else
    ``settings.recovery_percent_by_grade[disposition]`` (0 when neither knows it).
    """
    special = settings.recovery_percent_by_category.get(category or "default", {})
    if disposition in special:
        return float(special[disposition])
    return float(settings.recovery_percent_by_grade.get(disposition, 0.0))


def return_shipping_shares(settings: Settings, lines: int) -> list[int]:
    """The return shipping an RMA cost (``settings.return_shipping_cents``) over its lines.

    Largest remainder over equal lines: the parts sum to the cost, the first lines carry
    the extra minor units.
    """
    return largest_remainder(settings.return_shipping_cents, [1] * lines) if lines else []


#: ``session.info`` key of the units credited so far, by :func:`_credited_key`, that a batch
#: read once for its whole transaction (:func:`preload_credited`) and keeps current
#: (:func:`note_credited`) instead of one query per unit
CREDITED_KEY = "refund_terms.credited"


def _credited_key(line: RmaLineRecord) -> tuple[str, int]:
    """What earlier credits of ``line`` count against: its order line, or the line alone."""
    if line.order_line_id:
        return ("order_line", line.order_line_id)
    return ("rma_line", line.id)


def preload_credited(session: Session, lines: Iterable[RmaLineRecord]) -> None:
    """Read the units credited so far for every one of ``lines`` in two queries.

    Kept in ``session.info`` (:data:`CREDITED_KEY`) for the rest of the caller's
    transaction, where :func:`line_refund` reads them instead of querying per unit;
    :func:`note_credited` adds each credit the transaction issues meanwhile. Only for a
    caller that holds the lines' RMAs for the whole transaction (the batched ingest) and
    pops the key when it ends.
    """
    counts: dict[tuple[str, int], int] = {_credited_key(line): 0 for line in lines}
    order_lines = sorted({k for kind, k in counts if kind == "order_line"})
    rma_lines = sorted({k for kind, k in counts if kind == "rma_line"})
    if order_lines:
        rows = session.execute(
            select(RmaLineRecord.order_line_id, func.sum(Credit.quantity))
            .join(RmaLineRecord, RmaLineRecord.id == Credit.rma_line_id)
            .where(RmaLineRecord.order_line_id.in_(order_lines))
            .group_by(RmaLineRecord.order_line_id)
        )
        counts.update((("order_line", int(k or 0)), int(n or 0)) for k, n in rows)
    if rma_lines:
        rows = session.execute(
            select(Credit.rma_line_id, func.sum(Credit.quantity))
            .where(Credit.rma_line_id.in_(rma_lines))
            .group_by(Credit.rma_line_id)
        )
        counts.update((("rma_line", int(k or 0)), int(n or 0)) for k, n in rows)
    session.info[CREDITED_KEY] = counts


def note_credited(session: Session, line: RmaLineRecord, quantity: int) -> None:
    """Count ``quantity`` units of ``line`` credited now (no-op before :func:`preload_credited`)."""
    counts: dict[tuple[str, int], int] | None = session.info.get(CREDITED_KEY)
    if counts is not None:
        key = _credited_key(line)
        counts[key] = counts.get(key, 0) + quantity


def lock_orders(session: Session, order_ids: Iterable[int]) -> None:
    """Lock the orders' rows until the transaction ends (PostgreSQL; in id order).

    Whoever counts the units credited on an order's lines to credit the next ones holds
    its order's row meanwhile, so two writers crediting RMAs of one order line (which do
    not share an RMA lock) take their shares one after the other. SQLite has one writer
    at a time already (nothing to do).
    """
    ids = sorted(set(order_ids))
    if ids and session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(Order.id).where(Order.id.in_(ids)).order_by(Order.id).with_for_update()
        )


def _credited_before(session: Session, line: RmaLineRecord) -> int | None:
    counts: dict[tuple[str, int], int] | None = session.info.get(CREDITED_KEY)
    return None if counts is None else counts.get(_credited_key(line))


def _terms(session: Session, rma: Rma, line: RmaLineRecord) -> tuple[OrderTerms, int, int]:
    """``(terms, line number in them, units of that line credited before)``."""
    order_line = session.get(OrderLine, line.order_line_id) if line.order_line_id else None
    # (a line whose order line is gone counts alone, as below: not what the batch read)
    before = (
        _credited_before(session, line) if bool(order_line) == bool(line.order_line_id) else None
    )
    if order_line is None:
        # an RMA taken on the shop's word: the line stands alone at its unit price
        alone = LineTerms(1, line.quantity, line.unit_price_cents, category=line.category)
        if before is None:
            before = session.scalar(
                select(func.coalesce(func.sum(Credit.quantity), 0)).where(
                    Credit.rma_line_id == line.id
                )
            )
        return OrderTerms(rma.currency, (alone,)), 1, int(before or 0)
    order = order_line.order
    number = next(i for i, ol in enumerate(order.lines, start=1) if ol.id == order_line.id)
    if before is None:
        # another RMA of the order may be credited at the same moment (a lead, a batch of
        # the other replica): the order row is locked (PostgreSQL) before its units are
        # counted, so each unit takes the next share, never one another writer took too
        lock_orders(session, [order.id])
        before = session.scalar(
            select(func.coalesce(func.sum(Credit.quantity), 0))
            .join(RmaLineRecord, RmaLineRecord.id == Credit.rma_line_id)
            .where(RmaLineRecord.order_line_id == order_line.id)
        )
    terms = order_terms(order)
    # the fee follows the RMA line's category (the shop may have set it on the RMA)
    lines = tuple(
        replace(lt, category=line.category) if lt.line_no == number else lt for lt in terms.lines
    )
    return replace(terms, lines=lines), number, int(before or 0)


def line_refund(
    session: Session,
    settings: Settings,
    rma: Rma,
    line: RmaLineRecord,
    units: int,
    *,
    grade: str,
    merchant_fault: bool,
) -> LineRefund:
    """The refund of ``units`` units of ``line`` graded ``grade`` (minor units of the order).

    The units take the next shares of their order line after every unit credited before
    on any RMA of the order (so a line returned over several RMAs is refunded exactly
    what was paid); a line without an order line stands alone at its unit price.

    Raises:
        gateway.returns.refunds.RefundError: more units than the order line has left, or
            stored terms that cannot be paid.
    """
    terms, number, before = _terms(session, rma, line)
    policy = refund_policy(settings, grade, merchant_fault)
    refund = refund_units(terms, {number: units}, policy, already={number: before})
    return refund.lines[0]


def open_value_cents(session: Session, order: Order, new_units: Mapping[int, int]) -> int:
    """What the customer paid for everything open on ``order`` plus ``new_units``.

    ``new_units`` is ``{order line_no: units}`` of a request not stored yet; open are the
    lines of the order's RMAs in an open state (requested, authorised, in transit,
    partially received). Value = paid share (discounts, voucher, tax; no shipping) of
    those units, per :func:`gateway.returns.refunds.refund_units`, units capped at what
    the line had. The approval threshold is compared with it, so splitting a return into
    smaller requests does not skip the lead.
    """
    number_of = {ol.id: i for i, ol in enumerate(order.lines, start=1)}
    line_no_to_number = {ol.line_no: i for i, ol in enumerate(order.lines, start=1)}
    units: dict[int, int] = {}
    for n, q in new_units.items():
        if n in line_no_to_number:
            units[line_no_to_number[n]] = units.get(line_no_to_number[n], 0) + q
    rows = session.execute(
        select(RmaLineRecord.order_line_id, func.sum(RmaLineRecord.quantity))
        .join(RmaLineRecord.rma)
        .where(Rma.order_ref == order.order_ref, Rma.state.in_(OPEN_STATES))
        .group_by(RmaLineRecord.order_line_id)
    )
    for order_line_id, quantity in rows:
        if order_line_id in number_of:
            number = number_of[order_line_id]
            units[number] = units.get(number, 0) + int(quantity or 0)
    terms = order_terms(order)
    capped = {
        ln.line_no: min(units[ln.line_no], ln.quantity) for ln in terms.lines if ln.line_no in units
    }
    return refund_units(terms, capped, RefundPolicy(merchant_fault=True)).paid_cents


def unit_paid_cents(order: Order, order_line: OrderLine) -> int:
    """What one unit of ``order_line`` cost on average (floor), minor units of the order.

    An RMA line's ``unit_price_cents`` (paid per unit after discounts, tax included): the
    value stations weigh a parcel by.
    """
    number = next(i for i, ol in enumerate(order.lines, start=1) if ol.id == order_line.id)
    paid = paid_lines(order_terms(order))[number - 1]
    return paid.paid_cents // paid.quantity
