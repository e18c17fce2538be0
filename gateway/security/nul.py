"""Refuse NUL characters (U+0000) at the HTTP boundary, before any handler or database work.

PostgreSQL cannot store NUL in text (``DataError``, a 500) while SQLite stores it: the two
backends must not disagree, so the API refuses it everywhere, in this one place.
:class:`NulCharacterMiddleware` (ASGI) answers 422 with FastAPI's validation-error shape::

    {"detail": [{"loc": ["body", "lines", 0, "sku"],
                 "msg": "NUL character (U+0000) not allowed", "type": "nul_character"}]}

for a NUL in

- the path (``%00`` decoded by the server): ``loc`` ``["path"]``;
- a query parameter's name or value (``%00``): ``["query", name]``;
- a header's value (cookies included): ``["header", name]``;
- a request body that is not a form (JSON, or anything a handler may parse as JSON): any
  string, object key or value, at any depth: ``["body", ...keys and indexes]``.

The body is checked as it streams to the handler, under the route's own size cap (the
body limiter sits outside this middleware and raises 413 first), without a copy or a parse
in the common case: JSON can carry NUL only as the escape ``\\u0000`` (a raw 0x00 byte is
invalid UTF-8 JSON), so only a body holding that escape, or a 0x00 byte (UTF-16 JSON, which
``json.loads`` accepts), is parsed and walked; an escaped backslash followed by ``u0000`` is
no NUL and passes. A body that does not parse is left to the handler, which refuses it.

URL-encoded and multipart bodies pass untouched: file contents may hold any byte, and the
form parsers decide for their fields (the return forms drop NUL,
:func:`gateway.web.returns.routes._form`; the status-page forms refuse it,
:func:`gateway.security.access.form_data`).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from protocol.text import MAX_PLACES, NUL, NUL_ESCAPE, Loc, may_hold_nul, nul_places

MESSAGE = "NUL character (U+0000) not allowed"
ERROR_TYPE = "nul_character"
MAX_ERRORS = MAX_PLACES
"""At most this many places are named in one answer (a body may hold thousands)."""
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_ESCAPE = NUL_ESCAPE
_TAIL = len(_ESCAPE) - 1


class NulCharacterRefused(HTTPException):
    """A request value holds NUL: 422, ``detail`` a list of validation errors."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(status_code=422, detail=errors)
        self.errors = errors


def nul_error(loc: Loc) -> dict[str, Any]:
    """One validation error naming where a NUL was found (FastAPI's error shape)."""
    return {"loc": loc, "msg": MESSAGE, "type": ERROR_TYPE}


def body_errors(body: bytes) -> list[dict[str, Any]]:
    """The NUL errors of a JSON ``body``; empty when it holds none or does not parse."""
    if not may_hold_nul(body):
        return []
    try:
        document = json.loads(body)  # what Starlette's Request.json() does
    except (ValueError, RecursionError):
        return []  # not JSON: the handler refuses it
    return [nul_error(loc) for loc in nul_places(document, ["body"])]


def scope_errors(scope: Scope) -> list[dict[str, Any]]:
    """The NUL errors of the path, the query string and the headers of ``scope``."""
    errors: list[dict[str, Any]] = []
    if NUL in scope.get("path", ""):
        errors.append(nul_error(["path"]))
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if NUL in name or NUL in value:
                errors.append(nul_error(["query", name]))
    for raw_name, raw_value in scope.get("headers", []):
        if b"\x00" in raw_value or b"\x00" in raw_name:
            errors.append(nul_error(["header", raw_name.decode("latin-1").lower()]))
    return errors[:MAX_ERRORS]


def _content_type(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-type":
            return str(value.decode("latin-1")).split(";", 1)[0].strip().lower()
    return ""


class NulCharacterMiddleware:
    """Answer 422 to a request holding NUL where the module doc says (ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a NUL in the path, query or headers at once; watch the body as it is read."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        errors = scope_errors(scope)
        if errors:
            await _answer(errors, scope, receive, send)
            return
        if _content_type(scope) in FORM_TYPES:
            await self.app(scope, receive, send)
            return
        watch = _BodyWatch(receive)
        started = False

        async def send_unless_refused(message: Message) -> None:
            # whatever the app made of the refusal (a wrapped exception: 400), it is ours
            nonlocal started
            if watch.refused is None:
                started = started or message["type"] == "http.response.start"
                await send(message)
            elif not started:
                started = True
                await _answer(watch.refused, scope, receive, send)

        try:
            await self.app(scope, watch, send_unless_refused)
        except Exception:
            if watch.refused is None or started:
                raise
            await _answer(watch.refused, scope, receive, send)


async def _answer(errors: list[dict[str, Any]], scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"detail": errors}, status_code=422)(scope, receive, send)


class _BodyWatch:
    """A ``receive`` that raises :class:`NulCharacterRefused` with the body's last chunk.

    The middleware then answers the 422 itself, whatever response the app made of it.

    Chunks are kept by reference (the handler keeps them too until it joins them) and
    joined and parsed only when the escape or a 0x00 byte was seen, across chunk bounds.
    """

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.chunks: list[bytes] = []
        self.tail = b""
        self.suspect = False
        self.done = False
        self.refused: list[dict[str, Any]] | None = None

    async def __call__(self) -> Message:
        message = await self.receive()
        if message["type"] != "http.request" or self.done:
            return message
        chunk: bytes = message.get("body", b"")
        if chunk:
            if not self.suspect:
                self.suspect = (
                    _ESCAPE in chunk or b"\x00" in chunk or _ESCAPE in self.tail + chunk[:_TAIL]
                )
                self.tail = (self.tail + chunk[-_TAIL:])[-_TAIL:]
            self.chunks.append(chunk)
        if not message.get("more_body", False):
            self.done = True
            body = b"".join(self.chunks) if self.suspect else b""
            self.chunks = []
            errors = body_errors(body)
            if errors:
                self.refused = errors
                raise NulCharacterRefused(errors)
        return message
