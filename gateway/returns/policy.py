"""What the public return form may offer and how a customer's request is decided.

The decision reuses the gateway's RMA policies (:func:`gateway.services.rmas.create_rma`:
window in the shop's calendar, returnable quantities) and adds the form's own: the
resolutions allowed per category, the note some reasons require, and the value above
which a lead approves the return first (the RMA then stays ``requested``, unannounced).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from gateway.models import Order, ReturnReason, Rma, utcnow
from gateway.schemas import RESOLUTIONS, RmaDraft, RmaLineDraft
from gateway.services import idempotency
from gateway.services.policies import (
    PolicyViolation,
    by_category,
    local_date,
    percent_of,
    returnable_for,
)
from gateway.services.reasons import UnknownReason, list_reasons
from gateway.services.refund_terms import open_value_cents, unit_paid_cents
from gateway.services.rmas import CreationConflict, DuplicateRma, create_rma, get_rma
from gateway.settings import Settings

log = logging.getLogger(__name__)

FORM_ACTOR = "customer:return-form"
#: How many fresh RMA numbers a submission tries when the generated one is taken.
NUMBER_ATTEMPTS = 3
#: Longest submission token (the form page's ``submission`` field) kept for the twin check.
MAX_SUBMISSION_LENGTH = 64
#: Refusals of a draft built from the order as the form read it that only a change of the
#: order since then explains (the form names each line by its number and SKU).
ORDER_CHANGED_CODES = frozenset({"unknown_order_line", "sku_mismatch"})


class FormError(ValueError):
    """The customer's choices are incomplete or contradictory (the form is shown again).

    ``code`` names the problem for the message catalogue, e.g. ``no_units``.
    """

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class FormConflict(Exception):
    """Something changed while the return was being stored; nothing was (HTTP 409).

    ``code`` names the message: ``order_changed`` (the order was updated meanwhile: the
    customer checks the form, shown again with the order as it is now, and sends it
    again) or ``try_again`` (every generated RMA number was taken: sending it again
    works).
    """

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class _Twin(Exception):
    """The same submission (page and choices) committed first: its RMA is ``number``."""

    def __init__(self, number: str) -> None:
        super().__init__(number)
        self.number = number


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
    """The policy's answer: ``authorized``, ``pending``, ``refused`` or ``already_requested``.

    ``pending``: a lead decides; ``already_requested``: a twin submission stored ``rma``
    first (:func:`submit`).
    """

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


def _twin_principal(order: Order) -> str:
    """Whose submissions a twin record is of: the form, on ``order``."""
    return f"return-form:{order.order_ref}"[:128]


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
    submission: str = "",
    now: datetime | None = None,
) -> Outcome:
    """Decide a customer's return at once and store the RMA unless it is refused.

    Authorised RMAs are announced to the stations after commit (the existing path). When
    the order's open value with this request (:func:`open_value_cents`: what was paid for
    the units on the order's open RMAs and these) is above
    ``settings.approval_threshold_cents``, the RMA stays ``requested`` for a lead.
    ``language`` is the form's language: the RMA's customer language (its e-mails), else
    the order's.

    ``submission`` is the token of the form page the choices were sent from (empty or
    longer than :data:`MAX_SUBMISSION_LENGTH`: no twin check). The same page sent again
    with the same choices (a double click, a second tab of one page, a reload) is a twin:
    its first RMA is the outcome (``already_requested``), also when the first committed
    while this one ran (looked up again under the site's write lock); nothing more is
    stored. The token and choices are stored with the RMA (an
    :class:`~gateway.models.IdempotencyRecord`, in its transaction).

    A generated RMA number that is taken is replaced by a fresh one (up to
    :data:`NUMBER_ATTEMPTS` in all). Whenever it raises, nothing was stored.

    Raises:
        FormError: no unit chosen, unknown reason (also one deactivated while the RMA was
            being created), missing note, resolution not allowed for a chosen line's
            category, or a line that is not on the order.
        FormConflict: ``order_changed`` when the order changed under the creation (a line
            gone or another SKU: :class:`~gateway.services.rmas.CreationConflict` or a
            refusal in :data:`ORDER_CHANGED_CODES`); ``try_again`` when every number
            tried was taken.
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
    twin_key = ""
    principal = _twin_principal(order)
    digest = ""
    if submission and len(submission) <= MAX_SUBMISSION_LENGTH:
        choices = {"units": chosen, "reason": reason, "note": note, "resolution": resolution}
        digest = idempotency.request_hash("POST", principal, choices)
        twin_key = f"{submission}.{digest}"  # another choice on the same page: no twin
        twin = _stored_twin(session, principal, twin_key, digest)
        if twin is not None:
            return twin
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

    def find_twin() -> None:
        # under the site's write lock: a twin that committed while this one ran is seen
        if twin_key:
            record = idempotency.lookup(session, principal, twin_key, digest)
            if record is not None:
                raise _Twin(str(record.response["number"]))

    def remember(rma: Rma) -> None:
        if twin_key:
            body = {"number": rma.number}
            idempotency.remember(session, principal, twin_key, digest, 303, body)

    for attempt in range(1, NUMBER_ATTEMPTS + 1):
        try:
            rma = create_rma(
                session,
                settings,
                draft,
                actor=FORM_ACTOR,
                now=now,
                after_lock=find_twin,
                before_commit=remember,
            )
        except _Twin as exc:
            log.info("return form: twin submission order=%s rma=%s", order.order_ref, exc.number)
            return _twin_outcome(session, exc.number)
        except DuplicateRma as exc:  # a generated number: another one is as good
            log.warning(
                "return form: generated number taken order=%s number=%s attempt=%d",
                order.order_ref,
                exc.number,
                attempt,
            )
            continue
        except CreationConflict as exc:
            # a twin on another site's lock breaks the record's unique key: its RMA
            twin = _stored_twin(session, principal, twin_key, digest) if twin_key else None
            if twin is not None:
                return twin
            log.warning(
                "return form: order changed under the creation order=%s number=%s",
                order.order_ref,
                exc.number,
            )
            raise FormConflict("order_changed") from exc
        except UnknownReason as exc:  # deactivated since the check above
            log.warning("return form: reason gone order=%s: %s", order.order_ref, exc)
            raise FormError("no_reason") from exc
        except PolicyViolation as exc:
            if exc.code in ORDER_CHANGED_CODES:
                log.warning(
                    "return form: order changed under the creation order=%s code=%s",
                    order.order_ref,
                    exc.code,
                )
                raise FormConflict("order_changed") from exc
            facts = dict(exc.details)
            index = int(facts.get("line_no") or 0) - 1
            if 0 <= index < len(draft.lines):
                facts["sku"] = draft.lines[index].sku
            return Outcome("refused", code=exc.code, facts=facts)
        return Outcome("authorized" if authorize else "pending", rma=rma)
    log.error(
        "return form: no free RMA number in %d tries order=%s", NUMBER_ATTEMPTS, order.order_ref
    )
    raise FormConflict("try_again")


def _stored_twin(session: Session, principal: str, key: str, digest: str) -> Outcome | None:
    """The outcome of the twin submission ``key`` already stored, or None."""
    record = idempotency.lookup(session, principal, key, digest)
    if record is None:
        return None
    log.info(
        "return form: twin submission principal=%s rma=%s", principal, record.response["number"]
    )
    return _twin_outcome(session, str(record.response["number"]))


def _twin_outcome(session: Session, number: str) -> Outcome:
    rma = get_rma(session, number)
    if rma is None:  # the record is only ever stored with its RMA, and RMAs stay
        raise RuntimeError(f"twin record names no RMA {number!r}")
    return Outcome("already_requested", rma=rma)
