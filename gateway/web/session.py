"""Browser sessions for the status page: a login cookie signed with the settings' secret.

The cookie holds the user name, a per-login CSRF token and the issue time, signed with
HMAC-SHA256 under ``RS_SECRET_KEY``; it is re-checked against the users table on every
request (a deactivated user is out at once). Form posts carry the CSRF token in a hidden
field. Tools keep using ``X-API-Key`` or HTTP Basic; anonymous viewing follows
``Settings.allow_anonymous_read`` (dev only by default).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import User
from gateway.services.auth import ROLE_SCOPES, Principal, principal_for_key, principal_for_user
from gateway.settings import Settings

COOKIE = "rs_session"
MAX_AGE_S = 12 * 3600


@dataclass(frozen=True)
class WebUser:
    """Who looks at the page: name, scopes, and the CSRF token of a cookie session."""

    name: str
    scopes: frozenset[str]
    csrf: str = ""

    @property
    def can_act(self) -> bool:
        """True for leads and admins (the page shows their action buttons)."""
        return "lead" in self.scopes or "admin" in self.scopes

    @property
    def principal(self) -> Principal:
        """The same caller as a :class:`gateway.services.auth.Principal`."""
        return Principal(self.name, self.scopes)


def _mac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign(secret: str, data: dict[str, object]) -> str:
    """Return ``base64url(json).hmac`` for ``data``."""
    body = base64.urlsafe_b64encode(json.dumps(data, sort_keys=True).encode())
    return f"{body.decode()}.{_mac(secret, body)}"


def unsign(secret: str, token: str, max_age_s: float = MAX_AGE_S) -> dict[str, object] | None:
    """Return the data of a valid, unexpired token, or None."""
    body, _, mac = token.rpartition(".")
    if not body or not hmac.compare_digest(mac, _mac(secret, body.encode())):
        return None
    try:
        data: object = json.loads(base64.urlsafe_b64decode(body.encode()))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    issued = data.get("t")
    if not isinstance(issued, int | float) or time.time() - issued > max_age_s:
        return None
    return data


def new_session_cookie(settings: Settings, username: str) -> str:
    """A signed cookie value for ``username`` with a fresh CSRF token."""
    return sign(
        settings.secret_key, {"u": username, "c": secrets.token_urlsafe(24), "t": time.time()}
    )


def web_user(request: Request, session: Session) -> WebUser | None:
    """Identify the viewer: session cookie, then API key / HTTP Basic, then anonymous (dev)."""
    settings: Settings = request.app.state.settings
    token = request.cookies.get(COOKIE)
    data = unsign(settings.secret_key, token) if token else None
    if data is not None:
        user = session.scalar(select(User).where(User.username == str(data.get("u"))))
        if user is not None and user.active:
            scopes = ROLE_SCOPES.get(user.role, frozenset())
            return WebUser(f"user:{user.username}", scopes, str(data.get("c", "")))
    principal = _header_principal(request, session)
    if principal is not None:
        return WebUser(principal.name, principal.scopes)
    if settings.allow_anonymous_read:
        return WebUser("anonymous", frozenset({"read"}))
    return None


def _header_principal(request: Request, session: Session) -> Principal | None:
    header = request.headers.get("authorization", "")
    key = request.headers.get("x-api-key")
    scheme, _, value = header.partition(" ")
    if key or scheme.lower() == "bearer":
        return principal_for_key(session, key or value.strip())
    if scheme.lower() == "basic":
        try:
            username, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return principal_for_user(session, username, password) if username else None
    return None


async def form_data(request: Request) -> dict[str, str]:
    """Parse an ``application/x-www-form-urlencoded`` body (first value of each field)."""
    body = (await request.body()).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def csrf_ok(user: WebUser, form: dict[str, str]) -> bool:
    """True when the form's ``csrf`` field matches the session's token."""
    return bool(user.csrf) and hmac.compare_digest(user.csrf, form.get("csrf", ""))
