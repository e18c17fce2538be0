"""Credits from proof, per unit, kept apart from the physical side (issue 14).

A station reports what a parcel proved (a :class:`protocol.ParcelEvent`, schema 2: the RMA
units it claims, each with its evidence and ``verified``, and ``divert_confirmed``). For
a parcel of a known RMA that can still receive goods, :func:`after_ingest` (called by the
event ingestion, in the same transaction) receives the claimed units, one
:class:`gateway.models.RmaUnit` each (unique per RMA line and unit), and for each:

- divert not confirmed (``divert_confirmed`` False): the unit is booked to the
  ``UNCONFIRMED`` stock location and credits nothing; it waits for a lead to confirm
  where it is (``divert_unconfirmed``);
- sorted to quarantine (disposition not a grade): it waits for a lead (``quarantine``);
- not verified (label only, or an identifier the line does not declare): it waits for a
  lead (``unverified``);
- verified, sorted to ``restock`` / ``refurbish`` / ``recycle`` (the grade): one
  :class:`Credit` and one ``return_in`` :class:`StockMovement` at the grade's location
  (``RS_STOCK_LOCATIONS``), unique per unit, so exactly once whatever is redelivered.

A parcel of an RMA that cannot receive goods (cancelled or expired while it was on the
belt, received already) receives and credits nothing; sorted to a grade lane, it raises a
``goods_not_received`` alarm naming the RMA, the parcel and the lane, for a lead to find.

A version 1 event proves nothing: the RMA's outstanding units are received as
``unproved_event`` and wait for a lead. A lead decides per unit (:func:`decide_unit`:
verify, regrade, refuse, confirm an unconfirmed divert's location) or for every waiting
unit at once (:func:`decide`). Once every unit of a received RMA is decided, the RMA is
graded and moves to refunded / credited / exchanged (closed when nothing was credited).

The amount of one unit is :func:`unit_amount` (the one place the refund arithmetic is
called: :func:`gateway.services.refund_terms.line_refund`, by the rules of
:mod:`gateway.returns.refunds`, in minor units of the order's currency: what was paid for
the unit after order discount, voucher and line discount, tax in proportion, shipping
paid by policy): a reason that is the merchant's fault (defective, wrong item, ...) gets
100 % and no restocking fee; otherwise ``credit_percent_by_grade[grade]`` % minus the
category's restocking fee (``restocking_fee_percent``), never below 0. The return shipping
the shop spent (``RS_RETURN_SHIPPING_CENTS`` per RMA) is spread over the RMA's units, the
remainder on its first unit. A refused unit goes to the stock location of the lead's
destination (return to vendor, scrap, back to the customer) with a write-off
(:mod:`gateway.services.write_offs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from gateway.connectors import base as connectors
from gateway.models import Credit, ReturnReason, Rma, RmaLineRecord, RmaUnit, StockMovement, utcnow
from gateway.returns.refunds import percent_of
from gateway.services import alarms, refund_terms, webhooks
from gateway.services.lifecycle import RESOLUTION_TRIGGER, IllegalTransition, fire
from gateway.services.refund_terms import line_refund, recovery_percent
from gateway.services.rma_writer import StaleRma, apply_change, load_for_change
from gateway.services.rmas import receive_units
from gateway.services.row_sink import add_row, sink_of
from gateway.services.write_offs import refusal_location, write_off_unit
from gateway.settings import Settings
from protocol import ParcelEvent, UnitReceipt

log = logging.getLogger(__name__)

GRADES = ("restock", "refurbish", "recycle")
RECEIVABLE_STATES = ("authorized", "in_transit", "partially_received")
UNCONFIRMED = "unconfirmed"  # the stock_locations key of units whose divert was not seen
AWAITING, CREDITED, REFUSED = "awaiting", "credited", "refused"
UnitAction = Literal["verify", "regrade", "refuse", "confirm_location"]
UNIT_ACTIONS: tuple[UnitAction, ...] = ("verify", "regrade", "refuse", "confirm_location")


class UnitDecisionError(ValueError):
    """A unit decision that cannot apply: unknown unit, already decided, no grade (422)."""


class _Config:
    settings: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Set the policy used by :func:`after_ingest` (the app's lifespan does).

    ``configure(None)`` switches automatic crediting off.
    """
    _Config.settings = settings


