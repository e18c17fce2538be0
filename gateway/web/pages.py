"""The status page for warehouse leads (issue 7): dashboard, its live sections, RMA search.

``/`` renders every section; ``/partials/{section}`` renders one (the page's script swaps
it in when the SSE stream ``/api/v1/stream`` says it changed). Without a session the
browser is sent to ``/login`` (tools may use an API key or HTTP Basic; dev allows anonymous
viewing). Leads' actions are in :mod:`gateway.web.actions`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from gateway.api.deps import BridgeDep, SessionDep, SettingsDep
from gateway.services import alarms, dashboard
from gateway.services.dashboard import fmt_time
from gateway.settings import Settings
from gateway.web.charts import bars
from gateway.web.live import SECTIONS, LiveWorker, event_stream
from gateway.web.session import web_user

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
templates = Jinja2Templates(directory=WEB_DIR / "templates")
templates.env.globals["bars"] = bars
templates.env.globals["alarm_labels"] = alarms.LABELS
templates.env.filters["utc"] = fmt_time
GRADES = ("restock", "refurbish", "recycle")

router = APIRouter(tags=["pages"])


def sign_in_first(request: Request) -> Response:
    """A browser (``Accept: text/html``) goes to ``/login``; a tool gets 401."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/login", status_code=303)
    return Response(
        "sign in first",
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="returns-sorter"'},
    )


def section_context(name: str, session: Session, settings: Settings) -> dict[str, Any]:
    """The template variables one section needs."""
    now = datetime.now(UTC)
    if name == "stations":
        return {"stations": dashboard.station_rows(session, settings.site)}
    if name == "lanes":
        return {"lanes": dashboard.lane_rows(session, now, settings.zone)}
    if name == "parcels":
        return {"parcels": dashboard.recent_parcels(session)}
    if name == "quarantine":
        return {
            "queue": dashboard.quarantine_queue(session),
            "unidentified": dashboard.unidentified_quarantine(session, now),
            "grades": GRADES,
        }
    if name == "alarms":
        return {"open": alarms.open_alarms(session), "history": alarms.history(session, 20)}
    raise HTTPException(404, detail=f"unknown section {name!r}")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def status_page(
    request: Request, session: SessionDep, bridge: BridgeDep, settings: SettingsDep
) -> Response:
    """The whole status page (every section), for a signed-in viewer."""
    user = web_user(request, session)
    if user is None:
        return sign_in_first(request)
    context: dict[str, Any] = {
        "user": user,
        "site": settings.site,
        "mqtt_connected": bridge.connected,
        "generated_at": fmt_time(datetime.now(UTC)),
        "sections": SECTIONS,
        "notice": request.query_params.get("notice", ""),
    }
    for name in SECTIONS:
        context.update(section_context(name, session, settings))
    return templates.TemplateResponse(request, "dashboard.html", context)


@router.get("/partials/{section}", response_class=HTMLResponse, include_in_schema=False)
def partial(section: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """One section of the page as an HTML fragment (401 without a viewer)."""
    user = web_user(request, session)
    if user is None:
        return Response(status_code=401)
    context = {"user": user, **section_context(section, session, settings)}
    return templates.TemplateResponse(request, f"partials/{section}.html", context)


@router.get("/rmas", response_class=HTMLResponse, include_in_schema=False)
def rma_search(
    request: Request, session: SessionDep, settings: SettingsDep, q: str = ""
) -> Response:
    """Search RMAs by number, order reference or serial; show lifecycle and parcel events."""
    user = web_user(request, session)
    if user is None:
        return sign_in_first(request)
    found = dashboard.search_rmas(session, q)
    results = [{"rma": r, "events": dashboard.rma_events(session, r.number)} for r in found]
    context = {"user": user, "site": settings.site, "q": q, "results": results}
    return templates.TemplateResponse(request, "rma_search.html", context)


@router.get("/api/v1/stream", include_in_schema=False)
def stream(request: Request) -> Response:
    """Server-sent events: ``change`` with the names of the page sections that changed."""
    with request.app.state.db.session() as session:  # not held open while streaming
        if web_user(request, session) is None:
            return Response(status_code=401)
    worker: LiveWorker = request.app.state.live
    return StreamingResponse(
        event_stream(worker, request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
