"""Rendering of the return form: language, shop identity, CSRF tokens, signed links."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from fastapi_csrf_protect import CsrfProtect
from itsdangerous import BadData, URLSafeTimedSerializer

from gateway.returns import i18n
from gateway.settings import Settings

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
LANG_COOKIE = "rs_lang"
CSRF_FIELD = "csrf_token"
ORDER_LINK_MAX_AGE_S = 3600

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    extensions=["jinja2.ext.i18n"],
)
_env.install_null_translations(newstyle=False)  # type: ignore[attr-defined]
templates = Jinja2Templates(env=_env)


CSRF_COOKIE = "rs_csrf"
CSRF_MAX_AGE_S = 2 * ORDER_LINK_MAX_AGE_S
CSRF_SALT = "fastapi-csrf-token"
"""The salt fastapi-csrf-protect signs its cookie with (``CsrfProtect.generate_csrf_tokens``)."""


class ReturnsCsrf(CsrfProtect):
    """Double-submit-cookie CSRF protection of the form posts (fastapi-csrf-protect).

    A subclass, so its class-level configuration is the form's alone.
    """


def csrf_tokens(request: Request, settings: Settings) -> tuple[str, str | None]:
    """The form token for a page, and the signed cookie to set (None: keep the one sent).

    A browser's valid cookie younger than half of :data:`CSRF_MAX_AGE_S` is kept and its
    token reused, so a second tab (or a reload) does not void the form of the first: each
    new pair would replace the one cookie that every open page's token is checked
    against. A missing, forged or older cookie gets a fresh pair (so a kept token has at
    least half the lifetime left).
    """
    key = settings.key("returns-csrf")
    sent = request.cookies.get(CSRF_COOKIE)
    if sent:
        try:
            token = URLSafeTimedSerializer(key, salt=CSRF_SALT).loads(
                sent, max_age=CSRF_MAX_AGE_S // 2
            )
        except BadData:  # forged, expired or over half its age: a new pair
            pass
        else:
            if isinstance(token, str) and token:
                return token, None
    token, signed = ReturnsCsrf().generate_csrf_tokens(key)
    return token, signed


def configure_csrf(settings: Settings) -> None:
    """Load the form's CSRF configuration (token in the form body, cookie on /returns)."""
    ReturnsCsrf.load_config(
        lambda: [
            ("secret_key", settings.key("returns-csrf")),
            ("token_location", "body"),
            ("token_key", CSRF_FIELD),
            ("cookie_key", CSRF_COOKIE),
            ("cookie_path", "/returns"),
            ("cookie_samesite", "lax"),
            ("cookie_secure", settings.env == "prod"),
            ("max_age", CSRF_MAX_AGE_S),
        ]
    )


def language(request: Request, settings: Settings) -> str:
    """The language of this request: ``?lang=``, the cookie, then ``Accept-Language``."""
    return i18n.choose_language(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language", ""),
        settings.default_language,
    )


def _signer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    # one key per kind of link (returns-order-link, returns-rma-link), never the sessions'
    return URLSafeTimedSerializer(settings.key(f"{salt}-link"), salt=salt)


def sign(settings: Settings, salt: str, value: str) -> str:
    """A URL-safe signed token carrying ``value`` (an order or RMA number)."""
    return str(_signer(settings, salt).dumps(value))


def unsign(settings: Settings, salt: str, token: str, max_age_s: int | None) -> str | None:
    """The value of a token signed by :func:`sign`, or None when forged or too old."""
    try:
        return str(_signer(settings, salt).loads(token, max_age=max_age_s))
    except BadData:
        return None


def page(
    request: Request,
    settings: Settings,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    csrf: bool = False,
) -> HTMLResponse:
    """Render template ``name`` in the request's language, with the shop and helpers.

    With ``csrf`` the form's token goes into the context and, unless the browser's cookie
    is kept (:func:`csrf_tokens`), its signed twin into a new cookie.
    """
    lang = language(request, settings)
    tr = i18n.translations(lang)
    csrf_token, signed = "", None  # empty until a form needs one  # nosec B105
    if csrf:
        csrf_token, signed = csrf_tokens(request, settings)
    full = {
        "lang": lang,
        "languages": i18n.LANGUAGE_NAMES,
        "_": tr.gettext,
        "gettext": tr.gettext,
        "ngettext": tr.ngettext,
        "money": lambda cents, currency: i18n.money(cents, currency, lang),
        "long_date": lambda day: i18n.long_date(day, lang),
        "shop_name": settings.shop_name,
        "shop_address": settings.shop_address.replace("\\n", "\n").splitlines(),
        "has_logo": bool(settings.shop_logo_path),
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token,
        "here": request.url.path,
        **context,
    }
    response = templates.TemplateResponse(request, name, full, status_code=status_code)
    if signed is not None:
        ReturnsCsrf().set_csrf_cookie(signed, response)
    asked = request.query_params.get("lang")
    if asked in i18n.LANGUAGES:
        response.set_cookie(LANG_COOKIE, str(asked), max_age=365 * 86400, samesite="lax")
    response.headers["Content-Language"] = lang
    response.headers["Cache-Control"] = "no-store"
    return response
