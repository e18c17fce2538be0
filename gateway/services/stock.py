"""The stock-movement ledger: units of each SKU into (or out of) each location."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.models import RmaLineRecord, StockMovement
from gateway.services import webhooks
from gateway.settings import Settings


@dataclass(frozen=True)
class StockLevel:
    """Net units of one SKU at one location (the sum of its ledger entries)."""

    sku: str
    location: str
    quantity: int


def stock_levels(
    session: Session, *, sku: str | None = None, sites: list[str] | None = None
) -> list[StockLevel]:
    """Return net quantities per SKU and location, ordered by SKU then location.

    ``sites``: only the movements of these sites (None: every site, summed).
    """
    stmt = (
        select(StockMovement.sku, StockMovement.location, func.sum(StockMovement.quantity))
        .group_by(StockMovement.sku, StockMovement.location)
        .order_by(StockMovement.sku, StockMovement.location)
    )
    if sku is not None:
        stmt = stmt.where(StockMovement.sku == sku)
    if sites is not None:
        stmt = stmt.where(StockMovement.site.in_(sites))
    return [StockLevel(s, loc, int(q or 0)) for s, loc, q in session.execute(stmt)]


def list_movements(
    session: Session, *, sku: str | None = None, limit: int = 100, sites: list[str] | None = None
) -> list[StockMovement]:
    """Return ledger entries (of ``sites``; None: every site), newest first."""
    stmt = select(StockMovement).order_by(StockMovement.id.desc()).limit(limit)
    if sku is not None:
        stmt = stmt.where(StockMovement.sku == sku)
    if sites is not None:
        stmt = stmt.where(StockMovement.site.in_(sites))
    return list(session.scalars(stmt))


def move_line(
    session: Session,
    settings: Settings,
    line: RmaLineRecord,
    *,
    location: str,
    kind: str,
    now: datetime,
) -> StockMovement:
    """Book the received units of an RMA line into ``location``; queue ``stock.moved``.

    ``kind`` is ``return_in`` (graded goods) or ``refused`` (goods refused credit, to
    where the lead chose); one movement per line and kind (a unique key), inside the
    caller's transaction.
    """
    movement = StockMovement(
        site=line.rma.site,
        sku=line.sku,
        location=location,
        quantity=line.received_quantity,
        kind=kind,
        rma_line_id=line.id,
        rma_number=line.rma.number,
        created_at=now,
    )
    session.add(movement)
    webhooks.enqueue(
        session,
        settings,
        "stock.moved",
        {
            "sku": movement.sku,
            "location": movement.location,
            "quantity": movement.quantity,
            "rma_number": movement.rma_number,
        },
        now=now,
        site=movement.site,
    )
    return movement
