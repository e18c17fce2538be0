"""Form posts of the status page: sign in / out, quarantine decisions, approvals, alarms.

Every action needs a lead (the ``lead`` scope) and, from a browser session, the session's
CSRF token in the form: both are checked by :func:`gateway.security.access.authorize` from
its table before the handler runs. A decision goes through the same accounting as
``POST /api/v1/rmas/{number}/decision``, so credits and stock moves follow. Notices after an
action are codes of :data:`gateway.web.session.NOTICES`, never text carried by the URL.
"""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import urlencode

import anyio.to_thread
from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.deps import BridgeDep, Caller, SessionDep, SettingsDep
from gateway.api.routes.alarms import AlarmId
from gateway.models import Station
from gateway.security.access import AuthFailure, check_password, form_data
from gateway.services import alarms as alarm_service
from gateway.services import credits
from gateway.services.auth import close_session, open_session
from gateway.services.commands import OPERATOR_COMMANDS, CommandRefused, send_command
from gateway.services.lifecycle import IllegalTransition
from gateway.services.rma_writer import StaleDataError, StaleRma, load_for_change
from gateway.services.rmas import transition_rma
from gateway.settings import REFUSAL_DESTINATIONS
from gateway.web.pages import GRADES, templates
from gateway.web.session import COOKIE, set_session_cookie

log = logging.getLogger(__name__)
router = APIRouter(tags=["pages"], include_in_schema=False)
LOGIN_ERRORS = {
    401: "Wrong user name or password.",
    429: "Too many failed attempts: wait a few minutes, then try again.",
    503: "The gateway is busy signing others in: try again in a moment.",
}