@dataclass(frozen=True)
class UnitAmount:
    """What one unit is worth, in minor units of the RMA's currency.

    ``paid_cents``: what was paid for the unit (after discounts, tax included);
    ``amount_cents``: what is credited (goods and, by policy, shipping paid), of which
    ``tax_refund_cents`` tax and ``shipping_refund_cents`` shipping;
    ``restocking_fee_cents``: what was kept; ``recovered_value_cents``: what the item is
    worth back in stock at its grade (by category, from settings).
    """

    paid_cents: int
    amount_cents: int
    restocking_fee_cents: int
    recovered_value_cents: int
    tax_refund_cents: int = 0
    shipping_refund_cents: int = 0


def unit_amount(
    session: Session,
    settings: Settings,
    rma: Rma,
    line: RmaLineRecord,
    grade: str,
    *,
    merchant_fault: bool,
) -> UnitAmount:
    """The credit of the next unit of ``line`` at ``grade`` (the credit policy).

    ``grade`` is ``restock``, ``refurbish`` or ``recycle``; ``merchant_fault`` when the
    return reason is the merchant's (100 %, no fee). The unit takes the next share of its
    order line after the units credited before (so the shares sum exactly to what was
    paid); see :func:`gateway.services.refund_terms.line_refund`.

    Raises:
        gateway.returns.refunds.RefundError: more units than the order line has left.
    """
    part = line_refund(session, settings, rma, line, 1, grade=grade, merchant_fault=merchant_fault)
    return UnitAmount(
        paid_cents=part.paid_cents,
        amount_cents=part.amount_cents,
        restocking_fee_cents=part.restocking_fee_cents,
        recovered_value_cents=percent_of(
            part.paid_cents, recovery_percent(settings, grade, line.category)
        ),
        tax_refund_cents=part.tax_refund_cents,
        shipping_refund_cents=part.shipping_refund_cents,
    )


def _shipping_share(settings: Settings, rma: Rma, line: RmaLineRecord, unit_no: int) -> int:
    """Return the unit's part of the RMA's return shipping (the remainder on its first unit)."""
    total_units = sum(ln.quantity for ln in rma.lines) or 1
    share, rest = divmod(settings.return_shipping_cents, total_units)
    first = rma.lines[0].line_no == line.line_no and unit_no == 1
    return share + (rest if first else 0)


def _location(settings: Settings, key: str) -> str:
    return settings.stock_locations.get(key, key.upper())


def _book(
    session: Session,
    settings: Settings,
    rma: Rma,
    line: RmaLineRecord,
    unit: RmaUnit,
    location: str,
    *,
    kind: str,
    quantity: int = 1,
    now: datetime,
) -> None:
    """One stock-ledger entry for ``unit`` (unique per unit and kind) and its webhook."""
    add_row(
        session,
        StockMovement,
        site=rma.site,
        sku=line.sku,
        location=location,
        quantity=quantity,
        kind=kind,
        rma_line_id=line.id,
        unit_no=unit.unit_no,
        rma_number=rma.number,
        created_at=now,
    )
    if quantity > 0:
        unit.location = location
    connectors.enqueue_stock(
        session, settings, rma, line, unit, location, quantity=quantity, kind=kind, now=now
    )
    webhooks.enqueue(
        session,
        settings,
        "stock.moved",
        {
            "sku": line.sku,
            "location": location,
            "quantity": quantity,
            "kind": kind,
            "rma_number": rma.number,
            "line_no": line.line_no,
            "unit": unit.unit_no,
        },
        now=now,
        site=rma.site,
    )


