"""``/api/v1/catalogue``: what one unit of each SKU weighs and measures.

Stations get these values with the RMA lines of the SKU (checkweigher and footprint
checks: empty box, short shipment). Reading needs ``read``; writing ``catalogue:write``
(the rules are in :data:`gateway.security.access.RULES`).
Errors (body ``{"detail": ...}``): 401 / 403 access; 404 unknown SKU; 422 invalid input
(a value out of bounds, a GTIN with a wrong check digit, a SKU twice in a batch).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from gateway.api.deps import Caller, SessionDep, SettingsDep
from gateway.api.schemas import (
    CatalogueImportOut,
    CatalogueItemOut,
    CatalogueList,
    CataloguePutOut,
    ProblemOut,
)
from gateway.schemas import CatalogueImport, CatalogueItemBody
from gateway.services.catalogue import PutResult, get_item, list_items, put_item, put_items

router = APIRouter(prefix="/api/v1/catalogue", tags=["catalogue"])

SkuPath = Annotated[str, Path(min_length=1, max_length=64, description="Stock keeping unit")]


def _out(result: PutResult) -> CataloguePutOut:
    return CataloguePutOut(
        item=CatalogueItemOut.model_validate(result.item),
        outcome=result.outcome,
        reannounced=result.reannounced,
    )


@router.get("", response_model=CatalogueList)
def read_catalogue(
    session: SessionDep,
    _who: Caller,
    after: Annotated[str, Query(max_length=64, description="Entries after this SKU")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CatalogueList:
    """List entries by SKU, ``limit`` at a time (keyset pagination with ``after``)."""
    items = list_items(session, after_sku=after, limit=limit)
    return CatalogueList(
        items=[CatalogueItemOut.model_validate(i) for i in items],
        next_after=items[-1].sku if len(items) == limit else None,
    )


@router.get("/{sku}", response_model=CatalogueItemOut, responses={404: {"model": ProblemOut}})
def read_item(sku: SkuPath, session: SessionDep, _who: Caller) -> CatalogueItemOut:
    """One entry by SKU."""
    item = get_item(session, sku)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"SKU {sku!r} not in the catalogue")
    return CatalogueItemOut.model_validate(item)


@router.put(
    "/{sku}",
    response_model=CataloguePutOut,
    responses={201: {"model": CataloguePutOut}, 422: {"model": ProblemOut}},
)
def put_catalogue_item(
    sku: SkuPath,
    body: CatalogueItemBody,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    _who: Caller,
) -> CataloguePutOut:
    """Create (201) or replace (200) the entry of ``sku``; the same body again changes nothing.

    Every field is replaced (an omitted value becomes unknown). When the values stations
    use change, every open RMA with a line of this SKU is re-announced with a new revision
    (``reannounced`` counts them).
    """
    result = put_item(session, settings, sku, body)
    if result.outcome == "created":
        response.status_code = status.HTTP_201_CREATED
    return _out(result)


@router.post("/import", response_model=CatalogueImportOut, responses={422: {"model": ProblemOut}})
def import_catalogue(
    body: CatalogueImport, session: SessionDep, settings: SettingsDep, _who: Caller
) -> CatalogueImportOut:
    """Create or replace up to 1000 entries in one transaction: all are stored, or none.

    422 (nothing stored) when any entry is invalid or a SKU is given twice.
    """
    results = put_items(session, settings, body.items)
    outs = [_out(r) for r in results]
    return CatalogueImportOut(
        created=sum(r.outcome == "created" for r in results),
        updated=sum(r.outcome == "updated" for r in results),
        unchanged=sum(r.outcome == "unchanged" for r in results),
        reannounced=sum(r.reannounced for r in results),
        results=outs,
    )
