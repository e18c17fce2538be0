"""Map service exceptions to HTTP errors with a clear ``detail``.

404: unknown keys, users and webhook endpoints. 409: duplicates (RMA numbers, tracking
numbers), an RMA creation whose order changed under it (retry) and triggers not allowed
in the current state. 422: policy refusals
(``detail`` = ``{"code", "message", ...facts}``), mistyped numbers, unknown reasons, bad
receipts, reused idempotency keys, invalid orders or scopes, labels that cannot be printed
as asked, refunds the stored terms cannot pay, unknown places for refused goods. 503: a
label font is not installed (the message names the package).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from gateway.returns.refunds import RefundError
from gateway.services.auth import DuplicateName, InvalidScope, UnknownName
from gateway.services.idempotency import KeyReused
from gateway.services.labels import LabelError, LabelFontsMissing
from gateway.services.lifecycle import IllegalTransition
from gateway.services.numbers import MistypedNumber
from gateway.services.orders import DuplicateOrder, InvalidOrder
from gateway.services.policies import PolicyViolation
from gateway.services.reasons import UnknownReason
from gateway.services.rmas import CreationConflict, DuplicateRma, ReceiptError
from gateway.services.tracking import TrackingNumberTaken
from gateway.services.write_offs import UnknownDestination

_STATUS: dict[type[Exception], int] = {
    DuplicateRma: status.HTTP_409_CONFLICT,
    CreationConflict: status.HTTP_409_CONFLICT,
    DuplicateOrder: status.HTTP_409_CONFLICT,
    DuplicateName: status.HTTP_409_CONFLICT,
    TrackingNumberTaken: status.HTTP_409_CONFLICT,
    IllegalTransition: status.HTTP_409_CONFLICT,
    PolicyViolation: 422,
    MistypedNumber: 422,
    UnknownReason: 422,
    ReceiptError: 422,
    KeyReused: 422,
    InvalidOrder: 422,
    InvalidScope: 422,
    UnknownName: status.HTTP_404_NOT_FOUND,
    LabelError: 422,
    RefundError: 422,
    UnknownDestination: 422,
    LabelFontsMissing: status.HTTP_503_SERVICE_UNAVAILABLE,
}


def _handler(code: int) -> Callable[[Request, Exception], Any]:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        detail: Any = exc.as_dict() if isinstance(exc, PolicyViolation) else str(exc)
        return JSONResponse({"detail": detail}, status_code=code)

    return handle


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping above on ``app``."""
    for exc_type, code in _STATUS.items():
        app.add_exception_handler(exc_type, _handler(code))
