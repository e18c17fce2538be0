"""``/api/v1/notifications``: customer e-mails, their dead letters and replay.

Leads only (``gateway.security.access``): the list holds customers' e-mail addresses.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from sqlalchemy import select

from gateway.api.deps import Caller, SessionDep, require_site
from gateway.api.schemas import NotificationList, NotificationOut, ProblemOut
from gateway.models import INT32_MAX, Notification, Rma
from gateway.services.notifications import list_notifications, replay
from gateway.services.outbox import NotReplayable

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


@router.get("", response_model=NotificationList)
def read_notifications(
    session: SessionDep,
    who: Caller,
    status_: Annotated[
        Literal["pending", "sending", "sent", "dead"] | None, Query(alias="status")
    ] = None,
    rma: Annotated[str | None, Query(max_length=32, description="RMA number")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> NotificationList:
    """Customer e-mails, newest first; ``status=dead`` is the dead-letter list.

    A caller limited to sites sees only the e-mails of their sites' RMAs.
    """
    rows = list_notifications(
        session, status=status_, rma_number=rma, limit=limit, sites=who.sites or None
    )
    return NotificationList(notifications=[NotificationOut.model_validate(n) for n in rows])


@router.post(
    "/{notification_id}/replay",
    response_model=NotificationOut,
    responses={404: {"model": ProblemOut}, 409: {"model": ProblemOut}},
)
def post_replay(
    notification_id: Annotated[int, Path(ge=1, le=INT32_MAX)], session: SessionDep, who: Caller
) -> NotificationOut:
    """Queue a dead e-mail again with a fresh attempt budget (409 if it is not dead).

    404 for an e-mail of an RMA of a site the caller may not use.
    """
    row = session.get(Notification, notification_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no notification {notification_id}")
    if who.sites:
        site = session.scalar(select(Rma.site).where(Rma.number == row.rma_number))
        require_site(who, site or "", f"notification {notification_id}")
    try:
        replay(session, row)
    except NotReplayable as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    return NotificationOut.model_validate(row)
