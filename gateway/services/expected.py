"""Parcels the warehouse expects: RMAs in transit, what should arrive today, what is late.

For the status page (section ``expected``). Days are counted on the shop's calendar
(``RS_TIMEZONE``) from when the parcel left (``Rma.shipped_at``: ship, or the carrier's
first scan).

- **expected today**: in transit, not overdue, and the carrier delivered it to the
  warehouse (it waits to be sorted) or expects to deliver it today or earlier;
- **overdue**: in transit for more than ``RS_IN_TRANSIT_OVERDUE_DAYS`` days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Rma
from gateway.settings import Settings

MAX_ROWS = 200
"""Rows per list on the page (oldest first); the count says how many there are."""


@dataclass(frozen=True)
class ExpectedParcel:
    """One RMA in transit as the page shows it.

    Attributes:
        number / order_ref: the RMA and its order.
        carrier / tracking_number: its carrier tracking ("" / None when unknown).
        carrier_status: the carrier's last status ("" none yet).
        shipped_on: the shop-calendar day it left; ``days``: whole days since.
        expected_on: the delivery date the carrier expects, if it said.
    """

    number: str
    order_ref: str
    carrier: str
    tracking_number: str | None
    carrier_status: str
    shipped_on: date
    days: int
    expected_on: date | None


@dataclass(frozen=True)
class ExpectedParcels:
    """The page's two lists (each at most :data:`MAX_ROWS`, oldest first) and their sizes."""

    today: tuple[ExpectedParcel, ...]
    overdue: tuple[ExpectedParcel, ...]
    today_count: int
    overdue_count: int
    in_transit_count: int


def expected_parcels(
    session: Session, settings: Settings, now: datetime, *, sites: list[str] | None = None
) -> ExpectedParcels:
    """What is expected today and what is overdue at ``now`` (UTC), at ``sites`` (None: all)."""
    zone = settings.zone
    today = now.astimezone(zone).date()
    stmt = select(Rma).where(Rma.state == "in_transit")
    if sites is not None:
        stmt = stmt.where(Rma.site.in_(sites))
    rmas = session.scalars(stmt.order_by(Rma.shipped_at, Rma.id)).all()
    due: list[ExpectedParcel] = []
    late: list[ExpectedParcel] = []
    for rma in rmas:
        left = (rma.shipped_at or rma.updated_at).astimezone(zone).date()
        row = ExpectedParcel(
            number=rma.number,
            order_ref=rma.order_ref,
            carrier=rma.carrier,
            tracking_number=rma.tracking_number,
            carrier_status=rma.carrier_status,
            shipped_on=left,
            days=(today - left).days,
            expected_on=rma.expected_on,
        )
        if row.days > settings.in_transit_overdue_days:
            late.append(row)
        elif rma.carrier_status == "delivered" or (
            rma.expected_on is not None and rma.expected_on <= today
        ):
            due.append(row)
    return ExpectedParcels(
        today=tuple(due[:MAX_ROWS]),
        overdue=tuple(late[:MAX_ROWS]),
        today_count=len(due),
        overdue_count=len(late),
        in_transit_count=len(rmas),
    )
