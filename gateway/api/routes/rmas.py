"""``/api/v1/rmas``: create, read and list RMAs."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response, status

from gateway.api.deps import BridgeDep, SessionDep, SettingsDep
from gateway.api.schemas import RmaList, RmaOut
from gateway.schemas import RmaDraft
from gateway.services.revisions import head_revision
from gateway.services.rmas import DuplicateRma, create_rma, get_rma, list_rmas

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/rmas", tags=["rmas"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RmaOut,
    responses={409: {"description": "An RMA with this number already exists"}},
)
def post_rma(
    draft: RmaDraft,
    response: Response,
    session: SessionDep,
    bridge: BridgeDep,
    settings: SettingsDep,
) -> RmaOut:
    """Create an RMA, then announce it to the site's stations over MQTT.

    The RMA is committed before it is published; if the broker is unreachable the
    announcement is queued and stations catch up by revision anyway.
    """
    try:
        announcement = create_rma(session, settings.site, draft)
    except DuplicateRma as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    bridge.publish_rma(announcement)
    rma = get_rma(session, announcement.number)
    if rma is None:  # pragma: no cover - just committed
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, "RMA vanished after commit")
    response.headers["Location"] = f"{router.prefix}/{rma.number}"
    return RmaOut.model_validate(rma)


@router.get("/{number}", response_model=RmaOut, responses={404: {"description": "Unknown RMA"}})
def read_rma(number: str, session: SessionDep) -> RmaOut:
    """Return one RMA by number."""
    rma = get_rma(session, number)
    if rma is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"RMA {number!r} not found")
    return RmaOut.model_validate(rma)


@router.get("", response_model=RmaList)
def read_rmas(
    session: SessionDep,
    settings: SettingsDep,
    after_revision: Annotated[int, Query(ge=0, description="Only RMAs changed after this")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> RmaList:
    """List RMAs changed after ``after_revision``, oldest first."""
    head = head_revision(session, settings.site)
    rmas = list_rmas(session, after_revision=after_revision, limit=limit)
    return RmaList(head_revision=head, rmas=[RmaOut.model_validate(r) for r in rmas])
