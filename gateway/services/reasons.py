"""The editable list of return reasons, seeded with the usual ones."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import ReturnReason

#: (code, label, merchant's fault): seeded once into an empty table.
DEFAULT_REASONS: tuple[tuple[str, str, bool], ...] = (
    ("defective", "Defective", True),
    ("damaged_in_transit", "Damaged in transit", True),
    ("damaged", "Damaged", True),
    ("wrong_item", "Wrong item", True),
    ("not_as_described", "Not as described", True),
    ("size", "Size", False),
    ("changed_mind", "Changed mind", False),
    ("other", "Other", False),
)


class UnknownReason(ValueError):
    """The reason code is not on the (active) list (HTTP 422)."""


def seed_reasons(session: Session) -> None:
    """Insert the default reasons when the table is empty, and commit."""
    if session.scalar(select(ReturnReason.code).limit(1)) is None:
        session.add_all(
            ReturnReason(code=c, label=label, merchant_fault=fault, active=True)
            for c, label, fault in DEFAULT_REASONS
        )
        session.commit()


def list_reasons(session: Session) -> list[ReturnReason]:
    """Return every reason (active or not), ordered by code."""
    return list(session.scalars(select(ReturnReason).order_by(ReturnReason.code)))


def upsert_reason(
    session: Session, code: str, label: str, *, merchant_fault: bool, active: bool
) -> ReturnReason:
    """Create or update a reason (the caller commits)."""
    reason = session.get(ReturnReason, code)
    if reason is None:
        reason = ReturnReason(code=code)
        session.add(reason)
    reason.label = label
    reason.merchant_fault = merchant_fault
    reason.active = active
    return reason


def require_reason(session: Session, code: str) -> ReturnReason:
    """Return the active reason ``code``.

    Raises:
        UnknownReason: when it is unknown or inactive; the message lists the valid codes.
    """
    reason = session.get(ReturnReason, code)
    if reason is None or not reason.active:
        codes = [r.code for r in list_reasons(session) if r.active]
        raise UnknownReason(f"unknown return reason {code!r}; one of: {', '.join(codes)}")
    return reason
