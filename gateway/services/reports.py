"""Financial impact of returns, per currency, by day (shop calendar) and SKU category.

Per group, in minor units of the group's currency (never summed across currencies):
refunds, store credits and exchanges issued (goods and any shipping refunded), of which
shipping refunded, restocking fees kept, units credited and units refused credit, value
recovered by disposition (restock / refurbish / recycle for graded goods; return to
vendor / scrap / return to customer for refused goods, see
:mod:`gateway.services.write_offs`; percentages by disposition and category from the
settings), the return shipping spent on both, and net loss = refunds + store credits +
exchanges + return shipping - value recovered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from gateway.models import Credit, Rma, WriteOff
from gateway.security import csv_cells

COLUMNS = (
    "currency",
    "day",
    "category",
    "units",
    "refused_units",
    "refunds_cents",
    "store_credits_cents",
    "exchanges_cents",
    "shipping_refunded_cents",
    "restocking_fees_cents",
    "recovered_restock_cents",
    "recovered_refurbish_cents",
    "recovered_recycle_cents",
    "recovered_return_to_vendor_cents",
    "recovered_scrap_cents",
    "recovered_return_to_customer_cents",
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
    """Totals of one (currency, day, category) group; amounts in its minor units."""

    currency: str
    day: str
    category: str
    units: int = 0
    refused_units: int = 0
    refunds_cents: int = 0
    store_credits_cents: int = 0
    exchanges_cents: int = 0
    shipping_refunded_cents: int = 0
    restocking_fees_cents: int = 0
    recovered_restock_cents: int = 0
    recovered_refurbish_cents: int = 0
    recovered_recycle_cents: int = 0
    recovered_return_to_vendor_cents: int = 0
    recovered_scrap_cents: int = 0
    recovered_return_to_customer_cents: int = 0
    shipping_cents: int = 0
    net_loss_cents: int = 0

    def add_credit(self, credit: Credit) -> None:
        """Count one credit: money out by kind, fees, recovery by grade, shipping, loss."""
        self.units += credit.quantity
        kind_field = _KIND_FIELD.get(credit.kind, "refunds_cents")
        setattr(self, kind_field, getattr(self, kind_field) + credit.amount_cents)
        self.shipping_refunded_cents += credit.shipping_refund_cents
        self.restocking_fees_cents += credit.restocking_fee_cents
        self._recover(credit.grade, credit.recovered_value_cents, credit.shipping_cost_cents)
        self.net_loss_cents += credit.amount_cents

    def add_write_off(self, entry: WriteOff) -> None:
        """Count goods refused credit: units, recovery by destination, shipping, loss."""
        self.refused_units += entry.quantity
        self._recover(entry.destination, entry.recovered_value_cents, entry.shipping_cost_cents)

    def _recover(self, disposition: str, recovered: int, shipping: int) -> None:
        field = f"recovered_{disposition}_cents"
        if hasattr(self, field):
            setattr(self, field, getattr(self, field) + recovered)
        self.shipping_cents += shipping
        self.net_loss_cents += shipping - recovered


def _in_days(
    stmt: Select[Any], column: Any, zone: ZoneInfo, start: date | None, end: date | None
) -> Select[Any]:
    if start is not None:
        stmt = stmt.where(column >= datetime.combine(start, time(), zone))
    if end is not None:
        stmt = stmt.where(column < datetime.combine(end + timedelta(days=1), time(), zone))
    return stmt


def financial_impact(
    session: Session,
    zone: ZoneInfo,
    *,
    start: date | None = None,
    end: date | None = None,
    sites: list[str] | None = None,
) -> list[ImpactRow]:
    """Aggregate credits and write-offs whose shop-calendar day is in ``[start, end]``.

    ``sites``: only those of RMAs of these sites (a credit or write-off is its RMA's
    site's); None: every site.

    Rows are ordered by currency, day, category; each currency ends with its total (day
    ``"total"``, category ``"all"``). Amounts of different currencies are never added.
    """
    groups: dict[tuple[str, str, str], ImpactRow] = {}
    totals: dict[str, ImpactRow] = {}

    def targets(currency: str, moment: datetime, category: str) -> tuple[ImpactRow, ImpactRow]:
        day = moment.astimezone(zone).date().isoformat()
        row = groups.setdefault((currency, day, category), ImpactRow(currency, day, category))
        return row, totals.setdefault(currency, ImpactRow(currency, "total", "all"))

    credits = _in_days(select(Credit).order_by(Credit.id), Credit.created_at, zone, start, end)
    if sites is not None:
        of_sites = select(Rma.number).where(Rma.site.in_(sites))
        credits = credits.where(Credit.rma_number.in_(of_sites))
    for credit in session.scalars(credits):
        for target in targets(credit.currency, credit.created_at, credit.category):
            target.add_credit(credit)
    write_offs = _in_days(
        select(WriteOff).order_by(WriteOff.id), WriteOff.created_at, zone, start, end
    )
    if sites is not None:
        write_offs = write_offs.where(WriteOff.rma_number.in_(of_sites))
    for entry in session.scalars(write_offs):
        for target in targets(entry.currency, entry.created_at, entry.category):
            target.add_write_off(entry)
    out: list[ImpactRow] = []
    for currency in sorted(totals):
        out += [groups[k] for k in sorted(groups) if k[0] == currency]
        out.append(totals[currency])
    return out


def to_csv(rows: list[ImpactRow]) -> str:
    """Render rows as CSV with a header line (:data:`COLUMNS`), formula-safe cells."""
    return csv_cells.to_csv(COLUMNS, (asdict(row) for row in rows))
