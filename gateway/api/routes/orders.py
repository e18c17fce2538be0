"""``/api/v1/orders``: the orders return policies are checked against."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Response, status

from gateway.api.deps import OrderWriter, Reader, SessionDep
from gateway.api.schemas import OrderLineOut, OrderOut, ProblemOut
from gateway.models import Order
from gateway.schemas import OrderDraft
from gateway.services.orders import create_order, get_order
from gateway.services.policies import returnable_for

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
        customer=order.customer,
        currency=order.currency,
        delivered_at=order.delivered_at,
        lines=lines,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderOut,
    responses={409: {"model": ProblemOut}, 422: {"model": ProblemOut}},
)
def post_order(
    draft: OrderDraft, response: Response, session: SessionDep, _who: OrderWriter
) -> OrderOut:
    """Store an order (lines numbered 1..n).

    409 when the reference exists; 422 when a line has more delivered than ordered.
    """
    order = create_order(session, draft)
    response.headers["Location"] = f"{router.prefix}/{quote(order.order_ref, safe='')}"
    return _out(session, order)


@router.get("/{order_ref}", response_model=OrderOut, responses={404: {"model": ProblemOut}})
def read_order(order_ref: str, session: SessionDep, _who: Reader) -> OrderOut:
    """Return an order with the units still returnable per line."""
    order = get_order(session, order_ref)
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"order {order_ref!r} not found")
    return _out(session, order)
