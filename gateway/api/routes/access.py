"""``/api/v1/api-keys``, ``/api/v1/users`` and ``/api/v1/audit``: access (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlalchemy import select

from gateway.api.deps import Admin, SessionDep
from gateway.api.schemas import (
    ApiKeyCreate,
    ApiKeyOut,
    AuditOut,
    ProblemOut,
    UserCreate,
    UserOut,
)
from gateway.models import AuditEntry
from gateway.services.auth import create_api_key, create_user

router = APIRouter(prefix="/api/v1", tags=["access"])


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyOut,
    responses={409: {"model": ProblemOut}, 422: {"model": ProblemOut}},
)
def post_api_key(body: ApiKeyCreate, session: SessionDep, _who: Admin) -> ApiKeyOut:
    """Create an API key; the plain key is in this response only (stored as SHA-256)."""
    plain, record = create_api_key(session, body.name, body.scopes)
    return ApiKeyOut(name=record.name, scopes=record.scopes.split(), key=plain)


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={409: {"model": ProblemOut}},
)
def post_user(body: UserCreate, session: SessionDep, _who: Admin) -> UserOut:
    """Create a user (password hashed with Argon2id)."""
    return UserOut.model_validate(create_user(session, body.username, body.password, body.role))


@router.get("/audit", response_model=list[AuditOut])
def read_audit(
    session: SessionDep, _who: Admin, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[AuditOut]:
    """Audited writes (every POST / PUT / PATCH / DELETE with its outcome), newest first."""
    rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
    return [AuditOut.model_validate(r) for r in rows]
