"""``/api/v1/webhooks``: outbound deliveries, their dead letters and replay."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status

from gateway.api.deps import Lead, Reader, SessionDep
from gateway.api.schemas import DeliveryList, DeliveryOut, ProblemOut
from gateway.models import WebhookDelivery
from gateway.services.webhooks import NotReplayable, list_deliveries, replay

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


@router.get("/deliveries", response_model=DeliveryList)
def read_deliveries(
    session: SessionDep,
    _who: Reader,
    status_: Annotated[
        Literal["pending", "delivered", "dead"] | None, Query(alias="status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> DeliveryList:
    """Deliveries, newest first; ``status=dead`` is the dead-letter list."""
    rows = list_deliveries(session, status=status_, limit=limit)
    return DeliveryList(deliveries=[DeliveryOut.model_validate(d) for d in rows])


@router.post(
    "/deliveries/{delivery_id}/replay",
    response_model=DeliveryOut,
    responses={404: {"model": ProblemOut}, 409: {"model": ProblemOut}},
)
def post_replay(
    delivery_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: SessionDep, _who: Lead
) -> DeliveryOut:
    """Queue a dead delivery again with a fresh attempt budget (409 if it is not dead)."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no delivery {delivery_id}")
    try:
        replay(session, delivery)
    except NotReplayable as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    return DeliveryOut.model_validate(delivery)
