"""What the public return form may offer and how a customer's request is decided.

The decision reuses the gateway's RMA policies (:func:`gateway.services.rmas.create_rma`:
window in the shop's calendar, returnable quantities) and adds the form's own: the
resolutions allowed per category, the note some reasons require, and the value above
which a lead approves the return first (the RMA then stays ``requested``, unannounced).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from gateway.models import Order, ReturnReason, Rma, utcnow
from gateway.schemas import RESOLUTIONS, RmaDraft, RmaLineDraft
from gateway.services.policies import (
    PolicyViolation,
    by_category,
    local_date,
    percent_of,
    returnable_for,
)
from gateway.services.reasons import list_reasons
from gateway.services.refund_terms import open_value_cents, unit_paid_cents
from gateway.services.rmas import create_rma
from gateway.settings import Settings

FORM_ACTOR = "customer:return-form"


class FormError(ValueError):
    """The customer's choices are incomplete or contradictory (the form is shown again).

    ``code`` names the problem for the message catalogue, e.g. ``no_units``.
    """

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class LineChoice:
    """One order line as the form offers it."""

    line_no: int
    sku: str
    name: str
    category: str | None
    unit_price_cents: int
    delivered: int
    returnable: int
    last_day: date | None
    resolutions: tuple[str, ...]


@dataclass(frozen=True)
class Estimate:
    """Refund estimate of one returned line (minor units), assuming resellable condition."""

    line_no: int
    sku: str
    quantity: int
    paid_cents: int
    fee_cents: int

    @property
    def refund_cents(self) -> int:
        """What the customer gets back for the line: paid minus the restocking fee."""
        return max(0, self.paid_cents - self.fee_cents)


@dataclass
class Outcome:
    """The policy's answer: ``authorized``, ``pending`` (a lead decides) or ``refused``."""

    status: str
    rma: Rma | None = None
    code: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


def allowed_resolutions(settings: Settings, category: str | None) -> tuple[str, ...]:
    """Resolutions the customer may ask for on a line of ``category``, in canonical order."""
    allowed = set(by_category(settings.resolutions_by_category, category) or RESOLUTIONS)
    return tuple(r for r in RESOLUTIONS if r in allowed)


def line_choices(session: Session, settings: Settings, order: Order) -> list[LineChoice]:
    """The order's lines with what may still be returned and the window's last day."""
    delivered_on = local_date(order.delivered_at, settings.zone) if order.delivered_at else None
    out: list[LineChoice] = []
    for line in order.lines:
        days = int(by_category(settings.return_window_days, line.category))
        out.append(
            LineChoice(
                line_no=line.line_no,
                sku=line.sku,
                name=line.name,
                category=line.category,
                unit_price_cents=unit_paid_cents(order, line),
                delivered=line.delivered_quantity,
                returnable=returnable_for(session, line).returnable,
                last_day=delivered_on + timedelta(days=days) if delivered_on else None,
                resolutions=allowed_resolutions(settings, line.category),
            )
        )
    return out


def estimate(
    settings: Settings,
    lines: Iterable[tuple[int, str, str | None, int, int]],
    merchant_fault: bool,
) -> list[Estimate]:
    """Refund estimate per line ``(line_no, sku, category, unit_price_cents, quantity)``.

    Prorated per unit: the unit price actually paid (after discounts) x units returned;
    the category's restocking fee is taken off unless the reason is the merchant's fault.
    The final credit follows the condition graded at the warehouse.
    """
    out: list[Estimate] = []
    for line_no, sku, category, unit_price, qty in lines:
        if qty <= 0:
            continue
        paid = unit_price * qty
        fee = 0
        if not merchant_fault:
            fee = percent_of(paid, float(by_category(settings.restocking_fee_percent, category)))
        out.append(Estimate(line_no, sku, qty, paid, min(fee, paid)))
    return out


def estimate_rma(session: Session, settings: Settings, rma: Rma) -> list[Estimate]:
    """The refund estimate of a stored RMA (its lines, prices and reason)."""
    reason = session.get(ReturnReason, rma.reason)
    fault = bool(reason and reason.merchant_fault)
    rows = [(ln.line_no, ln.sku, ln.category, ln.unit_price_cents, ln.quantity) for ln in rma.lines]
    return estimate(settings, rows, fault)


def active_reasons(session: Session) -> list[tuple[str, str, bool]]:
    """``(code, label, merchant_fault)`` of every active reason, ordered by code."""
    return [(r.code, r.label, r.merchant_fault) for r in list_reasons(session) if r.active]


def _single(known: list[str], delivered: int) -> str | None:
    """The one serial / UID of a line delivered as a single unit (else unknowable)."""
    return known[0] if delivered == 1 and len(known) == 1 else None


def submit(
    session: Session,
    settings: Settings,
    order: Order,
    *,
    units: dict[int, int],
    reason: str,
    note: str,
    resolution: str,
    language: str = "",
    now: datetime | None = None,
) -> Outcome:
    """Decide a customer's return at once and store the RMA unless it is refused.

    Authorised RMAs are announced to the stations after commit (the existing path). When
    the order's open value with this request (:func:`open_value_cents`: what was paid for
    the units on the order's open RMAs and these) is above
    ``settings.approval_threshold_cents``, the RMA stays ``requested`` for a lead.
    ``language`` is the form's language: the RMA's customer language (its e-mails), else
    the order's.

    Raises:
        FormError: no unit chosen, unknown reason, missing note, resolution not allowed
            for a chosen line's category, or a line that is not on the order.
    """
    now = now or utcnow()
    chosen = {n: q for n, q in units.items() if q > 0}
    if not chosen:
        raise FormError("no_units")
    reasons = {code: fault for code, _label, fault in active_reasons(session)}
    if reason not in reasons:
        raise FormError("no_reason")
    if reason in settings.note_required_reasons and not note.strip():
        raise FormError("note_required")
    by_no = {line.line_no: line for line in order.lines}
    if any(n not in by_no for n in chosen):
        raise FormError("unknown_line")
    if resolution not in RESOLUTIONS or any(
        resolution not in allowed_resolutions(settings, by_no[n].category) for n in chosen
    ):
        raise FormError("resolution_not_allowed")
    threshold = settings.approval_threshold_cents
    authorize = threshold is None or open_value_cents(session, order, chosen) <= threshold
    draft = RmaDraft(
        order_ref=order.order_ref,
        reason=reason,
        resolution=resolution,
        notes=note.strip()[:4000],
        authorize=authorize,
        customer_language=language or None,
        lines=[
            RmaLineDraft(
                sku=by_no[n].sku,
                quantity=q,
                order_line=n,
                gtin=by_no[n].gtin,
                category=by_no[n].category,
                serial=_single(by_no[n].serials, by_no[n].delivered_quantity),
                rfid_uid=_single(by_no[n].rfid_uids, by_no[n].delivered_quantity),
            )
            for n, q in sorted(chosen.items())
        ],
    )
    try:
        rma = create_rma(
            session,
            settings,
            draft,
            actor=FORM_ACTOR,
            now=now,
        )
    except PolicyViolation as exc:
        facts = dict(exc.details)
        index = int(facts.get("line_no") or 0) - 1
        if 0 <= index < len(draft.lines):
            facts["sku"] = draft.lines[index].sku
        return Outcome("refused", code=exc.code, facts=facts)
    return Outcome("authorized" if authorize else "pending", rma=rma)
