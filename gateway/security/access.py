"""Who may call what: one table of rules for every route, pages and API alike.

:data:`RULES` maps each route (method, path template) to a :class:`Rule`: public, or the
scopes of which the caller needs one (``admin`` holds them all). It is enforced in two
steps, both driven by the table:

1. :class:`AuthenticationMiddleware` (ASGI, before routing and before any body is read)
   finds the rule of the request's path, and unless the route is public identifies the
   caller: API key (``X-API-Key`` / ``Authorization: Bearer``), user (HTTP Basic), or the
   browser session cookie. Credential checks are throttled and hashed off the event loop
   (:mod:`gateway.security.throttle`); a key found valid is trusted for
   :data:`gateway.services.auth.KEY_CACHE_TTL_S` (``app.state.key_cache``). A caller
   without valid credentials is refused there (401, a browser on a page: 303 to
   ``/login``), so no body is parsed for it.
2. :func:`authorize`, a dependency of every route of the app, checks the rule of the
   route that actually matched against the identified caller (403 without the scope) and,
   for a form post made with a browser session, the session's CSRF token. A route without
   a rule is refused (fail closed); a test walks ``app.routes`` against the table.

A browser session authenticates reads everywhere, and writes only on the status page's
form posts (``form=True``) with its CSRF token; the JSON API's writes need an API key or
HTTP Basic. Without credentials a GET is anonymous ``read`` when the settings allow it (dev).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs

import anyio.to_thread
from fastapi import Depends, HTTPException, Request, status
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.security.nul import MAX_ERRORS, NulCharacterRefused, nul_error
from gateway.services.auth import (
    ANONYMOUS,
    KeyCache,
    Principal,
    principal_for_key,
    principal_for_session,
    principal_for_user,
)
from gateway.settings import Settings
from protocol.text import NUL

log = logging.getLogger(__name__)
T = TypeVar("T")

SESSION_COOKIE = "rs_session"
SAFE_METHODS = frozenset({"GET", "HEAD"})
MAX_AUTH_HEADER = 4096
"""Longest Authorization / X-API-Key header looked at (characters)."""
MAX_USERNAME = 64
MAX_PASSWORD = 1024
CHALLENGE = {"WWW-Authenticate": 'Bearer, Basic realm="returns-sorter"'}


@dataclass(frozen=True)
class Rule:
    """What a route needs.

    Attributes:
        any_of: scopes of which the caller needs one; empty: public (nobody is identified).
        page: an HTML page: a browser without credentials is sent to ``/login``.
        form: a status-page form post: a browser session may call it, with its CSRF token.
        optional: public, but a caller who presents credentials is identified (and refused
            when they are wrong), e.g. ``/healthz`` shows details to a reader.
    """

    any_of: frozenset[str] = frozenset()
    page: bool = False
    form: bool = False
    optional: bool = False

    @property
    def public(self) -> bool:
        """True when anyone may call the route."""
        return not self.any_of


PUBLIC = Rule()
OPTIONAL = Rule(optional=True)


def need(*scopes: str, page: bool = False, form: bool = False) -> Rule:
    """A rule asking for one of ``scopes``."""
    return Rule(frozenset(scopes), page=page, form=form)


READ, LEAD, ADMIN = need("read"), need("lead"), need("admin")

RULES: dict[tuple[str, str], Rule] = {
    # -- RMAs, orders, reasons (shop back-ends write, leads decide) --------------------------
    ("POST", "/api/v1/rmas"): need("rmas:write"),
    ("POST", "/api/v1/rmas/expire-overdue"): LEAD,
    ("GET", "/api/v1/rmas/{number}"): READ,
    ("GET", "/api/v1/rmas"): READ,
    # shop triggers (cancel, ship) need rmas:write, the others lead: see rmas.post_transition
    ("POST", "/api/v1/rmas/{number}/transitions"): need("rmas:write", "lead"),
    ("POST", "/api/v1/rmas/{number}/ship"): need("rmas:write", "lead"),
    ("PUT", "/api/v1/rmas/{number}/tracking"): need("rmas:write", "lead"),
    ("POST", "/api/v1/rmas/{number}/receipts"): LEAD,
    ("POST", "/api/v1/rmas/{number}/decision"): LEAD,
    ("POST", "/api/v1/rmas/{number}/lines/{line_no}/units/{unit_no}/decision"): LEAD,
    ("GET", "/api/v1/rmas/{number}/label.pdf"): READ,
    # carriers: no API key, each signs with its own secret (see routes/tracking.py)
    ("POST", "/api/v1/tracking/events"): PUBLIC,
    ("POST", "/api/v1/orders"): need("orders:write"),
    ("PUT", "/api/v1/orders/{order_ref}"): need("orders:write"),
    ("GET", "/api/v1/orders/{order_ref}"): READ,
    ("PUT", "/api/v1/catalogue/{sku}"): need("catalogue:write"),
    ("POST", "/api/v1/catalogue/import"): need("catalogue:write"),
    ("GET", "/api/v1/catalogue/{sku}"): READ,
    ("GET", "/api/v1/catalogue"): READ,
    ("GET", "/api/v1/reasons"): READ,
    ("PUT", "/api/v1/reasons/{code}"): LEAD,
    # -- accounting, webhooks --------------------------------------------------------------
    ("GET", "/api/v1/credits"): READ,
    ("GET", "/api/v1/stock"): READ,
    ("GET", "/api/v1/reports/financial"): READ,
    ("GET", "/api/v1/reports/shift"): READ,
    ("GET", "/api/v1/webhooks/deliveries"): READ,
    ("POST", "/api/v1/webhooks/deliveries/{delivery_id}/replay"): LEAD,
    ("GET", "/api/v1/connectors/jobs"): READ,
    ("POST", "/api/v1/connectors/jobs/{job_id}/replay"): LEAD,
    ("GET", "/api/v1/webhooks/endpoints"): ADMIN,
    ("POST", "/api/v1/webhooks/endpoints"): ADMIN,
    ("POST", "/api/v1/webhooks/endpoints/{name}/rotate"): ADMIN,
    ("DELETE", "/api/v1/webhooks/endpoints/{name}"): ADMIN,
    # customer e-mails: leads (the list holds customers' addresses)
    ("GET", "/api/v1/notifications"): LEAD,
    ("POST", "/api/v1/notifications/{notification_id}/replay"): LEAD,
    # -- access ----------------------------------------------------------------------------
    ("GET", "/api/v1/api-keys"): ADMIN,
    ("POST", "/api/v1/api-keys"): ADMIN,
    ("DELETE", "/api/v1/api-keys/{name}"): ADMIN,
    ("GET", "/api/v1/users"): ADMIN,
    ("POST", "/api/v1/users"): ADMIN,
    ("DELETE", "/api/v1/users/{username}"): ADMIN,
    ("GET", "/api/v1/audit"): ADMIN,
    # -- stations and what they report -----------------------------------------------------
    ("GET", "/api/v1/stations"): READ,
    ("POST", "/api/v1/stations/{station}/commands"): LEAD,
    ("GET", "/api/v1/stations/{station}/commands"): READ,
    ("GET", "/api/v1/events"): READ,
    ("GET", "/api/v1/lanes"): READ,
    ("PUT", "/api/v1/policy"): ADMIN,
    ("GET", "/api/v1/photos/{sha256}"): READ,
    ("GET", "/api/v1/alarms"): READ,
    ("POST", "/api/v1/alarms/{alarm_id}/ack"): LEAD,
    ("GET", "/metrics"): READ,
    # -- health and docs -------------------------------------------------------------------
    ("GET", "/livez"): PUBLIC,
    ("GET", "/healthz"): OPTIONAL,
    ("GET", "/openapi.json"): READ,
    ("GET", "/docs"): need("read", page=True),
    ("GET", "/redoc"): need("read", page=True),
    # -- the status page -------------------------------------------------------------------
    ("GET", "/"): need("read", page=True),
    ("GET", "/partials/{section}"): READ,
    ("GET", "/rmas"): need("read", page=True),
    ("GET", "/api/v1/stream"): READ,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("POST", "/quarantine/{number}"): need("lead", form=True),
    ("POST", "/quarantine/{number}/units/{line_no}/{unit_no}"): need("lead", form=True),
    ("POST", "/rmas/{number}/approval"): need("lead", form=True),
    ("POST", "/alarms/{alarm_id}/ack"): need("lead", form=True),
    ("GET", "/stations/{station}/confirm"): need("lead", page=True),
    ("POST", "/stations/{station}/commands"): need("lead", form=True),
    # -- the customer return form (public; its own CSRF and rate limits) -------------------
    ("GET", "/returns"): PUBLIC,
    ("POST", "/returns"): PUBLIC,
    ("GET", "/returns/order/{link}"): PUBLIC,
    ("POST", "/returns/order/{link}"): PUBLIC,
    ("GET", "/returns/rma/{ticket}"): PUBLIC,
    ("GET", "/returns/rma/{ticket}/label.pdf"): PUBLIC,
    ("GET", "/returns/logo"): PUBLIC,
}
"""Every route of the gateway and what it needs (a test checks it against ``app.routes``)."""

PUBLIC_MOUNTS = ("/static", "/returns/static")
"""Static files (CSS, scripts): public, outside the table."""


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{body}$")


_MATCHERS: list[tuple[str, int, re.Pattern[str], Rule]] = sorted(
    (
        (method, template.count("{"), _compile(template), rule)
        for (method, template), rule in RULES.items()
    ),
    key=lambda m: m[1],
)


def rule_for_path(method: str, path: str) -> Rule | None:
    """The rule of a concrete request path (fewest path parameters first), or None."""
    method = "GET" if method == "HEAD" else method
    for m, _params, pattern, rule in _MATCHERS:
        if m == method and pattern.match(path):
            return rule
    return None


class AuthFailure(Exception):
    """A request refused while identifying its caller (status, detail, headers)."""

    def __init__(self, status_code: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers or {}


def client_address(scope: Scope) -> str:
    """The client's address as the app sees it (after a trusted proxy's X-Forwarded-For)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return "", ""
    username, _, password = decoded.partition(":")
    return username, password


