"""Security headers on every response, and the API documentation pages behind them.

:class:`SecurityHeadersMiddleware` (ASGI) adds, unless the response set its own:

- ``Content-Security-Policy``: scripts, styles, images and connections from this origin
  only, no inline script or style (the pages have none: ``web/static/live.js`` and the
  return form's ``returns.js`` are files), no plugins, forms posting here only, no
  framing (``frame-ancestors 'none'``, and ``X-Frame-Options: DENY`` for old browsers);
- ``X-Content-Type-Options: nosniff``; ``Referrer-Policy: no-referrer`` (the return form's
  links carry signed tokens); ``Cross-Origin-Opener-Policy: same-origin``;
  ``Permissions-Policy`` denying camera, microphone and geolocation;
- ``Strict-Transport-Security`` when the request came over HTTPS (directly or through a
  trusted proxy, see ``RS_TRUSTED_PROXIES``);
- ``Cache-Control: no-store`` on everything but static files and responses that chose
  their own caching (photos).

The Swagger UI and ReDoc pages load their scripts from a CDN and start with an inline
script: :func:`docs_page` serves them with a per-response nonce and a policy of their own.
"""

from __future__ import annotations

import secrets

from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.datastructures import MutableHeaders
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
"""The policy of every page and API response (no inline script or style anywhere)."""
DOCS_CDN = "https://cdn.jsdelivr.net"
HSTS = "max-age=31536000"
STATIC_PREFIXES = ("/static/", "/returns/static/")
_FIXED = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
)


class SecurityHeadersMiddleware:
    """Add the headers of the module doc to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to its response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        static = str(scope.get("path", "")).startswith(STATIC_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _FIXED:
                    if name not in headers:
                        headers[name] = value
                if https:
                    headers.setdefault("strict-transport-security", HSTS)
                if not static:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def docs_page(kind: str, title: str, openapi_url: str = "/openapi.json") -> HTMLResponse:
    """The Swagger UI (``kind="swagger"``) or ReDoc page, with a nonce-based policy."""
    nonce = secrets.token_urlsafe(16)
    if kind == "swagger":
        page = get_swagger_ui_html(openapi_url=openapi_url, title=title)
    else:
        page = get_redoc_html(openapi_url=openapi_url, title=title)
    html = bytes(page.body).decode().replace("<script", f'<script nonce="{nonce}"')
    policy = (
        f"default-src 'none'; script-src 'nonce-{nonce}' {DOCS_CDN}; "
        f"style-src 'unsafe-inline' {DOCS_CDN} https://fonts.googleapis.com; "
        f"img-src 'self' data: {DOCS_CDN} https://fastapi.tiangolo.com; "
        "font-src https://fonts.gstatic.com; connect-src 'self'; worker-src blob:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": policy})