def _credit(
    session: Session,
    settings: Settings,
    rma: Rma,
    line: RmaLineRecord,
    unit: RmaUnit,
    grade: str,
    *,
    actor: str,
    now: datetime,
) -> Credit:
    """Credit ``unit`` at ``grade`` and book it at the grade's location (once)."""
    reason = session.get(ReturnReason, rma.reason)
    amount = unit_amount(
        session, settings, rma, line, grade, merchant_fault=bool(reason and reason.merchant_fault)
    )
    values: dict[str, Any] = dict(
        rma_line_id=line.id,
        unit_no=unit.unit_no,
        rma_number=rma.number,
        sku=line.sku,
        category=line.category or "default",
        kind=rma.resolution,
        grade=grade,
        quantity=1,
        paid_cents=amount.paid_cents,
        amount_cents=amount.amount_cents,
        restocking_fee_cents=amount.restocking_fee_cents,
        recovered_value_cents=amount.recovered_value_cents,
        tax_refund_cents=amount.tax_refund_cents,
        shipping_refund_cents=amount.shipping_refund_cents,
        shipping_cost_cents=_shipping_share(settings, rma, line, unit.unit_no),
        currency=rma.currency,
        source=actor,
        created_at=now,
    )
    credit = Credit(**values)  # (read below by the payloads, whichever way it is written)
    sink = sink_of(session)
    if sink is None:
        session.add(credit)
    else:  # the batch's row sink writes the row; the object stays transient
        sink.add(Credit, values)
    refund_terms.note_credited(session, line, credit.quantity)
    unit.state, unit.reason, unit.grade = CREDITED, "", grade
    if unit.location is None:
        _book(
            session,
            settings,
            rma,
            line,
            unit,
            _location(settings, grade),
            kind="return_in",
            now=now,
        )
    payload = credit_payload(credit, line)
    webhooks.enqueue(session, settings, "credit.issued", payload, now=now, site=rma.site)
    connectors.enqueue_credit(session, settings, rma, line, credit, now=now)
    return credit