async def identify(request: Request, rule: Rule) -> Principal | None:
    """The caller of ``request`` by its credentials, or None when it presents none.

    Raises:
        AuthFailure: 401 on wrong credentials, 429 while the address or user is throttled,
            503 when too many password checks wait.
    """
    app = request.app
    settings: Settings = app.state.settings
    throttle = app.state.throttle
    address = client_address(request.scope)
    header = request.headers.get("authorization", "")
    key = request.headers.get("x-api-key")
    scheme, _, value = header.partition(" ")
    if len(header) > MAX_AUTH_HEADER or (key is not None and len(key) > MAX_AUTH_HEADER):
        raise AuthFailure(401, "credentials too long", CHALLENGE)
    if key or scheme.lower() == "bearer":
        wait = throttle.refusal(address)
        if wait is not None:
            raise AuthFailure(429, "too many failed attempts", {"Retry-After": str(wait)})
        plain = (key or value).strip()
        cache: KeyCache = app.state.key_cache
        principal = cache.get(plain)  # checked valid less than KEY_CACHE_TTL_S ago
        if principal is None:
            principal = await anyio.to_thread.run_sync(
                _with_session, app, principal_for_key, plain, cache
            )
        if principal is None:
            throttle.failed(address)
            raise AuthFailure(401, "missing or invalid credentials (API key or user)", CHALLENGE)
        return principal
    if scheme.lower() == "basic":
        username, password = _basic(value)
        return await check_password(request, username, password)
    token = request.cookies.get(SESSION_COOKIE)
    if token and len(token) <= 128 and (request.method in SAFE_METHODS or rule.form):
        found = await anyio.to_thread.run_sync(_with_session, app, principal_for_session, token)
        if found is not None:
            return found
    if request.method in SAFE_METHODS and settings.allow_anonymous_read:
        return ANONYMOUS
    return None


