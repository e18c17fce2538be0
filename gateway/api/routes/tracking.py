"""``POST /api/v1/tracking/events``: carriers tell where a return parcel is (public, signed).

The payload is carrier-neutral (:class:`gateway.schemas.TrackingEventIn`). A carrier has
no API key: each carrier signs with its own secret (``RS_TRACKING_SECRETS``, one per
carrier, so one carrier's secret moves only its own parcels) the way our outbound
webhooks are signed (:func:`gateway.services.webhook_endpoints.sign`):

- ``X-RS-Carrier``: the carrier's name, as in ``RS_TRACKING_SECRETS``;
- ``X-RS-Timestamp``: Unix seconds, within :data:`MAX_SKEW_S` of our clock (a captured
  request cannot be replayed later);
- ``X-RS-Signature``: ``sha256=`` + hex HMAC-SHA256(secret, ``"{timestamp}." + body``).

Answers: 200 ``{"number", "state", "carrier_status", "applied"}`` (``applied`` False for a
repeat or an event older than the last one); 401 unsigned, unknown carrier, stale
timestamp or bad signature (nothing read further); 403 the payload names another
carrier than the signer; 404 no RMA has the tracking number for this carrier; 409 a
concurrent change of the RMA (retry); 413 a body over :data:`MAX_BODY` bytes; 422 an
invalid payload.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import SessionDep, SettingsDep
from gateway.api.schemas import ProblemOut
from gateway.schemas import TrackingEventIn
from gateway.services.rma_writer import StaleRma
from gateway.services.tracking import UnknownTracking, apply_carrier_event
from gateway.services.webhook_endpoints import sign

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/tracking", tags=["tracking"])

MAX_BODY = 8 * 1024
"""Largest tracking event body (bytes); one event is about 300."""
MAX_SKEW_S = 300
"""How far a signed timestamp may be from our clock (seconds)."""


def _verified(
    settings: SettingsDep, carrier: str | None, timestamp: str | None, signature: str | None
) -> tuple[str, str]:
    """(carrier, its secret) once the headers are usable; 401 otherwise."""
    secret = settings.tracking_secrets.get(carrier or "")
    if carrier is None or secret is None or not timestamp or not signature:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="unsigned or unknown carrier")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_S:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"X-RS-Timestamp must be Unix seconds within {MAX_SKEW_S} s of now",
        )
    return carrier, secret


@router.post(
    "/events",
    responses={
        401: {"model": ProblemOut},
        403: {"model": ProblemOut},
        404: {"model": ProblemOut},
        409: {"model": ProblemOut},
        413: {"model": ProblemOut},
        422: {"model": ProblemOut},
    },
)
async def post_tracking_event(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    x_rs_carrier: Annotated[str | None, Header(max_length=32)] = None,
    x_rs_timestamp: Annotated[str | None, Header(max_length=20)] = None,
    x_rs_signature: Annotated[str | None, Header(max_length=80)] = None,
) -> dict[str, Any]:
    """Record a carrier's tracking event on its RMA (module doc: headers and answers)."""
    carrier, secret = _verified(settings, x_rs_carrier, x_rs_timestamp, x_rs_signature)
    body = await request.body()  # capped at MAX_BODY by the router (413)
    expected = sign(secret, int(x_rs_timestamp or 0), body)
    # as bytes: str arguments holding non-ASCII raise TypeError (a 500)
    if not hmac.compare_digest(expected.encode(), (x_rs_signature or "").encode()):
        log.warning("tracking event refused: bad signature carrier=%s", carrier)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="bad signature")
    try:
        event = TrackingEventIn.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise HTTPException(422, detail=errors) from exc
    if event.carrier != carrier:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"signed by {carrier!r}: cannot report {event.carrier!r} parcels",
        )
    try:
        rma, applied = await run_in_threadpool(apply_carrier_event, session, settings, event)
    except UnknownTracking as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
    except StaleRma as exc:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    return {
        "number": rma.number,
        "state": rma.state,
        "carrier_status": rma.carrier_status,
        "applied": applied,
    }