def credit_payload(credit: Credit, line: RmaLineRecord | None = None) -> dict[str, Any]:
    """JSON-able view of a credit (webhooks and API)."""
    return {
        "rma_number": credit.rma_number,
        **({"line_no": line.line_no} if line is not None else {}),
        "unit": credit.unit_no,
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


def _new_unit(
    line: RmaLineRecord, unit_no: int, event: ParcelEvent | None, now: datetime
) -> RmaUnit:
    unit = RmaUnit(
        unit_no=unit_no,
        state=AWAITING,
        reason="",
        verified=False,
        event_id=event.event_id if event else None,
        station_reason=event.reason[:64] if event else "",
        photo_sha256=event.photo.sha256 if event and event.photo else None,
        divert_confirmed=event.divert_confirmed if event else None,
        grade=event.disposition if event and event.disposition in GRADES else None,
        decided_by="",
        received_at=now,
    )
    line.units.append(unit)
    return unit


def _claims(rma: Rma, event: ParcelEvent) -> list[tuple[RmaLineRecord, int, UnitReceipt | None]]:
    """The units this parcel receives: new ones only, on known lines, within quantity."""
    by_no = {line.line_no: line for line in rma.lines}
    if event.schema_version < 2:  # proves nothing: what is outstanding, unproved
        return [
            (line, n, None)
            for line in rma.lines
            for n in range(line.received_quantity + 1, line.quantity + 1)
            if n not in {u.unit_no for u in line.units}
        ]
    claims: list[tuple[RmaLineRecord, int, UnitReceipt | None]] = []
    left = {line.line_no: line.quantity - line.received_quantity for line in rma.lines}
    for receipt in event.units:
        line = by_no.get(receipt.line_no)
        if line is None or receipt.sku != line.sku:
            log.warning("event %s claims unknown line %d", event.event_id, receipt.line_no)
            continue
        if left[line.line_no] <= 0:
            log.warning("event %s: line %d already fully received", event.event_id, line.line_no)
            continue
        left[line.line_no] -= 1
        taken = {u.unit_no for u in line.units} | {n for ln, n, _r in claims if ln is line}
        unit_no = receipt.unit
        if unit_no > line.quantity or unit_no in taken:  # the station's count is behind ours
            free = [n for n in range(1, line.quantity + 1) if n not in taken]
            if not free:
                log.warning(
                    "event %s: line %d already fully received", event.event_id, line.line_no
                )
                continue
            unit_no = free[0]
        claims.append((line, unit_no, receipt))
    return claims


def apply_parcel(
    session: Session,
    settings: Settings,
    rma: Rma,
    event: ParcelEvent,
    *,
    actor: str,
    now: datetime | None = None,
    record_change: Callable[[Rma, str], None] | None = None,
) -> list[RmaUnit]:
    """Receive the units the parcel claims and credit those it proved; no commit.

    Inside the caller's transaction; the change is recorded on the writer path. Returns
    the units received now (empty, nothing done, when the RMA cannot receive goods in
    its state or the parcel claims none of its outstanding units). A parcel sorted to a
    grade lane for an RMA that cannot receive goods (cancelled while it was on the belt)
    raises a ``goods_not_received`` alarm naming the RMA, the parcel and the lane, so
    the goods a lead must find are recorded (:func:`alarms.raise_goods_not_received`).

    ``record_change``: for a batch that records its changes itself, later in the same
    transaction (``record_change(rma, actor)`` instead of
    :func:`gateway.services.rma_writer.apply_change` here; the batch then calls that for
    each, with revisions it reserved at once).
    """
    if rma.state not in RECEIVABLE_STATES:
        log.info("parcel for rma %s in state %s: no credit", rma.number, rma.state)
        if event.disposition in GRADES:  # the goods are in a grade lane: a lead must know
            alarms.raise_goods_not_received(session, event, rma.state)
        return []
    claims = _claims(rma, event)
    if not claims:
        log.info("parcel %s for rma %s claims no outstanding unit", event.event_id, rma.number)
        return []
    now = now or utcnow()
    counts: dict[int, int] = {}
    for line, _n, _r in claims:
        counts[line.line_no] = counts.get(line.line_no, 0) + 1
    receive_units(rma, counts, actor=actor, note=f"sorted to {event.disposition}", at=now)
    units: list[RmaUnit] = []
    for line, unit_no, receipt in claims:
        unit = _new_unit(line, unit_no, event, now)
        if receipt is not None:
            unit.evidence, unit.identifier = receipt.evidence.value, receipt.identifier
            unit.verified = receipt.verified
        if receipt is None:
            unit.reason = "unproved_event"
        elif event.divert_confirmed is False:
            unit.reason = "divert_unconfirmed"
            _book(
                session,
                settings,
                rma,
                line,
                unit,
                _location(settings, UNCONFIRMED),
                kind="return_in",
                now=now,
            )
        elif event.disposition not in GRADES:
            unit.reason = "quarantine"
        elif not unit.verified:
            unit.reason = "unverified"
        else:
            _credit(session, settings, rma, line, unit, event.disposition, actor=actor, now=now)
        units.append(unit)
    _resolve(rma, actor=actor, now=now)
    if record_change is None:
        apply_change(session, settings, rma, actor=actor, now=now)
    else:
        record_change(rma, actor)
    return units


def _all_units(rma: Rma) -> Iterable[tuple[RmaLineRecord, RmaUnit]]:
    return ((line, unit) for line in rma.lines for unit in line.units)


def _resolve(rma: Rma, *, actor: str, now: datetime) -> None:
    """Grade and resolve a received RMA once every unit is decided; else flag the lead."""
    waiting = any(u.state == AWAITING for _l, u in _all_units(rma))
    rma.awaiting_decision = waiting
    if rma.state != "received" or waiting:
        return
    credited = sorted({u.grade or "" for _l, u in _all_units(rma) if u.state == CREDITED})
    grade = "refuse" if not credited else credited[0] if len(credited) == 1 else "mixed"
    rma.grade = grade
    fire(rma, "grade", actor=actor, note=f"grade {grade}", at=now)
    if credited:
        fire(rma, RESOLUTION_TRIGGER[rma.resolution], actor=actor, note="by credit policy", at=now)
    else:
        fire(rma, "close", actor=actor, note="credit refused", at=now)


def _desk_units(rma: Rma, now: datetime) -> None:
    """Units received at the desk (no parcel event) get their unit rows, unproved."""
    for line in rma.lines:
        taken = {u.unit_no for u in line.units}
        for n in range(1, line.received_quantity + 1):
            if n not in taken:
                _new_unit(line, n, None, now).reason = "desk_receipt"


def _decide_one(
    session: Session,
    settings: Settings,
    rma: Rma,
    line: RmaLineRecord,
    unit: RmaUnit,
    action: UnitAction,
    *,
    grade: str | None,
    destination: str | None = None,
    actor: str,
    now: datetime,
) -> Credit | None:
    if unit.state != AWAITING:
        raise UnitDecisionError(
            f"RMA {rma.number!r} line {line.line_no} unit {unit.unit_no} is already {unit.state}"
        )
    unit.decided_by, unit.decided_at = actor, now
    unconfirmed = _location(settings, UNCONFIRMED)
    if action == "refuse":
        _refuse(
            session,
            settings,
            rma,
            line,
            unit,
            destination or settings.refusal_default,
            actor=actor,
            now=now,
        )
        return None
    chosen = grade or unit.grade
    if chosen not in GRADES:
        raise UnitDecisionError(f"{action} needs a grade (one of {', '.join(GRADES)})")
    if unit.location == unconfirmed:  # the lead says where it is: move it there
        _book(
            session,
            settings,
            rma,
            line,
            unit,
            unconfirmed,
            kind="confirm_out",
            quantity=-1,
            now=now,
        )
        _book(
            session,
            settings,
            rma,
            line,
            unit,
            _location(settings, chosen),
            kind="confirm_in",
            now=now,
        )
    unit.grade = chosen
    if action == "confirm_location" and not unit.verified:
        unit.reason = "unverified"  # where it is is known now; what it is is not
        return None
    if action != "confirm_location" and not unit.verified:
        unit.verified, unit.evidence = True, "lead"  # a person checked what it is
    return _credit(session, settings, rma, line, unit, chosen, actor=actor, now=now)


def _refuse(
    session: Session,
    settings: Settings,
    rma: Rma,
    line: RmaLineRecord,
    unit: RmaUnit,
    destination: str,
    *,
    actor: str,
    now: datetime,
) -> None:
    """No credit for ``unit``: it goes to ``destination``'s location, written off (once)."""
    location = refusal_location(settings, destination)
    if unit.location is not None:  # booked somewhere already (unconfirmed, or found): out
        _book(
            session,
            settings,
            rma,
            line,
            unit,
            unit.location,
            kind="refused_out",
            quantity=-1,
            now=now,
        )
    _book(session, settings, rma, line, unit, location, kind="refused", now=now)
    write_off_unit(
        session,
        settings,
        rma,
        line,
        unit.unit_no,
        destination,
        shipping_cost_cents=_shipping_share(settings, rma, line, unit.unit_no),
        actor=actor,
        now=now,
    )
    unit.state, unit.reason = REFUSED, ""


def decide_unit(
    session: Session,
    settings: Settings,
    rma: Rma,
    line_no: int,
    unit_no: int,
    action: UnitAction,
    *,
    grade: str | None = None,
    destination: str | None = None,
    actor: str,
    now: datetime | None = None,
) -> Credit | None:
    """A lead's decision on one waiting unit; recorded on the writer path; no commit.

    ``verify``: the lead checked the item (at its station grade, or ``grade``) and it is
    credited; ``regrade``: the same with another ``grade``; ``confirm_location``: an
    unconfirmed divert was found at the location of ``grade`` (the stock moves there; a
    verified unit is then credited, an unverified one still waits); ``refuse``: no credit,
    the unit goes to ``destination`` (``return_to_vendor``, ``scrap``,
    ``return_to_customer``; default ``settings.refusal_default``) and is written off.

    Returns:
        The credit issued now, or None.

    Raises:
        UnitDecisionError: unknown line or unit, unit already decided, no grade to use.
        UnknownDestination: ``destination`` is not a refusal destination.
        IllegalTransition: a completed RMA cannot be graded (e.g. closed meanwhile).
        StaleRma: another writer changed the RMA since it was read.
    """
    now = now or utcnow()
    _desk_units(rma, now)
    line = next((ln for ln in rma.lines if ln.line_no == line_no), None)
    unit = next((u for u in line.units if u.unit_no == unit_no), None) if line else None
    if line is None or unit is None:
        raise UnitDecisionError(
            f"RMA {rma.number!r} has no received unit {unit_no} on line {line_no}"
        )
    credit = _decide_one(
        session,
        settings,
        rma,
        line,
        unit,
        action,
        grade=grade,
        destination=destination,
        actor=actor,
        now=now,
    )
    _resolve(rma, actor=actor, now=now)
    apply_change(session, settings, rma, actor=actor, now=now)
    return credit


def decide(
    session: Session,
    settings: Settings,
    rma: Rma,
    grade: str,
    *,
    destination: str | None = None,
    actor: str,
    now: datetime | None = None,
) -> list[Credit]:
    """A lead's decision on every unit of an RMA waiting for one; no commit.

    ``grade`` is ``restock``, ``refurbish``, ``recycle`` (every waiting unit is verified
    at that grade and credited) or ``refuse`` (none is; the units go to ``destination``,
    default ``settings.refusal_default``, and are written off). Recorded on the writer path.

    Returns:
        The credits issued now.

    Raises:
        IllegalTransition: when no unit waits (nothing to decide: e.g. decided already).
        StaleRma: another writer changed the RMA since it was read.
    """
    now = now or utcnow()
    _desk_units(rma, now)
    if not any(u.state == AWAITING for _l, u in _all_units(rma)):
        raise IllegalTransition(rma.number, "grade", rma.state)
    action: UnitAction = "refuse" if grade == "refuse" else "regrade"
    issued = [
        _decide_one(
            session,
            settings,
            rma,
            line,
            unit,
            action,
            grade=None if grade == "refuse" else grade,
            destination=destination,
            actor=actor,
            now=now,
        )
        for line, unit in list(_all_units(rma))
        if unit.state == AWAITING
    ]
    _resolve(rma, actor=actor, now=now)
    apply_change(session, settings, rma, actor=actor, now=now)
    return [c for c in issued if c is not None]


def configured() -> Settings | None:
    """The policy :func:`after_ingest` credits by (None: automatic crediting is off)."""
    return _Config.settings


def after_ingest(session: Session, stored: ParcelEvent) -> None:
    """Hook of the event ingestion: receive and credit a newly stored parcel event.

    Runs in a savepoint of the ingesting transaction, so the event and its credits
    commit together, and a failure here is logged without losing the event.

    Raises:
        StaleRma: another writer changed the RMA meanwhile (the caller retries the whole
            ingestion, so the event is decided on the RMA's current state).
        sqlalchemy.exc.OperationalError: the database failed (a deadlock with another
            replica, a lock timeout, a lost connection): the caller retries the ingestion,
            rather than storing the event without its credits.
    """
    settings = _Config.settings
    if settings is None or not stored.rma_number:
        return
    try:
        with session.begin_nested():
            rma = load_for_change(session, stored.rma_number)
            if rma is not None:
                apply_parcel(session, settings, rma, stored, actor=f"station:{stored.station}")
    except (StaleRma, StaleDataError, OperationalError):
        raise
    except Exception:
        log.exception("crediting failed for event %s", stored.event_id)
