"""``/api/v1/reasons``: the editable list of return reasons."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from gateway.api.deps import Caller, SessionDep
from gateway.api.schemas import ReasonList, ReasonOut
from gateway.schemas import ReasonDraft
from gateway.services.reasons import list_reasons, upsert_reason

router = APIRouter(prefix="/api/v1/reasons", tags=["reasons"])


@router.get("", response_model=ReasonList)
def read_reasons(session: SessionDep, _who: Caller) -> ReasonList:
    """Every reason (inactive ones cannot be used on new RMAs), ordered by code."""
    return ReasonList(reasons=[ReasonOut.model_validate(r) for r in list_reasons(session)])


@router.put("/{code}", response_model=ReasonOut)
def put_reason(code: str, body: ReasonDraft, session: SessionDep, _who: Caller) -> ReasonOut:
    """Create or update a reason; ``code`` in the path must match the body's (else 422)."""
    if body.code != code:
        raise HTTPException(422, detail="path and body codes differ")
    reason = upsert_reason(
        session, code, body.label, merchant_fault=body.merchant_fault, active=body.active
    )
    session.commit()
    return ReasonOut.model_validate(reason)