def _back(notice: str, anchor: str, rma: str = "") -> RedirectResponse:
    query = urlencode({"notice": notice, **({"rma": rma} if rma else {})})
    return RedirectResponse(f"/?{query}#{anchor}", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    """The sign-in form."""
    return templates.TemplateResponse(request, "login.html", {"error": ""})


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the user's password (throttled, hashed off the event loop); open a session."""
    form = await form_data(request, refuse_nul=False)  # a NUL user name: a wrong one (401)
    username = form.get("username", "").strip()
    try:
        principal = await check_password(request, username, form.get("password", ""))
    except AuthFailure as failure:
        log.warning("web sign-in refused username=%s status=%d", username[:64], failure.status_code)
        return templates.TemplateResponse(
            request,
            "login.html",
            {"error": LOGIN_ERRORS.get(failure.status_code, LOGIN_ERRORS[401])},
            status_code=failure.status_code,
            headers={k: v for k, v in failure.headers.items() if k == "Retry-After"},
        )
    name = principal.name.removeprefix("user:")
    db = request.app.state.db

    def start() -> str:
        with db.session() as session:
            return open_session(session, name)

    token = await anyio.to_thread.run_sync(start)
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(request, response, token)
    log.info("web sign-in username=%s", name)
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep) -> Response:
    """End the session on the server (the cookie no longer works anywhere) and drop it."""
    token = request.cookies.get(COOKIE)
    if token and len(token) <= 128:
        close_session(session, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.post("/quarantine/{number}")
async def decide(
    number: str, request: Request, session: SessionDep, settings: SettingsDep, user: Caller
) -> Response:
    """A lead releases a quarantined return with a grade, or closes it without credit.

    Every waiting unit gets the decision. When the form carries the RMA revision its page
    showed and the RMA changed since, nothing is done and the page says so.
    """
    form = await form_data(request)
    grade = form.get("grade", "")
    if grade not in (*GRADES, "refuse"):
        return Response("unknown grade", status_code=422)
    destination = form.get("destination") or None
    if destination is not None and destination not in REFUSAL_DESTINATIONS:
        return Response("unknown destination", status_code=422)
    revision = form.get("revision", "")
    try:
        rma = load_for_change(session, number)
        if rma is None or not user.may_use(rma.site):
            return Response("unknown RMA", status_code=404)
        if revision and revision != str(rma.revision):
            raise StaleRma(number)
        credits.decide(session, settings, rma, grade, destination=destination, actor=user.name)
        session.commit()
    except (StaleRma, StaleDataError):
        session.rollback()
        return _back("stale", "quarantine", number)
    except IllegalTransition:
        session.rollback()
        return _back("not-allowed", "quarantine", number)
    except BaseException:
        session.rollback()
        raise
    log.info("quarantine decision rma=%s grade=%s by=%s", number, grade, user.name)
    return _back("closed" if grade == "refuse" else f"released-{grade}", "quarantine", rma.number)


@router.post("/quarantine/{number}/units/{line_no}/{unit_no}")
async def decide_unit(
    number: str,
    line_no: Annotated[int, Path(ge=1, le=10_000)],
    unit_no: Annotated[int, Path(ge=1, le=10_000)],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: Caller,
) -> Response:
    """A lead decides one waiting unit (verify, regrade, refuse, confirm its location).

    The form carries the RMA revision the page showed: when the RMA changed since (another
    lead, a parcel), nothing is done and the page says so.
    """
    form = await form_data(request)
    action = form.get("action", "")
    grade = form.get("grade", "") or None
    if action not in credits.UNIT_ACTIONS or (grade is not None and grade not in GRADES):
        return Response("unknown action or grade", status_code=422)
    destination = form.get("destination") or None
    if destination is not None and destination not in REFUSAL_DESTINATIONS:
        return Response("unknown destination", status_code=422)
    try:
        revision = int(form.get("revision", ""))
    except ValueError:
        return Response("revision missing", status_code=422)
    try:
        rma = load_for_change(session, number)
        if rma is None or not user.may_use(rma.site):
            return Response("unknown RMA", status_code=404)
        if rma.revision != revision:
            raise StaleRma(number)
        credits.decide_unit(
            session,
            settings,
            rma,
            line_no,
            unit_no,
            action,
            grade=grade,
            destination=destination,
            actor=user.name,
        )
        session.commit()
    except (StaleRma, StaleDataError):
        session.rollback()
        return _back("stale", "quarantine", number)
    except (IllegalTransition, credits.UnitDecisionError):
        session.rollback()
        return _back("not-allowed", "quarantine", number)
    log.info(
        "unit decision rma=%s line=%d unit=%d action=%s by=%s",
        number,
        line_no,
        unit_no,
        action,
        user.name,
    )
    return _back("unit-decided", "quarantine", number)


@router.post("/rmas/{number}/approval")
async def approve(
    number: str, request: Request, session: SessionDep, settings: SettingsDep, user: Caller
) -> Response:
    """A lead approves (``decision=authorize``) or rejects a return waiting for a lead."""
    form = await form_data(request)
    decision = form.get("decision", "")
    if decision not in ("authorize", "reject"):
        return Response("decision must be authorize or reject", status_code=422)
    try:
        rma = load_for_change(session, number)
        if rma is None or not user.may_use(rma.site):
            return Response("unknown RMA", status_code=404)
        transition_rma(session, settings, rma, decision, actor=user.name, note="status page")
    except (IllegalTransition, StaleRma, StaleDataError):
        session.rollback()
        return _back("not-allowed", "quarantine", number)
    log.info("approval rma=%s decision=%s by=%s", number, decision, user.name)
    return _back("approved" if decision == "authorize" else "rejected", "quarantine", rma.number)


@router.post("/alarms/{alarm_id}/ack")
async def acknowledge(alarm_id: AlarmId, session: SessionDep, user: Caller) -> Response:
    """A lead acknowledges an alarm."""
    alarm = alarm_service.acknowledge(session, alarm_id, user.name, user.sites)
    if alarm is None:
        return Response("unknown alarm", status_code=404)
    return _back("acknowledged", "alarms")


@router.get("/stations/{station}/confirm", response_class=HTMLResponse)
def confirm_command(
    station: str, request: Request, session: SessionDep, user: Caller, command: str = ""
) -> Response:
    """The confirmation step of a station button: what will be sent, Confirm / Cancel."""
    if command not in OPERATOR_COMMANDS:
        return Response("unknown command", status_code=422)
    known = session.get(Station, station) if len(station) <= 64 else None
    if known is None:
        return Response("unknown station", status_code=404)
    gates = [n.removeprefix("gate.") for n in known.health.components if n.startswith("gate.")]
    context = {
        "user": user,
        "station": station,
        "command": command,
        "label": OPERATOR_COMMANDS[command],
        "lanes": sorted(gates),
    }
    return templates.TemplateResponse(request, "confirm_command.html", context)


@router.post("/stations/{station}/commands")
async def station_command(
    station: str, request: Request, session: SessionDep, bridge: BridgeDep, user: Caller
) -> Response:
    """A lead confirmed a station command (form: ``command``, ``lane`` for a gate test)."""
    form = await form_data(request)
    command = form.get("command", "")
    args: dict[str, str | int] = {"lane": form["lane"]} if form.get("lane") else {}
    try:
        send_command(session, bridge, station, command, args, user.name, sites=user.sites)
    except CommandRefused as exc:
        return Response(str(exc), status_code=exc.status_code)
    return _back(f"command-{command}", "stations")
