"""``/api/v1/stations``, ``/api/v1/events`` and ``/api/v1/lanes``: what the stations report."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response

from gateway.api.deps import BridgeDep, Caller, SessionDep, SettingsDep, SiteFilter
from gateway.api.schemas import (
    CommandIn,
    CommandOut,
    EventList,
    EventOut,
    LaneCounts,
    StationLanes,
    StationList,
    StationOut,
)
from gateway.models import Station
from gateway.schemas import BoundedDate
from gateway.services.commands import CommandRefused, recent_commands, send_command
from gateway.services.events import lane_counts, lanes_by_station, list_events
from gateway.services.shifts import current_shift, shift_csv, shift_report, shift_window
from gateway.services.stations import list_stations

router = APIRouter(prefix="/api/v1", tags=["stations"])
StationId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@router.get("/stations", response_model=StationList)
def read_stations(session: SessionDep, _who: Caller, sites: SiteFilter) -> StationList:
    """List every known station with its site, state, last seen time and RMA revision.

    ``?site=``: one site's; a caller limited to sites sees only theirs.
    """
    rows = list_stations(session, sites=sites)
    return StationList(stations=[StationOut.model_validate(s) for s in rows])


@router.get("/events", response_model=EventList)
def read_events(
    session: SessionDep,
    _who: Caller,
    sites: SiteFilter,
    station: Annotated[str | None, Query(description="Only this station's events")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> EventList:
    """List recorded parcel events, newest first; ``count`` is the total matching.

    ``?site=``: one site's; a caller limited to sites sees only theirs.
    """
    events, total = list_events(session, station=station, limit=limit, sites=sites)
    return EventList(count=total, events=[EventOut.model_validate(e) for e in events])


@router.get("/lanes", response_model=LaneCounts)
def read_lanes(session: SessionDep, _who: Caller, sites: SiteFilter) -> LaneCounts:
    """Return parcel counts per station and lane (``?site=``: of one site's parcels)."""
    stations = [
        StationLanes(station=name, lanes=lanes, total=sum(lanes.values()))
        for name, lanes in lanes_by_station(lane_counts(session, sites=sites)).items()
    ]
    return LaneCounts(stations=stations, total=sum(s.total for s in stations))


@router.post("/stations/{station}/commands", response_model=CommandOut, status_code=202)
def post_command(
    station: StationId, body: CommandIn, session: SessionDep, bridge: BridgeDep, who: Caller
) -> CommandOut:
    """Send a command to a station (a lead); 202 with its record, ``state = "sent"``.

    The station replies ``accepted`` then ``done`` or ``failed`` with the reason (it
    refuses what is unsafe, e.g. a gate test with parcels on the belt, a resume while the
    E-stop is engaged); follow it with ``GET`` on the same path. 404: unknown station;
    422: unknown command or bad arguments.
    """
    try:
        row = send_command(
            session, bridge, station, body.command, body.args, who.name, sites=who.sites
        )
    except CommandRefused as exc:
        raise HTTPException(exc.status_code, detail=str(exc)) from None
    return CommandOut.model_validate(row)


@router.get("/stations/{station}/commands", response_model=list[CommandOut])
def read_commands(
    station: StationId,
    session: SessionDep,
    who: Caller,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[CommandOut]:
    """The newest commands sent to a station with their replies, newest first.

    404 for a station of a site the caller may not see (for a caller limited to sites).
    """
    if who.sites:
        known = session.get(Station, station)
        if known is None or not who.may_use(known.site):
            raise HTTPException(404, detail=f"unknown station {station[:64]!r}")
    return [CommandOut.model_validate(c) for c in recent_commands(session, station, limit)]


@router.get("/reports/shift", responses={200: {"content": {"text/csv": {}}}})
def read_shift_report(
    session: SessionDep,
    settings: SettingsDep,
    _who: Caller,
    sites: SiteFilter,
    day: Annotated[
        BoundedDate | None,
        Query(description="Local day the shift starts on (1970-01-01..2999-12-31)"),
    ] = None,
    shift: Annotated[int | None, Query(ge=0, le=7, description="Index in RS_SHIFTS")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Any:
    """Per station: availability, throughput and quality of one shift.

    See :mod:`gateway.services.shifts`; without ``day`` and ``shift``: the shift running
    now. ``format=csv`` for CSV. 422: a shift index the settings do not have, a day outside
    :data:`gateway.schemas.EARLIEST_DATE` .. :data:`gateway.schemas.LATEST_DATE`. ``?site=``:
    one site's stations; a caller limited to sites sees only theirs.
    """
    now = datetime.now(UTC)
    if day is None and shift is None:
        window = current_shift(settings, now)
    elif day is None or shift is None or shift >= len(settings.shifts):
        raise HTTPException(422, detail="give day and shift (an index of RS_SHIFTS) together")
    else:
        window = shift_window(settings, day, shift)
    rows = shift_report(session, settings, window, now, sites)
    if format == "csv":
        return Response(shift_csv(rows), media_type="text/csv")
    return {"shift": window.label, "rows": [asdict(r) for r in rows]}
