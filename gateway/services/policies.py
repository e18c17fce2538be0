"""Return policies: window from delivery (shop's calendar), returnable quantity, fees.

All money is in integer minor units (cents); percentages are applied with round-half-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.models import OrderLine, Rma, RmaLineRecord
from gateway.returns.refunds import percent_of
from gateway.services.lifecycle import OPEN_STATES, VOID_STATES

__all__ = [
    "PolicyViolation",
    "Returnable",
    "by_category",
    "check_window",
    "local_date",
    "percent_of",
    "returnable_for",
]


class PolicyViolation(Exception):
    """A return policy refuses the request (HTTP 422).

    Attributes:
        code: machine-readable, e.g. ``quantity_exceeds_returnable``, ``window_closed``.
        details: JSON-able facts behind the refusal.
    """

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        """Return ``{"code", "message", **details}`` for the HTTP error body."""
        return {"code": self.code, "message": self.message, **self.details}


@dataclass(frozen=True)
class Returnable:
    """Units of one order line that may still be returned.

    ``returnable = delivered - returned - on_open`` (never below 0), where ``returned``
    counts units received on any RMA and ``on_open`` units announced on open RMAs and not
    yet received.
    """

    delivered: int
    returned: int
    on_open: int
    rmas: list[str] = field(default_factory=list)

    @property
    def returnable(self) -> int:
        """Units that may still go on a new RMA."""
        return max(0, self.delivered - self.returned - self.on_open)


def returnable_for(session: Session, order_line: OrderLine) -> Returnable:
    """Count what is already returned or on open RMAs for ``order_line``.

    The delivered quantity is read with the claims, by the same statement (not taken
    from the loaded ``order_line``): under the order's lock
    (:func:`gateway.services.orders.lock_order`) both are what was committed before it,
    also when an order update committed while the caller waited for the lock.
    """
    rows = session.execute(_CLAIMS, {"order_line_id": order_line.id}).all()
    returned = on_open = 0
    numbers: list[str] = []
    delivered = order_line.delivered_quantity  # a line not stored yet: its own
    for line_delivered, number, state, quantity, received in rows:
        delivered = line_delivered
        if number is None or (state in VOID_STATES and not received):
            continue
        numbers.append(number)
        returned += received
        if state in OPEN_STATES:
            on_open += quantity - received
    return Returnable(delivered, returned, on_open, numbers)


#: the order line's delivered quantity and its RMA lines (NULLs when it has none)
_CLAIMS = (
    select(
        OrderLine.delivered_quantity,
        Rma.number,
        Rma.state,
        RmaLineRecord.quantity,
        RmaLineRecord.received_quantity,
    )
    .select_from(OrderLine)
    .outerjoin(RmaLineRecord, RmaLineRecord.order_line_id == OrderLine.id)
    .outerjoin(Rma, Rma.id == RmaLineRecord.rma_id)
    .where(OrderLine.id == bindparam("order_line_id"))
)


def by_category(table: dict[str, Any], category: str | None) -> Any:
    """Look ``category`` up in a per-category setting, falling back to ``"default"``."""
    if category is not None and category in table:
        return table[category]
    return table.get("default", 0)


def local_date(moment: datetime, zone: ZoneInfo) -> date:
    """Return the shop-calendar date of an aware instant."""
    return moment.astimezone(zone).date()


def check_window(
    *,
    delivered_on: date,
    category: str | None,
    windows: dict[str, int],
    now: datetime,
    zone: ZoneInfo,
    line_no: int,
) -> None:
    """Refuse when ``now`` (shop calendar) is past ``delivered_on + window`` days.

    The last day to ask is ``delivered_on + window_days`` inclusive, in the shop's zone.

    Raises:
        PolicyViolation: ``window_closed`` with the last day and today's date.
    """
    days = int(by_category(windows, category))
    last_day = delivered_on + timedelta(days=days)
    today = local_date(now, zone)
    if today > last_day:
        raise PolicyViolation(
            "window_closed",
            f"line {line_no}: the return window of {days} days for category "
            f"{category or 'default'!r} closed on {last_day.isoformat()} "
            f"(today is {today.isoformat()} in the shop's time zone {zone.key})",
            line_no=line_no,
            category=category,
            window_days=days,
            delivered_on=delivered_on.isoformat(),
            last_day=last_day.isoformat(),
            today=today.isoformat(),
        )
