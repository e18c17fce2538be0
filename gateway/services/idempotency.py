"""``Idempotency-Key`` for creating requests: one outcome per (caller, key).

The first request with a key stores its status code and response body in the same
transaction as what it created. A repeat with the same key and the same body (compared by a
SHA-256 of its canonical JSON) gets that stored response again; a repeat with a different
body is refused (HTTP 422), since the key was already used for another request.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.models import IdempotencyRecord

MAX_KEY_LENGTH = 255


class KeyReused(Exception):
    """The key was already used with a different request body (HTTP 422)."""


def request_hash(method: str, path: str, body: Any) -> str:
    """SHA-256 hex of the method, path and canonical JSON body (key order ignored)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


#: built once (a creation with a key looks it up twice)
_BY_KEY = select(IdempotencyRecord).where(
    IdempotencyRecord.principal == bindparam("principal"),
    IdempotencyRecord.key == bindparam("key"),
)


def lookup(session: Session, principal: str, key: str, digest: str) -> IdempotencyRecord | None:
    """Return the stored outcome for ``(principal, key)``, or None when the key is new.

    Raises:
        KeyReused: when the key was used with another request (``digest`` differs).
    """
    record = session.scalar(_BY_KEY, {"principal": principal, "key": key})
    if record is not None and record.request_hash != digest:
        raise KeyReused(
            f"Idempotency-Key {key!r} was already used with a different request body; "
            "use a new key for a new request"
        )
    return record


def remember(
    session: Session,
    principal: str,
    key: str,
    digest: str,
    status_code: int,
    response: dict[str, Any],
) -> None:
    """Add the outcome to the caller's transaction (the caller commits)."""
    session.add(
        IdempotencyRecord(
            principal=principal,
            key=key,
            request_hash=digest,
            status_code=status_code,
            response=response,
        )
    )
