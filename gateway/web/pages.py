"""``/``: the returns line status page (stations and per-lane counts)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from gateway.api.deps import BridgeDep, Reader, SessionDep, SettingsDep
from gateway.models import Rma
from gateway.services.events import lane_counts, lanes_by_station
from gateway.services.revisions import head_revision
from gateway.services.stations import list_stations

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
templates = Jinja2Templates(directory=WEB_DIR / "templates")

STATE_LABELS = {"online": "Online", "offline": "Offline", "degraded": "Degraded"}

router = APIRouter(tags=["pages"])


def _fmt_time(value: datetime | None) -> str:
    return "never" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def status_page(
    request: Request,
    session: SessionDep,
    bridge: BridgeDep,
    settings: SettingsDep,
    _who: Reader,
) -> HTMLResponse:
    """Render the status page: one table of stations, one of lane counts per station."""
    head = head_revision(session, settings.site)
    stations = [
        {
            "id": s.id,
            "state": s.state,
            "state_label": STATE_LABELS.get(s.state, s.state),
            "last_seen": _fmt_time(s.last_seen),
            "last_seen_iso": s.last_seen.isoformat() if s.last_seen else "",
            "rma_revision": s.rma_revision,
            "sync_lag": max(0, head - s.rma_revision),
            "software_version": s.software_version or "unknown",
        }
        for s in list_stations(session)
    ]
    grouped = lanes_by_station(lane_counts(session))
    lanes = sorted({lane for counts in grouped.values() for lane in counts})
    lane_rows: list[dict[str, Any]] = [
        {
            "station": name,
            "counts": [counts.get(lane, 0) for lane in lanes],
            "total": sum(counts.values()),
        }
        for name, counts in grouped.items()
    ]
    waiting = session.scalars(
        select(Rma).where(Rma.awaiting_decision.is_(True)).order_by(Rma.updated_at).limit(200)
    )
    awaiting = [
        {
            "number": r.number,
            "order_ref": r.order_ref,
            "reason": r.reason,
            "resolution": r.resolution,
            "units": sum(line.received_quantity for line in r.lines),
            "since": _fmt_time(r.updated_at),
        }
        for r in waiting
    ]
    context = {
        "awaiting": awaiting,
        "site": settings.site,
        "mqtt_connected": bridge.connected,
        "generated_at": _fmt_time(datetime.now(UTC)),
        "stations": stations,
        "lanes": lanes,
        "lane_rows": lane_rows,
        "lane_total": sum(int(row["total"]) for row in lane_rows),
    }
    return templates.TemplateResponse(request, "status.html", context)
