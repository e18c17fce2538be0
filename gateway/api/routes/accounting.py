"""``/api/v1/credits``, ``/api/v1/stock`` and ``/api/v1/reports/financial``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from gateway.api.deps import Caller, SessionDep, SettingsDep, SiteFilter
from gateway.api.schemas import (
    CreditList,
    CreditOut,
    ImpactReport,
    ImpactRowOut,
    StockLevelOut,
    StockMovementOut,
    StockOut,
)
from gateway.models import Credit, Rma
from gateway.schemas import BoundedDate
from gateway.services.reports import financial_impact, to_csv
from gateway.services.stock import list_movements, stock_levels

router = APIRouter(prefix="/api/v1", tags=["accounting"])


@router.get("/credits", response_model=CreditList)
def read_credits(
    session: SessionDep,
    _who: Caller,
    sites: SiteFilter,
    rma: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> CreditList:
    """Credits issued automatically (or on a lead's decision), newest first.

    A credit is its RMA's site's: ``?site=`` gives one site's.
    """
    stmt = select(Credit).order_by(Credit.id.desc()).limit(limit)
    if sites is not None:
        stmt = stmt.where(Credit.rma_number.in_(select(Rma.number).where(Rma.site.in_(sites))))
    if rma is not None:
        stmt = stmt.where(Credit.rma_number == rma)
    return CreditList(credits=[CreditOut.model_validate(c) for c in session.scalars(stmt)])


@router.get("/stock", response_model=StockOut)
def read_stock(
    session: SessionDep,
    _who: Caller,
    sites: SiteFilter,
    sku: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> StockOut:
    """Net units per SKU and location, and the latest ledger entries (``?site=``: one site's)."""
    levels = stock_levels(session, sku=sku, sites=sites)
    return StockOut(
        levels=[StockLevelOut.model_validate(level) for level in levels],
        movements=[
            StockMovementOut.model_validate(m)
            for m in list_movements(session, sku=sku, limit=limit, sites=sites)
        ],
    )


@router.get(
    "/reports/financial",
    response_model=ImpactReport,
    responses={200: {"content": {"text/csv": {}}}},
)
def read_financial_report(
    session: SessionDep,
    settings: SettingsDep,
    _who: Caller,
    sites: SiteFilter,
    start: Annotated[
        BoundedDate | None, Query(description="First day (shop calendar; 1970-01-01..2999-12-31)")
    ] = None,
    end: Annotated[
        BoundedDate | None, Query(description="Last day, inclusive (1970-01-01..2999-12-31)")
    ] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> ImpactReport | Response:
    """Financial impact per currency, by day and SKU category; ``format=csv`` for CSV.

    Amounts in minor units of each currency, never summed across them; credits and
    goods refused credit alike. ``?site=``: of one site's RMAs only. 422: a day outside
    :data:`gateway.schemas.EARLIEST_DATE` .. :data:`gateway.schemas.LATEST_DATE`.
    """
    rows = financial_impact(session, settings.zone, start=start, end=end, sites=sites)
    if format == "csv":
        return Response(to_csv(rows), media_type="text/csv")
    return ImpactReport(
        currencies=sorted({r.currency for r in rows}),
        rows=[ImpactRowOut.model_validate(r) for r in rows],
    )
