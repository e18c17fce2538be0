"""``/api/v1/webhooks``: endpoints and their secrets, outbound deliveries, dead letters, replay."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import select

from gateway.api.deps import Caller, SessionDep, SettingsDep, require_site
from gateway.api.schemas import (
    DeliveryList,
    DeliveryOut,
    ProblemOut,
    WebhookEndpointCreate,
    WebhookEndpointOut,
    WebhookRotate,
)
from gateway.models import INT32_MAX, WebhookDelivery, WebhookEndpoint
from gateway.services import webhook_endpoints as endpoints
from gateway.services.webhooks import NotReplayable, list_deliveries, replay

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


@router.get("/deliveries", response_model=DeliveryList)
def read_deliveries(
    session: SessionDep,
    who: Caller,
    status_: Annotated[
        Literal["pending", "delivered", "dead"] | None, Query(alias="status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> DeliveryList:
    """Deliveries, newest first; ``status=dead`` is the dead-letter list.

    A caller limited to sites sees only their sites' deliveries.
    """
    rows = list_deliveries(session, status=status_, limit=limit, sites=who.sites or None)
    return DeliveryList(deliveries=[DeliveryOut.model_validate(d) for d in rows])


@router.post(
    "/deliveries/{delivery_id}/replay",
    response_model=DeliveryOut,
    responses={404: {"model": ProblemOut}, 409: {"model": ProblemOut}},
)
def post_replay(
    delivery_id: Annotated[int, Path(ge=1, le=INT32_MAX)], session: SessionDep, who: Caller
) -> DeliveryOut:
    """Queue a dead delivery again with a fresh attempt budget (409 if it is not dead).

    404 for a delivery of a site the caller may not use.
    """
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no delivery {delivery_id}")
    site = (delivery.payload or {}).get("site")
    if isinstance(site, str):
        require_site(who, site, f"delivery {delivery_id}")
    try:
        replay(session, delivery)
    except NotReplayable as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    return DeliveryOut.model_validate(delivery)


def _endpoint_out(endpoint: WebhookEndpoint, secret: str | None = None) -> WebhookEndpointOut:
    return WebhookEndpointOut.model_validate(endpoint).model_copy(update={"secret": secret})


@router.get("/endpoints", response_model=list[WebhookEndpointOut])
def read_endpoints(session: SessionDep, _who: Caller) -> list[WebhookEndpointOut]:
    """Every webhook endpoint (never its secret), by name."""
    rows = session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.name))
    return [_endpoint_out(e) for e in rows]


@router.post(
    "/endpoints",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookEndpointOut,
    responses={409: {"model": ProblemOut}},
)
def post_endpoint(
    body: WebhookEndpointCreate, session: SessionDep, _who: Caller
) -> WebhookEndpointOut:
    """Add a receiver with its own signing secret, returned in this answer only."""
    secret, endpoint = endpoints.create_endpoint(session, body.name, body.url)
    return _endpoint_out(endpoint, secret)


@router.post(
    "/endpoints/{name}/rotate",
    response_model=WebhookEndpointOut,
    responses={404: {"model": ProblemOut}},
)
def post_rotate(
    name: str, body: WebhookRotate, session: SessionDep, settings: SettingsDep, _who: Caller
) -> WebhookEndpointOut:
    """A new secret (returned this once); the old one keeps signing until ``previous_until``."""
    overlap = settings.webhook_rotation_overlap_s if body.overlap_s is None else body.overlap_s
    secret, endpoint = endpoints.rotate(session, name, overlap)
    return _endpoint_out(endpoint, secret)


@router.delete(
    "/endpoints/{name}", response_model=WebhookEndpointOut, responses={404: {"model": ProblemOut}}
)
def delete_endpoint(name: str, session: SessionDep, _who: Caller) -> WebhookEndpointOut:
    """Stop queueing events for an endpoint (deliveries already queued still go out)."""
    return _endpoint_out(endpoints.deactivate(session, name))
