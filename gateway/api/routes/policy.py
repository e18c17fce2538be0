"""``/api/v1/policy``: push the site's disposition policy to its stations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from gateway.api.deps import BridgeDep, Caller
from protocol import ProtocolError
from protocol.messages import encode
from protocol.policy import DispositionPolicy

router = APIRouter(prefix="/api/v1/policy", tags=["policy"])


@router.put("", status_code=status.HTTP_202_ACCEPTED)
def put_policy(body: dict[str, Any], bridge: BridgeDep, _who: Caller) -> dict[str, object]:
    """Publish a disposition policy (``protocol.policy.DispositionPolicy``), retained.

    Every station of the site validates it against its fail-safe rules, caches it and
    records its version in each decision; a station that refuses it keeps its current one
    and dead-letters the payload with the reason. 202: accepted for delivery; 422 when the
    body is not a valid policy; 503 when the broker refused the message.
    """
    try:
        policy = DispositionPolicy.model_validate(body)
    except ValueError as exc:
        raise HTTPException(422, detail=f"invalid policy: {exc}") from exc
    try:
        sent = bridge.publish_policy(encode(policy))
    except ProtocolError as exc:  # pragma: no cover - encode of a validated model
        raise HTTPException(422, detail=str(exc)) from exc
    if not sent:
        raise HTTPException(503, detail="the broker did not take the policy; try again")
    return {"version": policy.version, "published": True}
