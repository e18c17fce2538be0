"""FastAPI dependencies: settings, database session, MQTT bridge and the caller.

Who may call a route is decided in one place, :mod:`gateway.security.access` (its
``RULES`` table); routes take the already-authorised caller as :data:`Caller`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.mqtt_bridge import MqttBridge
from gateway.security import access
from gateway.settings import Settings


def get_settings(request: Request) -> Settings:
    """Return the settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> Database:
    """Return the app's database (set up by the lifespan)."""
    db: Database = request.app.state.db
    return db


def get_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    """Yield a request-scoped session, rolled back on error and closed afterwards."""
    with db.session() as session:
        yield session


def get_bridge(request: Request) -> MqttBridge:
    """Return the app's MQTT bridge (started by the lifespan)."""
    bridge: MqttBridge = request.app.state.bridge
    return bridge


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_db)]
SessionDep = Annotated[Session, Depends(get_session)]
BridgeDep = Annotated[MqttBridge, Depends(get_bridge)]


Caller = access.Caller
"""The authorised caller; what each route needs is in :data:`gateway.security.access.RULES`."""
