"""``/api/v1/stations``, ``/api/v1/events`` and ``/api/v1/lanes``: what the stations report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import Caller, SessionDep
from gateway.api.schemas import (
    EventList,
    EventOut,
    LaneCounts,
    StationLanes,
    StationList,
    StationOut,
)
from gateway.services.events import lane_counts, lanes_by_station, list_events
from gateway.services.stations import list_stations

router = APIRouter(prefix="/api/v1", tags=["stations"])


@router.get("/stations", response_model=StationList)
def read_stations(session: SessionDep, _who: Caller) -> StationList:
    """List every known station with its state, last seen time and RMA revision."""
    return StationList(stations=[StationOut.model_validate(s) for s in list_stations(session)])


@router.get("/events", response_model=EventList)
def read_events(
    session: SessionDep,
    _who: Caller,
    station: Annotated[str | None, Query(description="Only this station's events")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> EventList:
    """List recorded parcel events, newest first; ``count`` is the total matching."""
    events, total = list_events(session, station=station, limit=limit)
    return EventList(count=total, events=[EventOut.model_validate(e) for e in events])


@router.get("/lanes", response_model=LaneCounts)
def read_lanes(session: SessionDep, _who: Caller) -> LaneCounts:
    """Return parcel counts per station and lane."""
    stations = [
        StationLanes(station=name, lanes=lanes, total=sum(lanes.values()))
        for name, lanes in lanes_by_station(lane_counts(session)).items()
    ]
    return LaneCounts(stations=stations, total=sum(s.total for s in stations))
