"""``/api/v1/api-keys``, ``/api/v1/users`` and ``/api/v1/audit``: access (admin only).

Revoking a key or a user (``DELETE``) takes effect on the very next request to this
gateway; a revoked user's browser sessions end at once. Other replicas (and a revocation
from a shell: ``returns-gateway access``) refuse a key that was in use within
:data:`gateway.services.auth.KEY_CACHE_TTL_S` (5 s), users and sessions at once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from sqlalchemy import select

from gateway.api.deps import Caller, SessionDep, SettingsDep, known_sites
from gateway.api.schemas import (
    ApiKeyCreate,
    ApiKeyInfo,
    ApiKeyOut,
    AuditOut,
    ProblemOut,
    UserCreate,
    UserOut,
)
from gateway.models import ApiKey, AuditEntry, User
from gateway.services.auth import (
    KeyCache,
    create_api_key,
    create_user,
    revoke_api_key,
    revoke_user,
)

router = APIRouter(prefix="/api/v1", tags=["access"])


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyOut,
    responses={409: {"model": ProblemOut}, 422: {"model": ProblemOut}},
)
def post_api_key(
    body: ApiKeyCreate, session: SessionDep, settings: SettingsDep, _who: Caller
) -> ApiKeyOut:
    """Create an API key; the plain key is in this response only (stored as SHA-256).

    ``sites`` limits it to those sites (422 for a site the gateway does not serve).
    """
    plain, record = create_api_key(
        session, body.name, body.scopes, known_sites(settings, body.sites)
    )
    return ApiKeyOut(
        name=record.name, scopes=record.scopes.split(), sites=record.sites.split(), key=plain
    )


@router.get("/api-keys", response_model=list[ApiKeyInfo])
def read_api_keys(session: SessionDep, _who: Caller) -> list[ApiKeyInfo]:
    """Every API key (name, prefix, scopes, revoked), by name."""
    rows = session.scalars(select(ApiKey).order_by(ApiKey.name))
    return [ApiKeyInfo.model_validate(r) for r in rows]


@router.delete(
    "/api-keys/{name}", response_model=ApiKeyInfo, responses={404: {"model": ProblemOut}}
)
def delete_api_key(name: str, request: Request, session: SessionDep, who: Caller) -> ApiKeyInfo:
    """Revoke a key: refused by this gateway from the next request on.

    The record stays, revoked; other replicas refuse it within ``KEY_CACHE_TTL_S`` (5 s).
    """
    cache: KeyCache = request.app.state.key_cache
    return ApiKeyInfo.model_validate(revoke_api_key(session, name, cache))


@router.get("/users", response_model=list[UserOut])
def read_users(session: SessionDep, _who: Caller) -> list[UserOut]:
    """Every user account, by name."""
    return [
        UserOut.model_validate(u) for u in session.scalars(select(User).order_by(User.username))
    ]


@router.delete("/users/{username}", response_model=UserOut, responses={404: {"model": ProblemOut}})
def delete_user(username: str, session: SessionDep, _who: Caller) -> UserOut:
    """Revoke a user: deactivated, and every browser session of theirs ends at once."""
    return UserOut.model_validate(revoke_user(session, username))


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={409: {"model": ProblemOut}},
)
def post_user(
    body: UserCreate, session: SessionDep, settings: SettingsDep, _who: Caller
) -> UserOut:
    """Create a user (password hashed with Argon2id), limited to ``sites`` if any (422 unknown)."""
    sites = known_sites(settings, body.sites)
    return UserOut.model_validate(
        create_user(session, body.username, body.password, body.role, sites)
    )


@router.get("/audit", response_model=list[AuditOut])
def read_audit(
    session: SessionDep, _who: Caller, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[AuditOut]:
    """Audited writes (every POST / PUT / PATCH / DELETE with its outcome), newest first."""
    rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
    return [AuditOut.model_validate(r) for r in rows]
