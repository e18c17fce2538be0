"""``/api/v1/photos/{sha256}``: a parcel's photo evidence (JPEG), by its hash."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from gateway.api.deps import Caller

router = APIRouter(prefix="/api/v1", tags=["photos"])


@router.get(
    "/photos/{sha256}",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no such photo"}},
)
def read_photo(sha256: str, request: Request, _who: Caller) -> FileResponse:
    """The JPEG named by ``sha256`` in a parcel event's ``photo`` (immutable: cached)."""
    store = getattr(request.app.state, "photos", None)
    path = store.path(sha256) if store is not None else None
    if path is None:
        raise HTTPException(status_code=404, detail="no such photo")
    return FileResponse(
        path,
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=31536000, immutable"},
    )
