"""Browser sessions of the status page: the cookie and the notices shown after an action.

A session is a random token in the ``rs_session`` cookie (HttpOnly, SameSite=Lax, Secure
over HTTPS, which includes a TLS-terminating proxy named in ``RS_TRUSTED_PROXIES``); the
server keeps its SHA-256, its user and its CSRF token (:func:`gateway.services.auth.open_session`),
so signing out or revoking the user ends it at once. Who may see and do what is decided by
:mod:`gateway.security.access`.
"""

from __future__ import annotations

import re

from fastapi import Request, Response

from gateway.security.access import SESSION_COOKIE
from gateway.services.auth import SESSION_MAX_AGE_S

COOKIE = SESSION_COOKIE
MAX_AGE_S = SESSION_MAX_AGE_S

NOTICES: dict[str, str] = {
    "released-restock": "{rma}: released as restock",
    "released-refurbish": "{rma}: released as refurbish",
    "released-recycle": "{rma}: released as recycle",
    "closed": "{rma}: closed without credit",
    "approved": "{rma}: approved and announced to the stations",
    "rejected": "{rma}: rejected",
    "not-allowed": "{rma}: not possible in its current state",
    "unit-decided": "{rma}: unit decided",
    "stale": "{rma}: changed by someone else meanwhile, nothing done: look again",
    "acknowledged": "Alarm acknowledged",
    "command-resume": "Resume sent to the station",
    "command-pause": "Pause sent to the station",
    "command-run": "Run sent to the station",
    "command-gate_test": "Gate test sent to the station",
    "command-resync": "Resync sent to the station",
    "command-reload_policy": "Policy reload sent to the station",
}
"""Every notice the status page shows after an action, by code: never text from the URL."""
_REF = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


def notice_text(code: str, ref: str) -> str:
    """The notice of ``code`` (empty when unknown); ``ref`` (an RMA number) only if well formed."""
    template = NOTICES.get(code)
    if template is None:
        return ""
    return template.format(rma=ref if _REF.match(ref) else "RMA")


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    """Attach the session cookie (Secure when the request came over HTTPS)."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
