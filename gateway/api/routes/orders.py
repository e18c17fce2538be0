"""``/api/v1/orders``: the orders return policies are checked against."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header, HTTPException, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from gateway.api.deps import Caller, SessionDep, SettingsDep, known_sites, require_site
from gateway.api.schemas import OrderLineOut, OrderOut, ProblemOut
from gateway.models import Order
from gateway.schemas import OrderDraft
from gateway.services import idempotency
from gateway.services.auth import Principal
from gateway.services.orders import create_order, get_order, upsert_order
from gateway.services.policies import returnable_for
from gateway.settings import Settings

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])


def _out(session: SessionDep, order: Order) -> OrderOut:
    lines = [
        OrderLineOut.model_validate(line).model_copy(
            update={"returnable": returnable_for(session, line).returnable}
        )
        for line in order.lines
    ]
    return OrderOut(
        order_ref=order.order_ref,
        site=order.site,
        customer=order.customer,
        customer_email=order.customer_email,
        customer_address=order.customer_address,
        customer_language=order.customer_language,
        currency=order.currency,
        discount_cents=order.discount_cents,
        voucher_cents=order.voucher_cents,
        shipping_paid_cents=order.shipping_paid_cents,
        tax_inclusive=order.tax_inclusive,
        delivered_at=order.delivered_at,
        lines=lines,
    )


def _site_of(
    draft: OrderDraft, settings: Settings, caller: Principal, default: str | None = None
) -> str:
    """The order's site (``draft.site``, else ``default``, else the gateway's default).

    422 when the gateway does not serve it, 403 when the caller may not use it.
    """
    site = draft.site or default or settings.site
    known_sites(settings, [site])
    if not caller.may_use(site):
        raise HTTPException(403, detail=f"this caller may not use site {site!r}")
    return site


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderOut,
    responses={409: {"model": ProblemOut}, 422: {"model": ProblemOut}},
)
def post_order(
    draft: OrderDraft,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: Caller,
    idempotency_key: Annotated[str | None, Header(max_length=idempotency.MAX_KEY_LENGTH)] = None,
) -> Any:
    """Store an order (lines numbered 1..n).

    409 when the reference exists; 422 when a line has more delivered than ordered, or
    when ``Idempotency-Key`` was used with another body (same key and body: the stored
    first response again); ``site`` (default the gateway's default site): 422 when the
    gateway does not serve it, 403 when the caller may not use it.
    """
    site = _site_of(draft, settings, principal)
    digest = idempotency.request_hash("POST", router.prefix, draft.model_dump(mode="json"))
    if idempotency_key:
        stored = idempotency.lookup(session, principal.name, idempotency_key, digest)
        if stored is not None:
            return JSONResponse(stored.response, status_code=stored.status_code)

    def remember(order: Order) -> None:
        if idempotency_key:
            body = jsonable_encoder(_out(session, order))
            idempotency.remember(session, principal.name, idempotency_key, digest, 201, body)

    order = create_order(session, draft, before_commit=remember, site=site)
    response.headers["Location"] = f"{router.prefix}/{quote(order.order_ref, safe='')}"
    return _out(session, order)


@router.put(
    "/{order_ref}",
    response_model=OrderOut,
    responses={201: {"model": OrderOut}, 422: {"model": ProblemOut}},
)
def put_order(
    order_ref: str,
    draft: OrderDraft,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    who: Caller,
) -> OrderOut:
    """Create (201) or update (200) an order; the same body again changes nothing.

    Lines are matched by position. 422 when the path and body references differ, or when
    the update would drop a line or delivered units that RMAs already claim. 404 for an
    order of a site the caller may not use, 403 for a ``site`` it may not use: checked
    again on the order as committed under its lock (another update may have moved it
    to another site since the first read).
    """
    if draft.order_ref != order_ref:
        raise HTTPException(422, detail="path and body order references differ")

    def may_change(order: Order) -> None:
        require_site(who, order.site, f"order {order_ref!r}")
        _site_of(draft, settings, who, order.site)

    stored = get_order(session, order_ref)
    if stored is not None:
        may_change(stored)
    site = _site_of(draft, settings, who, stored.site if stored is not None else None)
    order, outcome = upsert_order(session, draft, site=site, check=may_change)
    if outcome == "created":
        response.status_code = status.HTTP_201_CREATED
    return _out(session, order)


@router.get("/{order_ref}", response_model=OrderOut, responses={404: {"model": ProblemOut}})
def read_order(order_ref: str, session: SessionDep, who: Caller) -> OrderOut:
    """Return an order with the units still returnable per line (404: another site's)."""
    order = get_order(session, order_ref)
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"order {order_ref!r} not found")
    require_site(who, order.site, f"order {order_ref!r}")
    return _out(session, order)