async def check_password(request: Request, username: str, password: str) -> Principal:
    """Check a user's password: throttled first, then Argon2 off the event loop.

    Used by HTTP Basic and the sign-in form alike.

    Raises:
        AuthFailure: 401 wrong user or password, 429 throttled, 503 too many waiting.
    """
    from gateway.security.throttle import Busy

    throttle = request.app.state.throttle
    address = client_address(request.scope)
    bad = AuthFailure(401, "missing or invalid credentials (API key or user)", CHALLENGE)
    if (
        not username
        or len(username) > MAX_USERNAME
        or len(password) > MAX_PASSWORD
        or NUL in username  # no user has one; PostgreSQL refuses it in the lookup (a 500)
    ):
        throttle.failed(address)
        raise bad
    wait = throttle.refusal(address, username)
    if wait is not None:
        log.warning("credential check throttled address=%s user=%s", address, username)
        raise AuthFailure(429, "too many failed attempts", {"Retry-After": str(wait)})
    try:
        principal: Principal | None = await throttle.hash_off_loop(
            _with_session, request.app, principal_for_user, username, password
        )
    except Busy as exc:
        raise AuthFailure(503, str(exc), {"Retry-After": "1"}) from exc
    if principal is None:
        throttle.failed(address, username)
        raise bad
    throttle.succeeded(address, username)
    return principal


