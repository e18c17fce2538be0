"""Gateway application factory and the ``returns-gateway`` command.

Run: ``returns-gateway --port 8000`` or ``python -m gateway.main --port 8000``; everything
else comes from ``RS_*`` environment variables (see :class:`gateway.settings.Settings`).
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import Depends, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway.api.deps import AUDITED
from gateway.api.errors import install_error_handlers
from gateway.api.routes import (
    access,
    accounting,
    catalogue,
    health,
    notifications,
    orders,
    photos,
    policy,
    reasons,
    rmas,
    stations,
    tracking,
    webhooks,
)
from gateway.api.routes import alarms as alarm_routes
from gateway.api.routes import connectors as connector_routes
from gateway.api.routes import metrics as metric_routes
from gateway.connectors import build_connectors
from gateway.connectors.base import ConnectorWorker
from gateway.db import Database
from gateway.models import AuditEntry
from gateway.mqtt_bridge import MqttBridge
from gateway.security import logs
from gateway.security.access import AuthenticationMiddleware, Caller, authorize
from gateway.security.headers import SecurityHeadersMiddleware, docs_page
from gateway.security.nul import NulCharacterMiddleware
from gateway.security.throttle import CredentialThrottle
from gateway.services import credits as credit_service
from gateway.services.auth import KeyCache, ensure_bootstrap_key
from gateway.services.expiry import ExpiryWorker
from gateway.services.leader import LeaderLease
from gateway.services.notifications import NotificationWorker
from gateway.services.photos import PhotoStore
from gateway.services.quotas import RetentionWorker, StationQuotas
from gateway.services.reasons import seed_reasons
from gateway.services.revisions import ensure_site
from gateway.services.webhook_endpoints import ensure_configured
from gateway.services.webhooks import WebhookWorker
from gateway.settings import Settings
from gateway.web import actions, pages
from gateway.web import returns as returns_form
from gateway.web.live import LiveWorker

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KIB = 1024
API_MAX_BODY = 1024 * KIB
"""Largest request body of the JSON API (an RMA of 500 lines is about 150 KiB)."""
ORDERS_MAX_BODY = 4096 * KIB
"""Largest body of ``/api/v1/orders`` (lines may list thousands of serials)."""
RETURN_FORM_MAX_BODY = 32 * KIB
"""Largest post of the customer return form (lines, reason, a note of 4000 characters)."""
PAGE_FORM_MAX_BODY = 8 * KIB
"""Largest sign-in or status-page action post."""

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway app.

    The lifespan migrates the database to the newest schema (Alembic), makes sure the
    site's revision counter, the seeded reason list and the bootstrap API key (when set)
    exist, wires automatic accounting to the bridge, starts the MQTT bridge (which connects
    in the background and keeps reconnecting), the webhook endpoint of ``RS_WEBHOOK_URL``
    (when set), the webhook worker and the customer e-mail worker (when an SMTP host is
    set), and stops them and the database on shutdown.
    ``app.state`` then holds ``settings``, ``db`` (:class:`gateway.db.Database`) and ``bridge``
    (:class:`gateway.mqtt_bridge.MqttBridge`). Every authenticated write is audited.

    Every route is authorised from one table (:mod:`gateway.security.access`), callers are
    identified before any body is read, bodies are capped per route (413: the
    ``*_MAX_BODY`` constants here), a NUL character in a path, query, header or JSON body
    is refused with 422 (:mod:`gateway.security.nul`), responses carry the security headers of
    :mod:`gateway.security.headers`, and ``X-Forwarded-*`` is believed only from
    ``RS_TRUSTED_PROXIES``.

    Args:
        settings: configuration; default: read from ``RS_*`` environment variables.

    Raises:
        pydantic.ValidationError: when settings are read from the environment and invalid.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        db.migrate()
        with db.session() as session:
            for site in settings.sites:
                ensure_site(session, site)
            seed_reasons(session)
            if settings.bootstrap_api_key:
                ensure_bootstrap_key(session, settings.bootstrap_api_key)
            ensure_configured(session, settings)
        quotas = StationQuotas.from_settings(settings)
        lease = LeaderLease(db.engine)  # background jobs: once across replicas
        photo_store = PhotoStore(
            settings.photo_dir,
            settings.photo_retention_days,
            quotas.orphan_photos,
            leader=lease.held,
        )
        app.state.photos = photo_store
        bridge = MqttBridge(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            site=settings.site,
            sites=settings.sites,
            sessions=db.sessions,
            client_id=settings.mqtt_client_id,
            shared_group=settings.mqtt_share_group,
            username=settings.mqtt_username,
            password=settings.mqtt_password,
            tls_ca=settings.mqtt_tls_ca,
            photos=photo_store,
            quotas=quotas,
            batch_max=settings.mqtt_batch_max,
            batch_wait_ms=settings.mqtt_batch_wait_ms,
            is_leader=lease.held,
            announce_poll_s=settings.mqtt_announce_poll_s,
        )
        app.state.db = db
        app.state.bridge = bridge
        credit_service.configure(settings)
        expiry = ExpiryWorker(db.sessions, settings, lease.held)
        expiry.start()
        retention = RetentionWorker(
            db.sessions,
            quotas,
            photo_store.purge_orphans,
            idempotency_s=settings.idempotency_days * 86_400.0,
        )
        retention.start()
        http = httpx.Client(timeout=10)
        # endpoints come and go at run time; deliveries give way while the ingest is behind
        worker = WebhookWorker(db.sessions, settings, http, lease.held, bridge.behind)
        worker.start()
        shops: ConnectorWorker | None = None
        if settings.connectors:  # issue 18: refunds and stock movements to the shops
            shops = ConnectorWorker(
                db.sessions, settings, build_connectors(settings), bridge.behind
            )
            shops.start()
        mailer: NotificationWorker | None = None
        if settings.smtp_host:  # customer e-mails
            mailer = NotificationWorker(db.sessions, settings, lease.held, bridge.behind)
            mailer.start()
        bridge.start()
        live = LiveWorker(db.sessions)  # issue 7: alarms from events, live page updates
        live.start()
        app.state.live = live
        log.info("gateway started sites=%s env=%s", ",".join(settings.sites), settings.env)
        try:
            yield
        finally:
            live.stop()
            bridge.stop()
            expiry.stop()
            retention.stop()
            worker.stop()
            if mailer is not None:
                mailer.stop()
            if shops is not None:
                shops.stop()
            http.close()
            lease.release()
            credit_service.configure(None)
            db.dispose()
            log.info("gateway stopped site=%s", settings.site)

    app = FastAPI(
        title="returns-sorter gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(authorize)],
        max_body_size=API_MAX_BODY,
    )
    app.state.settings = settings
    app.state.throttle = CredentialThrottle(settings)
    app.state.key_cache = KeyCache()  # API keys found valid, for KEY_CACHE_TTL_S
    install_error_handlers(app)
    app.add_middleware(AuthenticationMiddleware)
    # outside identification: a NUL never reaches a lookup or a write (nor the audit row,
    # whose caller is not known yet)
    app.add_middleware(NulCharacterMiddleware)

    @app.middleware("http")
    async def audit_writes(request: Request, call_next: Callable[..., Any]) -> Response:
        response: Response = await call_next(request)
        principal = getattr(request.state, "principal", None)
        audited = getattr(request.state, AUDITED, False)  # in the route's transaction
        if (
            request.method in WRITE_METHODS
            and principal
            and not audited
            and hasattr(app.state, "db")
        ):
            entry = AuditEntry(
                principal=principal,
                method=request.method,
                path=request.url.path[:500],
                status_code=response.status_code,
            )
            with app.state.db.session() as session:
                session.add(entry)
                session.commit()
        return response

    app.add_middleware(SecurityHeadersMiddleware)
    proxies = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
    if proxies:  # outermost: everything after sees the client's address and scheme
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)

    routers = (
        rmas,
        catalogue,
        reasons,
        accounting,
        webhooks,
        connector_routes,
        notifications,
        access,
        stations,
        policy,
        photos,
    )
    for module in routers:
        app.include_router(module.router)
    app.include_router(orders.router, max_body_size=ORDERS_MAX_BODY)
    app.include_router(tracking.router, max_body_size=tracking.MAX_BODY)
    app.include_router(health.router)
    app.include_router(pages.router)
    returns_form.install(app, settings, max_body_size=RETURN_FORM_MAX_BODY)
    app.include_router(actions.router, max_body_size=PAGE_FORM_MAX_BODY)
    app.include_router(alarm_routes.router)
    app.include_router(metric_routes.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    _docs(app)
    return app


def _docs(app: FastAPI) -> None:
    """The OpenAPI schema and its two viewers, authorised like every route (``read``)."""

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_who: Caller) -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False)
    def swagger(_who: Caller) -> Response:
        return docs_page("swagger", f"{app.title} - API")

    @app.get("/redoc", include_in_schema=False)
    def redoc(_who: Caller) -> Response:
        return docs_page("redoc", f"{app.title} - API")


def tune_collector(threshold: tuple[int, int, int]) -> dict[str, object]:
    """Freeze the start-up heap and set the cyclic collector's thresholds (once, at start).

    Everything allocated so far (modules, the app, its routes and models) moves to the
    permanent generation and is never scanned again; ``threshold`` then sets how often
    the collector runs (see :data:`gateway.settings.GC_THRESHOLD`). The gateway's own
    process only: tests that build apps in their process keep the interpreter's
    collector. Returns what was done, for the log.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*threshold)
    return {"frozen": gc.get_freeze_count(), "threshold": list(gc.get_threshold())}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gateway with uvicorn until interrupted; return the exit status.

    ``--host`` / ``--port`` override ``RS_HTTP_HOST`` / ``RS_HTTP_PORT``. Exits with 2 when
    the settings are invalid (e.g. the placeholder secret outside dev).
    ``returns-gateway import-orders FILE.csv`` imports orders instead (see
    :mod:`gateway.returns.order_csv`), ``returns-gateway pull-orders SHOP`` from a shop's
    connector (:mod:`gateway.connectors.pull`), ``returns-gateway import-catalogue FILE.csv`` the
    product catalogue (:mod:`gateway.catalogue_csv`); ``returns-gateway access ...`` lists
    and revokes keys and users (:mod:`gateway.access_cli`).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["import-orders"]:
        from gateway.returns import order_csv

        return order_csv.main(args_list[1:])
    if args_list[:1] == ["pull-orders"]:
        from gateway.connectors import pull

        return pull.main(args_list[1:])
    if args_list[:1] == ["access"]:
        from gateway import access_cli

        return access_cli.main(args_list[1:])
    if args_list[:1] == ["import-catalogue"]:
        from gateway import catalogue_csv

        return catalogue_csv.main(args_list[1:])
    parser = argparse.ArgumentParser(
        prog="returns-gateway",
        description="Returns-sorter gateway: RMA API, MQTT bridge and status page. "
        "Other settings come from RS_* environment variables "
        "(RS_DATABASE_URL, RS_MQTT_HOST, RS_MQTT_PORT, RS_SITE, RS_ENV, RS_SECRET_KEY).",
    )
    parser.add_argument("--host", help="HTTP listen address (default: RS_HTTP_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (default: RS_HTTP_PORT or 8000)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    args = parser.parse_args(args_list)
    logs.configure(args.log_level)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"returns-gateway: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    host = args.host or settings.http_host
    port = args.port or settings.http_port
    app = create_app(settings)
    log.info("collector tuned %s", tune_collector(settings.gc_threshold))
    # Open status-page streams (SSE) never end by themselves: give them 3 s on shutdown.
    # Proxy headers are handled by the app itself (RS_TRUSTED_PROXIES), logging by ours.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=args.log_level,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=3,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
