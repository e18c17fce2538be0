"""FastAPI dependencies: settings, database session, MQTT bridge and the caller.

Who may call a route is decided in one place, :mod:`gateway.security.access` (its
``RULES`` table); routes take the already-authorised caller as :data:`Caller`.

The dependencies that only read ``app.state`` are ``async`` so that FastAPI calls them on
the event loop instead of handing each to the thread pool (a thread round trip apiece).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.models import AuditEntry
from gateway.mqtt_bridge import MqttBridge
from gateway.security import access
from gateway.services.auth import Principal
from gateway.services.row_sink import add_row
from gateway.settings import Settings


async def get_settings(request: Request) -> Settings:
    """Return the settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_db(request: Request) -> Database:
    """Return the app's database (set up by the lifespan)."""
    db: Database = request.app.state.db
    return db


def get_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    """Yield a request-scoped session, rolled back on error and closed afterwards."""
    with db.session() as session:
        yield session


async def get_bridge(request: Request) -> MqttBridge:
    """Return the app's MQTT bridge (started by the lifespan)."""
    bridge: MqttBridge = request.app.state.bridge
    return bridge


#: ``request.state`` attribute a route sets once it committed the request's audit row itself
AUDITED = "audited"


def audit_in_transaction(session: Session, request: Request, status_code: int) -> None:
    """Add the audit row of this write (``status_code`` answered) to the route's transaction.

    Into the session's open row sink when it holds one (:func:`gateway.services.row_sink.add_row`:
    nothing reads the row back), else as an ORM object. Call :func:`mark_audited` once it
    committed, so the app's audit middleware does not write it a second time in a
    transaction of its own.
    """
    add_row(
        session,
        AuditEntry,
        principal=getattr(request.state, "principal", "anonymous"),
        method=request.method,
        path=request.url.path[:500],
        status_code=status_code,
    )


def mark_audited(request: Request) -> None:
    """Tell the audit middleware that this request's row is committed already."""
    setattr(request.state, AUDITED, True)


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_db)]
SessionDep = Annotated[Session, Depends(get_session)]
BridgeDep = Annotated[MqttBridge, Depends(get_bridge)]


Caller = access.Caller
"""The authorised caller; what each route needs is in :data:`gateway.security.access.RULES`."""


def known_sites(settings: Settings, sites: list[str]) -> list[str]:
    """``sites`` when each is one of the gateway's (``settings.sites``).

    Raises:
        HTTPException: 422 naming the sites the gateway does not serve.
    """
    unknown = sorted(set(sites) - set(settings.sites))
    if unknown:
        raise HTTPException(422, detail=f"unknown sites {unknown}; known: {settings.sites}")
    return sites


def get_site_filter(
    settings: SettingsDep,
    caller: Caller,
    site: Annotated[
        str | None,
        Query(max_length=64, description="Only this site's (default, or empty: every site)"),
    ] = None,
) -> list[str] | None:
    """The sites a list request covers: None (every site, for an unlimited caller).

    ``?site=`` names one; a caller limited to sites (``Principal.sites``) sees only
    those, so its lists never hold another site's rows.

    Raises:
        HTTPException: 422 for a site the gateway does not serve; 403 for a site the
            caller may not see.
    """
    if site:
        known_sites(settings, [site])
        if not caller.may_use(site):
            raise HTTPException(403, detail=f"this caller may not see site {site!r}")
        return [site]
    if caller.sites:
        return sorted(caller.sites)
    return None


SiteFilter = Annotated[list[str] | None, Depends(get_site_filter)]
"""The sites a list request covers (None: every site); see :func:`get_site_filter`."""


def require_site(caller: Principal, site: str, what: str) -> None:
    """404 when the caller may not see ``site`` (``what`` names the row: "RMA 'R1'").

    Not 403: a caller limited to other sites is not told that the row exists.
    """
    if not caller.may_use(site):
        raise HTTPException(404, detail=f"{what} not found")