def _with_session(app: Any, fn: Callable[..., T], *args: Any) -> T:
    with app.state.db.session() as session:
        return fn(session, *args)


def _refusal(request: Request, rule: Rule, failure: AuthFailure) -> Response:
    if failure.status_code == 401 and rule.page and _wants_html(request):
        return RedirectResponse("/login", status_code=303)
    return JSONResponse(
        {"detail": failure.detail}, status_code=failure.status_code, headers=failure.headers
    )


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


class AuthenticationMiddleware:
    """Identify the caller before routing and before any body is read (see module doc).

    Leaves the principal (or None) in ``scope["state"]["principal_obj"]`` for
    :func:`authorize`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Identify, refuse early when needed, else call the app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        rule = rule_for_path(request.method, request.url.path)
        principal: Principal | None = None
        if rule is not None and (not rule.public or rule.optional):
            try:
                principal = await identify(request, rule)
            except AuthFailure as failure:
                await _refusal(request, rule, failure)(scope, receive, send)
                return
            if principal is None and not rule.public:
                missing = AuthFailure(401, "missing or invalid credentials", CHALLENGE)
                await _refusal(request, rule, missing)(scope, receive, send)
                return
        scope.setdefault("state", {})["principal_obj"] = principal
        if principal is not None:
            scope["state"]["principal"] = principal.name
        await self.app(scope, receive, send)


async def authorize(request: Request) -> Principal:
    """Check the matched route's rule against the caller (a dependency of every route).

    Returns the caller (the anonymous principal on a public route without credentials).

    Raises:
        HTTPException: 401 without credentials, 403 without the scope or, for a session's
            form post, without its CSRF token; 403 for a route missing from :data:`RULES`.
    """
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    method = "GET" if request.method == "HEAD" else request.method
    rule = RULES.get((method, str(path)))
    if rule is None:
        log.error("no access rule for %s %s: refused", method, path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="no access rule for this route")
    state: dict[str, Any] = request.scope.get("state", {})
    principal: Principal | None = state.get("principal_obj")
    if rule.public:
        return principal or Principal("anonymous", frozenset(), via="anonymous")
    if principal is None:
        raise HTTPException(401, detail="missing or invalid credentials", headers=CHALLENGE)
    if not any(principal.can(scope) for scope in rule.any_of):
        needed = " or ".join(sorted(rule.any_of))
        raise HTTPException(403, detail=f"{principal.name} lacks scope {needed}")
    if principal.via == "session" and request.method not in SAFE_METHODS:
        form = await form_data(request)
        if not rule.form or not principal.csrf:
            raise HTTPException(403, detail="a browser session cannot call this; use an API key")
        # as bytes: str arguments holding non-ASCII raise TypeError (a 500)
        if not hmac.compare_digest(principal.csrf.encode(), form.get("csrf", "").encode()):
            raise HTTPException(403, detail="missing or wrong CSRF token: reload the page")
    return principal


Caller = Annotated[Principal, Depends(authorize)]
"""The authorised caller of a route (the table's rule already checked)."""


async def form_data(request: Request, *, refuse_nul: bool = True) -> dict[str, str]:
    """Parse an ``application/x-www-form-urlencoded`` body (first value of each field).

    The status-page forms: no browser sends a NUL character (``%00``) and PostgreSQL
    cannot store one, so a field name or value holding one is refused (422, the shape of
    :mod:`gateway.security.nul`) unless ``refuse_nul`` is false (the sign-in form, where
    :func:`check_password` takes such a user name for a wrong credential).

    Raises:
        NulCharacterRefused: a NUL in a field's name or value (``loc`` ``["body", name]``).
    """
    body = (await request.body()).decode("utf-8", "replace")
    fields = parse_qs(body, keep_blank_values=True)
    if refuse_nul:
        errors = [
            nul_error(["body", name])
            for name, values in fields.items()
            if NUL in name or any(NUL in v for v in values)
        ]
        if errors:
            raise NulCharacterRefused(errors[:MAX_ERRORS])
    return {k: v[0] for k, v in fields.items()}
