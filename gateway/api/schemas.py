"""Response models of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RmaLineOut(_Out):
    """One RMA line as stored (``rfid_uid`` canonical)."""

    line_no: int
    sku: str
    quantity: int
    gtin: str | None
    serial: str | None
    rfid_uid: str | None
    category: str | None


class RmaOut(_Out):
    """An RMA; ``revision`` is the site revision of its last change."""

    number: str
    order_ref: str
    reason: str
    resolution: str
    state: str
    revision: int
    created_at: datetime
    lines: list[RmaLineOut]


class RmaList(BaseModel):
    """RMAs changed after a revision, oldest first, with the site's head revision."""

    head_revision: int
    rmas: list[RmaOut]


class StationOut(_Out):
    """Last known status of a station."""

    id: str
    site: str
    state: str
    last_seen: datetime | None
    rma_revision: int
    software_version: str
    details: dict[str, Any]


class StationList(BaseModel):
    """Every known station, ordered by id."""

    stations: list[StationOut]


class EventOut(_Out):
    """A recorded parcel event (times in UTC)."""

    event_id: str
    station: str
    parcel_id: int
    rma_number: str | None
    barcode: str | None
    lane: str
    disposition: str
    reason: str
    diverted: bool
    length_mm: float
    inducted_at: datetime
    received_at: datetime


class EventList(BaseModel):
    """Newest events first; ``count`` is the total matching the filter, not the page size."""

    count: int
    events: list[EventOut]


class StationLanes(BaseModel):
    """Parcel counts of one station by lane."""

    station: str
    lanes: dict[str, int]
    total: int


class LaneCounts(BaseModel):
    """Parcel counts per station and lane, and the grand total."""

    stations: list[StationLanes]
    total: int


class Health(BaseModel):
    """Liveness: database reachable and broker connected; ``mqtt_status`` is the bridge's."""

    status: str
    db: bool
    mqtt: bool
    mqtt_status: dict[str, Any]
