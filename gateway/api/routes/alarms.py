"""``/api/v1/alarms``: open alarms and history (JSON), and acknowledgement by a lead."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from gateway.api.deps import Caller, SessionDep, SiteFilter
from gateway.models import INT32_MAX, Alarm
from gateway.services import alarms

AlarmId = Annotated[int, Path(ge=1, le=INT32_MAX)]
router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"])


def _out(a: Alarm) -> dict[str, Any]:
    return {
        "id": a.id,
        "station": a.station,
        "kind": a.kind,
        "subject": a.subject,
        "message": a.message,
        "raised_at": a.raised_at.isoformat(),
        "cleared_at": a.cleared_at.isoformat() if a.cleared_at else None,
        "acknowledged_at": a.acknowledged_at.isoformat() if a.acknowledged_at else None,
        "acknowledged_by": a.acknowledged_by,
    }


@router.get("")
def list_alarms(
    session: SessionDep, _who: Caller, sites: SiteFilter, history: bool = False
) -> dict[str, Any]:
    """Open alarms (active or unacknowledged), or with ``history=true`` the last 50.

    ``?site=``: those of one site's stations.
    """
    rows = (
        alarms.history(session, sites=sites)
        if history
        else alarms.open_alarms(session, sites=sites)
    )
    return {"alarms": [_out(a) for a in rows]}


@router.post("/{alarm_id}/ack")
def ack(alarm_id: AlarmId, session: SessionDep, principal: Caller) -> dict[str, Any]:
    """Acknowledge an alarm (the first acknowledgement is kept)."""
    alarm = alarms.acknowledge(session, alarm_id, principal.name, principal.sites)
    if alarm is None:
        raise HTTPException(404, detail=f"unknown alarm {alarm_id}")
    return _out(alarm)
