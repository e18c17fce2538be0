"""``/returns``: the public return form (no account), its pages, assets and set-up."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from gateway.returns.limits import FormLimiter
from gateway.settings import Settings
from gateway.web.returns.render import STATIC_DIR, configure_csrf
from gateway.web.returns.routes import router


def install(app: FastAPI, settings: Settings, *, max_body_size: int | None = None) -> None:
    """Register the form's routes and assets on ``app``, with its own rate limiter.

    Request bodies of the form are capped at ``max_body_size`` bytes (413 beyond).
    """
    app.state.returns_limiter = FormLimiter(settings)
    configure_csrf(settings)
    app.include_router(router, max_body_size=max_body_size)
    app.mount("/returns/static", StaticFiles(directory=STATIC_DIR), name="returns-static")
