"""Financial impact of returns, by day (shop calendar) and SKU category.

Per group, in minor units (cents): refunds, store credits and exchanges issued, restocking
fees kept, value recovered by disposition (restock / refurbish / recycle), return shipping
cost, and net loss = refunds + store credits + exchanges + shipping - value recovered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Credit
from gateway.security import csv_cells

COLUMNS = (
    "day",
    "category",
    "units",
    "refunds_cents",
    "store_credits_cents",
    "exchanges_cents",
    "restocking_fees_cents",
    "recovered_restock_cents",
    "recovered_refurbish_cents",
    "recovered_recycle_cents",
    "shipping_cents",
    "net_loss_cents",
)

_KIND_FIELD = {
    "refund": "refunds_cents",
    "store_credit": "store_credits_cents",
    "exchange": "exchanges_cents",
}


@dataclass
class ImpactRow:
    """Totals of one (day, category) group; amounts in cents."""

    day: str
    category: str
    units: int = 0
    refunds_cents: int = 0
    store_credits_cents: int = 0
    exchanges_cents: int = 0
    restocking_fees_cents: int = 0
    recovered_restock_cents: int = 0
    recovered_refurbish_cents: int = 0
    recovered_recycle_cents: int = 0
    shipping_cents: int = 0
    net_loss_cents: int = 0


def financial_impact(
    session: Session, zone: ZoneInfo, *, start: date | None = None, end: date | None = None
) -> list[ImpactRow]:
    """Aggregate credits whose shop-calendar day is in ``[start, end]`` (both inclusive).

    Rows are ordered by day then category; the last row is the total (day ``"total"``,
    category ``"all"``) when there is any row.
    """
    stmt = select(Credit).order_by(Credit.created_at, Credit.id)
    if start is not None:
        stmt = stmt.where(Credit.created_at >= datetime.combine(start, time(), zone))
    if end is not None:
        stmt = stmt.where(
            Credit.created_at < datetime.combine(end + timedelta(days=1), time(), zone)
        )
    groups: dict[tuple[str, str], ImpactRow] = {}
    total = ImpactRow(day="total", category="all")
    for credit in session.scalars(stmt):
        day = credit.created_at.astimezone(zone).date().isoformat()
        row = groups.setdefault((day, credit.category), ImpactRow(day, credit.category))
        for target in (row, total):
            target.units += credit.quantity
            kind_field = _KIND_FIELD.get(credit.kind, "refunds_cents")
            setattr(target, kind_field, getattr(target, kind_field) + credit.amount_cents)
            target.restocking_fees_cents += credit.restocking_fee_cents
            rec_field = f"recovered_{credit.grade}_cents"
            if hasattr(target, rec_field):
                setattr(
                    target, rec_field, getattr(target, rec_field) + credit.recovered_value_cents
                )
            target.shipping_cents += credit.shipping_cost_cents
            target.net_loss_cents += (
                credit.amount_cents + credit.shipping_cost_cents - credit.recovered_value_cents
            )
    rows = [groups[k] for k in sorted(groups)]
    return [*rows, total] if rows else []


def to_csv(rows: list[ImpactRow]) -> str:
    """Render rows as CSV with a header line (:data:`COLUMNS`), formula-safe cells."""
    return csv_cells.to_csv(COLUMNS, (asdict(row) for row in rows))
