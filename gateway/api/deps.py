"""FastAPI dependencies: settings, database session, MQTT bridge and the caller.

Who may call a route is decided in one place, :mod:`gateway.security.access` (its
``RULES`` table); routes take the already-authorised caller as :data:`Caller`.

The dependencies that only read ``app.state`` are ``async`` so that FastAPI calls them on
the event loop instead of handing each to the thread pool (a thread round trip apiece).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.models import AuditEntry
from gateway.mqtt_bridge import MqttBridge
from gateway.security import access
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

    Call :func:`mark_audited` once it committed, so the app's audit middleware does not
    write it a second time in a transaction of its own.
    """
    session.add(
        AuditEntry(
            principal=getattr(request.state, "principal", "anonymous"),
            method=request.method,
            path=request.url.path[:500],
            status_code=status_code,
        )
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
