"""The status page for warehouse leads (issue 7): dashboard, its live sections, RMA search.

``/`` renders every section; ``/partials/{section}`` renders one (the page's script swaps
it in when the SSE stream ``/api/v1/stream`` says it changed). Each needs the ``read``
scope (:mod:`gateway.security.access`): without a session the browser is sent to
``/login`` (tools may use an API key or HTTP Basic; dev allows anonymous viewing). Leads'
actions are in :mod:`gateway.web.actions`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from gateway.api.deps import BridgeDep, Caller, SessionDep, SettingsDep, SiteFilter
from gateway.services import alarms, dashboard, expected, shifts
from gateway.services.commands import OPERATOR_COMMANDS, recent_commands
from gateway.services.dashboard import fmt_time
from gateway.settings import Settings
from gateway.web.charts import bars
from gateway.web.live import SECTIONS, LiveWorker, event_stream
from gateway.web.session import notice_text

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
templates = Jinja2Templates(directory=WEB_DIR / "templates")
templates.env.globals["bars"] = bars
templates.env.globals["alarm_labels"] = alarms.LABELS
templates.env.filters["utc"] = fmt_time
GRADES = ("restock", "refurbish", "recycle")
MAX_QUERY = 64
"""Longest RMA search text (characters); longer is 422."""

router = APIRouter(tags=["pages"])


def section_context(
    name: str, session: Session, settings: Settings, sites: list[str] | None = None
) -> dict[str, Any]:
    """The template variables one section needs, for ``sites`` (None: every site).

    The shift report is per station of every site (not filtered).
    """
    now = datetime.now(UTC)
    if name == "stations":
        rows = dashboard.station_rows(session, sites)
        return {
            "stations": rows,
            "commands": {r["id"]: recent_commands(session, r["id"], 3) for r in rows},
            "operator_commands": OPERATOR_COMMANDS,
        }
    if name == "lanes":
        return {"lanes": dashboard.lane_rows(session, now, settings.zone, sites=sites)}
    if name == "parcels":
        return {"parcels": dashboard.recent_parcels(session, sites=sites)}
    if name == "quarantine":
        return {
            "queue": dashboard.quarantine_queue(session, sites=sites),
            "unidentified": dashboard.unidentified_quarantine(session, now, sites=sites),
            "grades": GRADES,
        }
    if name == "shift":
        window = shifts.current_shift(settings, now)
        return {
            "shift": window,
            "shift_rows": shifts.shift_report(session, settings, window, now, sites),
        }
    if name == "expected":
        return {
            "expected": expected.expected_parcels(session, settings, now, sites=sites),
            "overdue_days": settings.in_transit_overdue_days,
        }
    if name == "alarms":
        return {
            "open": alarms.open_alarms(session, sites=sites),
            "history": alarms.history(session, 20, sites=sites),
        }
    raise HTTPException(404, detail=f"unknown section {name!r}")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def status_page(
    request: Request,
    session: SessionDep,
    bridge: BridgeDep,
    settings: SettingsDep,
    user: Caller,
    sites: SiteFilter,
) -> Response:
    """The whole status page (every section), for a viewer.

    ``?notice=`` is a code of :data:`gateway.web.session.NOTICES` (with ``rma``);
    ``?site=`` shows one site (default: every site the viewer may see; the selector
    offers those).
    """
    notice = notice_text(
        request.query_params.get("notice", ""), request.query_params.get("rma", "")
    )
    context: dict[str, Any] = {
        "user": user,
        "site": sites[0] if sites and len(sites) == 1 else "",
        "site_choices": [s for s in settings.sites if user.may_use(s)],
        "mqtt_connected": bridge.connected,
        "generated_at": fmt_time(datetime.now(UTC)),
        "sections": SECTIONS,
        "notice": notice,
    }
    for name in SECTIONS:
        context.update(section_context(name, session, settings, sites))
    return templates.TemplateResponse(request, "dashboard.html", context)


@router.get("/partials/{section}", response_class=HTMLResponse, include_in_schema=False)
def partial(
    section: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: Caller,
    sites: SiteFilter,
) -> Response:
    """One section of the page as an HTML fragment (401 without a viewer); ``?site=``."""
    context = {"user": user, **section_context(section, session, settings, sites)}
    return templates.TemplateResponse(request, f"partials/{section}.html", context)


@router.get("/rmas", response_class=HTMLResponse, include_in_schema=False)
def rma_search(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: Caller,
    sites: SiteFilter,
    q: Annotated[str, Query(max_length=MAX_QUERY)] = "",
) -> Response:
    """Search RMAs by number, order reference or serial; show lifecycle and parcel events.

    ``q`` is matched literally (``%``, ``_`` and ``\\`` are not wildcards); only RMAs of
    the sites the viewer may see (``?site=``: of one).
    """
    found = [r for r in dashboard.search_rmas(session, q) if sites is None or r.site in sites]
    results = [{"rma": r, "events": dashboard.rma_events(session, r.number)} for r in found]
    context = {"user": user, "site": settings.site, "q": q, "results": results}
    return templates.TemplateResponse(request, "rma_search.html", context)


@router.get("/api/v1/stream", include_in_schema=False)
def stream(request: Request, _user: Caller) -> Response:
    """Server-sent events: ``change`` with the names of the page sections that changed."""
    worker: LiveWorker = request.app.state.live
    return StreamingResponse(
        event_stream(worker, request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
