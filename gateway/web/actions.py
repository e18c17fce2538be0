"""Form posts of the status page: sign in / out, quarantine decisions, alarm acknowledgement.

Every action needs a signed-in lead (session cookie) and the session's CSRF token in the
form; a viewer gets 403. A decision goes through the same accounting as
``POST /api/v1/rmas/{number}/decision``, so credits and stock moves follow.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.deps import SessionDep, SettingsDep
from gateway.api.routes.alarms import AlarmId
from gateway.services import accounting
from gateway.services import alarms as alarm_service
from gateway.services.auth import principal_for_user
from gateway.services.lifecycle import IllegalTransition
from gateway.services.rmas import bump, get_rma
from gateway.web.pages import GRADES, templates
from gateway.web.session import (
    COOKIE,
    MAX_AGE_S,
    WebUser,
    csrf_ok,
    form_data,
    new_session_cookie,
    web_user,
)

log = logging.getLogger(__name__)
router = APIRouter(tags=["pages"], include_in_schema=False)


def _back(notice: str, anchor: str) -> RedirectResponse:
    return RedirectResponse(f"/?notice={quote(notice)}#{anchor}", status_code=303)


def _lead(request: Request, session: SessionDep, form: dict[str, str]) -> WebUser | Response:
    user = web_user(request, session)
    if user is None:
        return Response("sign in first", status_code=401)
    if not user.can_act:
        return Response("only a lead can do this", status_code=403)
    if not csrf_ok(user, form):
        return Response("missing or wrong CSRF token: reload the page", status_code=403)
    return user


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, error: str = "") -> Response:
    """The sign-in form."""
    return templates.TemplateResponse(request, "login.html", {"error": error})


@router.post("/login")
async def login(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Check the user's password; on success set the signed session cookie."""
    form = await form_data(request)
    username = form.get("username", "").strip()
    principal = principal_for_user(session, username, form.get("password", ""))
    if principal is None:
        log.warning("web sign-in refused username=%s", username[:64])
        return templates.TemplateResponse(
            request, "login.html", {"error": "Wrong user name or password."}, status_code=401
        )
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        new_session_cookie(settings, username),
        max_age=MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    log.info("web sign-in username=%s", username)
    return response


@router.post("/logout")
def logout() -> Response:
    """Drop the session cookie."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.post("/quarantine/{number}")
async def decide(
    number: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """A lead releases a quarantined return with a grade, or closes it without credit."""
    form = await form_data(request)
    user = _lead(request, session, form)
    if isinstance(user, Response):
        return user
    grade = form.get("grade", "")
    if grade not in (*GRADES, "refuse"):
        return Response(f"unknown grade {grade!r}", status_code=422)
    rma = get_rma(session, number)
    if rma is None:
        return Response(f"unknown RMA {number}", status_code=404)
    request.state.principal = user.name
    try:
        accounting.settle(session, settings, rma, grade, actor=user.name)
        bump(session, settings, rma)
        accounting.state_changed(session, settings, rma, user.name)
        session.commit()
    except IllegalTransition as exc:
        session.rollback()
        return _back(f"{number}: {exc}", "quarantine")
    except BaseException:
        session.rollback()
        raise
    done = "closed without credit" if grade == "refuse" else f"released as {grade}"
    log.info("quarantine decision rma=%s grade=%s by=%s", number, grade, user.name)
    return _back(f"{number} {done}", "quarantine")


@router.post("/alarms/{alarm_id}/ack")
async def acknowledge(alarm_id: AlarmId, request: Request, session: SessionDep) -> Response:
    """A lead acknowledges an alarm."""
    form = await form_data(request)
    user = _lead(request, session, form)
    if isinstance(user, Response):
        return user
    request.state.principal = user.name
    alarm = alarm_service.acknowledge(session, alarm_id, user.name)
    if alarm is None:
        return Response(f"unknown alarm {alarm_id}", status_code=404)
    return _back(f"alarm {alarm_id} acknowledged", "alarms")
