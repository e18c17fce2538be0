"""Routes of the public return form.

``GET /returns`` identify the order → ``POST /returns`` (CSRF, rate-limited) → 303 to
``GET /returns/order/{link}`` (a signed, one-hour link) choose lines, reason, resolution →
``POST /returns/order/{link}`` the policy decides → 303 to ``GET /returns/rma/{ticket}``
(outcome, refund estimate, label ``/returns/rma/{ticket}/label.pdf``).
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import date
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi_csrf_protect.exceptions import CsrfProtectError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import SessionDep, SettingsDep
from gateway.models import Order, Rma
from gateway.returns import policy
from gateway.schemas import RESOLUTIONS
from gateway.services.labels import render_label
from gateway.services.orders import get_order
from gateway.services.rmas import get_rma
from gateway.settings import Settings
from gateway.web.returns.render import (
    ORDER_LINK_MAX_AGE_S,
    ReturnsCsrf,
    language,
    page,
    sign,
    unsign,
)
from protocol.text import NUL

log = logging.getLogger(__name__)

router = APIRouter(prefix="/returns", tags=["returns form"], include_in_schema=False)

ORDER_SALT = "returns-order"
RMA_SALT = "returns-rma"
#: States whose parcel a station accepts: the label is offered only then.
LABEL_STATES = frozenset({"authorized", "in_transit", "partially_received"})


async def _form(request: Request, settings: Settings) -> dict[str, str] | None:
    """Parse the posted form; None when its CSRF token does not check out.

    NUL characters are removed from the values: no browser sends one, PostgreSQL refuses
    them in text (a lookup or write with one failed: a 500 from an anonymous post), and
    SQLite would store them.
    """
    form = await request.form()
    try:
        await ReturnsCsrf().validate_csrf(request, secret_key=settings.key("returns-csrf"))
    except CsrfProtectError as exc:
        log.warning("return form: csrf refused from %s: %s", _ip(request), exc)
        return None
    return {k: v.replace(NUL, "") for k, v in form.items() if isinstance(v, str)}


_QTY_FIELD = re.compile(r"qty-([0-9]{1,4})")
_QTY_VALUE = re.compile(r"[0-9]{1,5}")
MAX_FORM_QUANTITY = 10_000


def _quantities(form: dict[str, str]) -> dict[int, int]:
    """The units chosen per order line: ``qty-<line>`` fields (ASCII digits only).

    A field whose line number is not 1 to 4 ASCII digits is not a quantity (``qty-²``,
    which ``str.isdigit`` takes and ``int`` refuses, or thousands of digits, past
    Python's int conversion limit: both were a 500); a value that is not 1 to 5 ASCII
    digits counts as 0, and a quantity is at most :data:`MAX_FORM_QUANTITY`.
    """
    units: dict[int, int] = {}
    for key, value in form.items():
        field = _QTY_FIELD.fullmatch(key)
        if field is None:
            continue
        count = _QTY_VALUE.fullmatch(value.strip())
        units[int(field.group(1))] = min(int(count.group(0)), MAX_FORM_QUANTITY) if count else 0
    return units


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _order_for(session: Session, settings: Settings, link: str) -> Order:
    ref = unsign(settings, ORDER_SALT, link, ORDER_LINK_MAX_AGE_S)
    order = get_order(session, ref) if ref else None
    if order is None:
        raise HTTPException(404, detail="this link is invalid or has expired")
    return order


def _rma_for(session: Session, settings: Settings, ticket: str) -> Rma:
    number = unsign(settings, RMA_SALT, ticket, None)
    rma = get_rma(session, number) if number else None
    if rma is None:
        raise HTTPException(404, detail="unknown return")
    return rma


@router.get("", response_class=HTMLResponse)
def identify(request: Request, settings: SettingsDep) -> HTMLResponse:
    """The first step: order number and e-mail address."""
    return page(request, settings, "identify.html", {"error": ""}, csrf=True)


@router.post("", response_class=HTMLResponse)
async def find_order(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Check the order number and e-mail pair, then go to the order's return page.

    An unknown order and a wrong e-mail get the same neutral answer. Attempts are
    rate-limited per client IP and per order.
    """
    form = await _form(request, settings)
    if form is None:
        ctx = {"error": "expired"}
        return page(request, settings, "identify.html", ctx, status_code=403, csrf=True)
    ref = form.get("order_number", "").strip()[:64]
    email = form.get("email", "").strip().lower()[:254]
    values = {"order_number": ref, "email": email}
    if not request.app.state.returns_limiter.allow(_ip(request), ref):
        log.warning("return form: rate limit ip=%s order=%s", _ip(request), ref)
        ctx = {"error": "rate_limited", **values}
        return page(request, settings, "identify.html", ctx, status_code=429, csrf=True)
    order = get_order(session, ref) if ref else None
    if order is None or not email or order.customer_email != email:
        ctx = {"error": "not_found", **values}
        return page(request, settings, "identify.html", ctx, status_code=404, csrf=True)
    link = sign(settings, ORDER_SALT, order.order_ref)
    return RedirectResponse(f"/returns/order/{link}", status_code=303)


def _choose(
    request: Request,
    session: Session,
    settings: Settings,
    order: Order,
    link: str,
    *,
    error: str = "",
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    lines = policy.line_choices(session, settings, order)
    context = {
        "order": order,
        "link": link,
        "lines": lines,
        "reasons": policy.active_reasons(session),
        "note_required": settings.note_required_reasons,
        "resolutions": RESOLUTIONS,
        "error": error,
        "values": values or {},
        # this page's token: the same choices sent twice from it are one return
        "submission": secrets.token_urlsafe(16),
        "any_returnable": any(line.returnable > 0 for line in lines),
    }
    return page(request, settings, "choose.html", context, status_code=status_code, csrf=True)


@router.get("/order/{link}", response_class=HTMLResponse)
def choose(link: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The second step: lines and quantities (only what is returnable), reason, resolution."""
    return _choose(request, session, settings, _order_for(session, settings, link), link)


@router.post("/order/{link}", response_class=HTMLResponse)
async def request_return(
    link: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """Let the policy decide at once; refused answers say why, others go to the outcome.

    The same page sent twice with the same choices goes to the first one's outcome. A
    creation that lost a race with a change of the order shows the form again (409,
    the customer's values kept, the order as it is now) asking them to check and send
    it again; nothing is stored then. The database work runs in a worker thread (it may
    wait for the write lock), not on the event loop.
    """
    form = await _form(request, settings)
    return await run_in_threadpool(_request_return, link, request, session, settings, form)


def _request_return(
    link: str,
    request: Request,
    session: Session,
    settings: Settings,
    form: dict[str, str] | None,
) -> Response:
    """:func:`request_return`'s work once the form is read (``form`` None: CSRF refused)."""
    order = _order_for(session, settings, link)
    if form is None:
        return _choose(request, session, settings, order, link, error="expired", status_code=403)
    units = _quantities(form)
    reason = form.get("reason", "")
    note = form.get("note", "")[:4000]
    resolution = form.get("resolution", "")
    values = {"units": units, "reason": reason, "note": note, "resolution": resolution}
    try:
        outcome = policy.submit(
            session,
            settings,
            order,
            units=units,
            reason=reason,
            note=note,
            resolution=resolution,
            language=language(request, settings),
            submission=form.get("submission", ""),
        )
    except (policy.FormError, policy.FormConflict) as exc:
        # the form again with the customer's values: 422 for their choices, 409 when
        # something changed while the return was being stored (nothing was)
        conflict = isinstance(exc, policy.FormConflict)
        if conflict:
            log.warning("return form: not stored order=%s code=%s", order.order_ref, exc.code)
        return _choose(
            request,
            session,
            settings,
            order,
            link,
            error=exc.code,
            values=values,
            status_code=409 if conflict else 422,
        )
    if outcome.rma is None:
        log.info("return form: refused order=%s code=%s", order.order_ref, outcome.code)
        facts = dict(outcome.facts)
        if "last_day" in facts:
            facts["last_day_date"] = date.fromisoformat(str(facts["last_day"]))
        # the returns already holding the line's units (e.g. sent from another tab)
        returns = [
            (number, sign(settings, RMA_SALT, number))
            for number in facts.get("rmas", [])
            if outcome.code == "quantity_exceeds_returnable"
        ]
        ctx = {"order": order, "code": outcome.code, "facts": facts, "link": link}
        return page(request, settings, "refused.html", {**ctx, "returns": returns})
    ticket = sign(settings, RMA_SALT, outcome.rma.number)
    return RedirectResponse(f"/returns/rma/{ticket}", status_code=303)


@router.get("/rma/{ticket}", response_class=HTMLResponse)
def outcome(ticket: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The outcome: state, RMA number, refund estimate and (when authorised) the label."""
    rma = _rma_for(session, settings, ticket)
    estimates = policy.estimate_rma(session, settings, rma)
    context = {
        "rma": rma,
        "ticket": ticket,
        "estimates": estimates,
        "total_paid": sum(e.paid_cents for e in estimates),
        "total_fee": sum(e.fee_cents for e in estimates),
        "total_refund": sum(e.refund_cents for e in estimates),
        "label": rma.state in LABEL_STATES,
        # the RMA's site receives the parcel (the order's site, else the default site)
        "receiving_address": settings.site_address(rma.site).replace("\\n", "\n").splitlines(),
    }
    return page(request, settings, "outcome.html", context)


@router.get("/rma/{ticket}/label.pdf")
def label(ticket: str, session: SessionDep, settings: SettingsDep) -> Response:
    """The printable return label of an authorised return (404 before approval)."""
    rma = _rma_for(session, settings, ticket)
    if rma.state not in LABEL_STATES:
        raise HTTPException(404, detail="no label for a return in this state")
    return Response(
        render_label(rma, settings.site_address(rma.site), lang=settings.default_language),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{rma.number}.pdf"'},
    )


@router.get("/logo")
def logo(settings: SettingsDep) -> FileResponse:
    """The shop's logo (``RS_SHOP_LOGO_PATH``); 404 when none is set."""
    if not settings.shop_logo_path or not Path(settings.shop_logo_path).is_file():
        raise HTTPException(404, detail="no logo")
    return FileResponse(settings.shop_logo_path)
