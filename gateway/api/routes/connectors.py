"""``/api/v1/connectors``: the shop connectors' outbound calls, dead letters, replay."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status

from gateway.api.deps import Caller, SessionDep, require_site
from gateway.api.schemas import ConnectorJobList, ConnectorJobOut, ProblemOut
from gateway.connectors.base import job_site, list_jobs, replay
from gateway.models import INT32_MAX, ConnectorJob
from gateway.services.outbox import NotReplayable

router = APIRouter(prefix="/api/v1/connectors", tags=["connectors"])


@router.get("/jobs", response_model=ConnectorJobList)
def read_jobs(
    session: SessionDep,
    who: Caller,
    status_: Annotated[Literal["pending", "done", "dead"] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> ConnectorJobList:
    """Refund and stock jobs, newest first; ``status=dead`` is the dead-letter list.

    A caller limited to sites sees only the jobs of their sites' RMAs.
    """
    rows = list_jobs(session, status=status_, limit=limit, sites=who.sites or None)
    return ConnectorJobList(jobs=[ConnectorJobOut.model_validate(j) for j in rows])


@router.post(
    "/jobs/{job_id}/replay",
    response_model=ConnectorJobOut,
    responses={404: {"model": ProblemOut}, 409: {"model": ProblemOut}},
)
def post_replay(
    job_id: Annotated[int, Path(ge=1, le=INT32_MAX)], session: SessionDep, who: Caller
) -> ConnectorJobOut:
    """Queue a dead job again with a fresh attempt budget and the same idempotency key.

    409 if it is not dead, 404 if there is no such job (or it is of an RMA of a site the
    caller may not use).
    """
    job = session.get(ConnectorJob, job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no connector job {job_id}")
    if who.sites:
        require_site(who, job_site(session, job) or "", f"connector job {job_id}")
    try:
        replay(session, job)
    except NotReplayable as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    return ConnectorJobOut.model_validate(job)
