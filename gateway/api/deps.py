"""FastAPI dependencies: settings, database session, MQTT bridge, caller and scopes."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.mqtt_bridge import MqttBridge
from gateway.services.auth import Principal, principal_for_key, principal_for_user
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


def get_principal(request: Request, session: Annotated[Session, Depends(get_session)]) -> Principal:
    """Identify the caller by API key or user.

    Credentials: ``Authorization: Bearer <api key>``, ``X-API-Key: <api key>`` or HTTP Basic
    (a user). Without credentials a GET is anonymous ``read`` when the settings allow it
    (the dev default).

    Raises:
        HTTPException: 401 for missing or invalid credentials.
    """
    settings: Settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    key = request.headers.get("x-api-key")
    principal: Principal | None = None
    scheme, _, value = header.partition(" ")
    if key or scheme.lower() == "bearer":
        principal = principal_for_key(session, key or value.strip())
    elif scheme.lower() == "basic":
        try:
            username, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            username = password = ""
        principal = principal_for_user(session, username, password) if username else None
    elif request.method == "GET" and settings.allow_anonymous_read:
        principal = Principal("anonymous", frozenset({"read"}))
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid credentials (API key or user)",
            headers={"WWW-Authenticate": 'Bearer, Basic realm="returns-sorter"'},
        )
    request.state.principal = principal.name
    return principal


def require(scope: str) -> Callable[[Principal], Principal]:
    """Dependency factory: the caller must hold ``scope`` (or ``admin``), else 403."""

    def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.can(scope):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"{principal.name} lacks scope {scope!r}"
            )
        return principal

    return check


Reader = Annotated[Principal, Depends(require("read"))]
RmaWriter = Annotated[Principal, Depends(require("rmas:write"))]
OrderWriter = Annotated[Principal, Depends(require("orders:write"))]
Lead = Annotated[Principal, Depends(require("lead"))]
Admin = Annotated[Principal, Depends(require("admin"))]
