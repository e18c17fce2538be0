"""The product catalogue: what one unit of a SKU weighs and measures, told to the stations.

Stations learn a SKU's catalogue values with the RMA lines of that SKU: the announcement
(:func:`gateway.services.announcements.to_announcement`) reads them from the catalogue when it is
built, they are never copied onto the RMA. So an RMA created before the catalogue knew its
SKU carries the values from its next announcement on; and a change of a SKU's announced
values re-announces every open RMA with a line of that SKU (states the stations still sort
against: authorized, in transit, partially received) through the normal revision path: each
gets the next site revision and its announcement row is written in the same transaction
(:func:`gateway.services.rma_writer.apply_change`), so a station that was offline
catches up by revision as for any other RMA change.

:func:`put_item` stores one entry, :func:`put_items` a batch, each in one transaction with
its re-announcements: nothing is half stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.models import CatalogueItem, Rma, RmaLineRecord, utcnow
from gateway.schemas import CatalogueItemBody, CatalogueItemDraft
from gateway.services.announcements import WIRE_STATE
from gateway.services.rma_writer import apply_change
from gateway.settings import Settings
from protocol.messages import RmaState

log = logging.getLogger(__name__)

#: RMA states in which stations still sort parcels against the RMA's lines.
OPEN_STATES = tuple(state for state, wire in WIRE_STATE.items() if wire is RmaState.AUTHORIZED)

_FIELDS = (
    "name",
    "weight_g",
    "length_mm",
    "width_mm",
    "height_mm",
    "gtins",
    "weight_tol_g",
    "size_tol_mm",
)


Outcome = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class PutResult:
    """What storing one entry did.

    ``outcome``: ``created``, ``updated`` or ``unchanged``; ``reannounced``: how many open
    RMAs were re-announced because the values stations use changed.
    """

    item: CatalogueItem
    outcome: Outcome
    reannounced: int


def announced_values(item: CatalogueItem | None) -> tuple[object, ...]:
    """The values of ``item`` that announcements carry (a change re-announces)."""
    if item is None:
        return (None,) * 7
    single_gtin = item.gtins[0] if len(item.gtins or ()) == 1 else None
    return (
        item.weight_g,
        item.length_mm,
        item.width_mm,
        item.height_mm,
        item.weight_tol_g,
        item.size_tol_mm,
        single_gtin,
    )


def get_item(session: Session, sku: str) -> CatalogueItem | None:
    """The catalogue entry of ``sku``, or None."""
    return session.get(CatalogueItem, sku)


def list_items(session: Session, *, after_sku: str = "", limit: int = 100) -> list[CatalogueItem]:
    """Entries with a SKU after ``after_sku``, by SKU (keyset pagination), at most ``limit``."""
    stmt = select(CatalogueItem).where(CatalogueItem.sku > after_sku)
    return list(session.scalars(stmt.order_by(CatalogueItem.sku).limit(limit)))


def open_rmas_with(session: Session, sku: str) -> list[Rma]:
    """Open RMAs (:data:`OPEN_STATES`) with a line of ``sku``, by number."""
    stmt = (
        select(Rma)
        .where(Rma.state.in_(OPEN_STATES))
        .where(Rma.id.in_(select(RmaLineRecord.rma_id).where(RmaLineRecord.sku == sku)))
        .order_by(Rma.number)
    )
    return list(session.scalars(stmt))


def _apply(
    session: Session, settings: Settings, sku: str, body: CatalogueItemBody, now: datetime
) -> PutResult:
    """Create or update one entry and re-announce its open RMAs; no commit."""
    item = session.get(CatalogueItem, sku)
    values = {name: getattr(body, name) for name in _FIELDS}
    if item is not None and all(getattr(item, k) == v for k, v in values.items()):
        return PutResult(item, "unchanged", 0)
    before = announced_values(item)
    outcome: Outcome = "created" if item is None else "updated"
    if item is None:
        item = CatalogueItem(sku=sku)
        session.add(item)
    for name, value in values.items():
        setattr(item, name, value)
    item.updated_at = now
    session.flush()  # the entry's row lock orders concurrent writers before any revision
    if announced_values(item) == before:
        return PutResult(item, outcome, 0)
    rmas = open_rmas_with(session, sku)
    for rma in rmas:
        for line in rma.lines:
            if line.sku == sku:
                session.expire(line, ["catalogue"])  # may have been loaded before the change
        apply_change(session, settings, rma, actor="system:catalogue", webhook=None, now=now)
    return PutResult(item, outcome, len(rmas))


def _store(
    session: Session, settings: Settings, drafts: Sequence[CatalogueItemDraft], now: datetime
) -> list[PutResult]:
    try:
        results = [_apply(session, settings, d.sku, d, now) for d in drafts]
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return results


def put_items(
    session: Session,
    settings: Settings,
    drafts: Sequence[CatalogueItemDraft],
    *,
    now: datetime | None = None,
) -> list[PutResult]:
    """Store every entry of ``drafts`` (SKUs unique) in one transaction and commit.

    A concurrent creation of the same SKU (a unique-key race) is retried once.

    Returns:
        One result per draft, in order.

    Raises:
        ValueError: when a SKU appears twice in ``drafts`` (nothing is stored).
        sqlalchemy.exc.IntegrityError: when the retry races again (nothing is stored).
    """
    skus = [d.sku for d in drafts]
    if len(set(skus)) != len(skus):
        raise ValueError("every SKU may appear once per batch")
    now = now or utcnow()
    try:
        results = _store(session, settings, drafts, now)
    except IntegrityError:  # another writer created one of the SKUs first: now an update
        results = _store(session, settings, drafts, now)
    for result in results:
        if result.outcome != "unchanged":
            log.info(
                "catalogue %s sku=%s reannounced=%d",
                result.outcome,
                result.item.sku,
                result.reannounced,
            )
    return results


def put_item(
    session: Session,
    settings: Settings,
    sku: str,
    body: CatalogueItemBody,
    *,
    now: datetime | None = None,
) -> PutResult:
    """Create or replace the entry of ``sku`` (every field as given) and commit.

    Storing the same values again changes nothing (``unchanged``, no announcement).
    """
    draft = CatalogueItemDraft(sku=sku, **body.model_dump())
    return put_items(session, settings, [draft], now=now)[0]
