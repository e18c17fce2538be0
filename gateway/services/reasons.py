"""The editable list of return reasons, seeded with the usual ones.

The active codes are cached per engine (one gateway process) for :data:`REASON_CACHE_TTL_S`,
so creating an RMA does not read the table each time. A code the cache does not hold is
looked up again at once (a reason just added elsewhere is accepted); a reason changed
through the ORM in this process clears the cache at its flush and again at the commit.
A reason deactivated by another replica (or by SQL outside the ORM) may still be accepted
here for up to :data:`REASON_CACHE_TTL_S`.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from sqlalchemy import Connection, Engine, event, select
from sqlalchemy.orm import Mapper, Session

from gateway.models import ReturnReason

REASON_CACHE_TTL_S = 5.0
"""Seconds the active reason codes are trusted without reading the table."""
_CHANGED = "reasons.changed_engine"
_active: weakref.WeakKeyDictionary[Engine, tuple[float, frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)

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


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind.engine if isinstance(bind, Connection) else bind


def active_codes(session: Session, *, fresh: bool = False) -> frozenset[str]:
    """The codes of the active reasons, cached per engine.

    Read again (one ``SELECT``) when the cached ones are older than
    :data:`REASON_CACHE_TTL_S` seconds, or when ``fresh``.
    """
    engine = _engine(session)
    now = time.monotonic()
    cached = _active.get(engine)
    if cached is not None and not fresh and now - cached[0] < REASON_CACHE_TTL_S:
        return cached[1]
    codes = frozenset(
        session.scalars(select(ReturnReason.code).where(ReturnReason.active.is_(True)))
    )
    _active[engine] = (now, codes)
    return codes


def clear_cache(engine: Engine | None = None) -> None:
    """Forget the cached active codes of ``engine`` (all engines when None)."""
    if engine is None:
        _active.clear()
    else:
        _active.pop(engine, None)


def require_reason(session: Session, code: str) -> str:
    """Return ``code`` when it is an active reason (see the module's note on the cache).

    Raises:
        UnknownReason: when it is unknown or inactive; the message lists the valid codes.
    """
    if code in active_codes(session) or code in active_codes(session, fresh=True):
        return code
    codes = sorted(active_codes(session))
    raise UnknownReason(f"unknown return reason {code!r}; one of: {', '.join(codes)}")


@event.listens_for(ReturnReason, "after_insert")
@event.listens_for(ReturnReason, "after_update")
@event.listens_for(ReturnReason, "after_delete")
def _reason_written(_mapper: Mapper[Any], connection: Connection, target: ReturnReason) -> None:
    clear_cache(connection.engine)
    session = Session.object_session(target)
    if session is not None:
        session.info[_CHANGED] = connection.engine


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    engine = session.info.pop(_CHANGED, None)
    if engine is not None:
        clear_cache(engine)  # a reader between the flush and the commit cached the old list
