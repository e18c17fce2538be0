"""Response models of the HTTP API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol import StationHealth


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RmaUnitOut(_Out):
    """One received unit: its evidence, where it is, what was decided (or why it waits)."""

    unit_no: int
    state: str
    reason: str
    evidence: str | None
    identifier: str | None
    verified: bool
    divert_confirmed: bool | None
    grade: str | None
    location: str | None
    event_id: str | None
    station_reason: str
    photo_sha256: str | None
    decided_by: str


class RmaLineOut(_Out):
    """One RMA line as stored (``rfid_uid`` canonical; price in minor units)."""

    line_no: int
    sku: str
    quantity: int
    received_quantity: int
    unit_price_cents: int
    gtin: str | None
    serial: str | None
    rfid_uid: str | None
    category: str | None
    units: list[RmaUnitOut] = []


class TransitionOut(_Out):
    """One recorded state change: trigger, from, to, who/what, when (UTC)."""

    trigger: str
    from_state: str
    to_state: str
    actor: str
    note: str
    at: datetime


class RmaOut(_Out):
    """An RMA; ``revision`` is the site revision of its last change.

    ``state`` is one of the lifecycle states (see ``gateway.services.lifecycle``);
    ``awaiting_decision`` is True while a quarantined return waits for a lead.
    """

    number: str
    site: str
    order_ref: str
    customer: str
    customer_email: str = ""
    customer_address: str = ""
    customer_language: str = ""
    carrier: str = ""
    tracking_number: str | None = None
    shipped_at: datetime | None = None
    carrier_status: str = ""
    carrier_status_at: datetime | None = None
    expected_on: date | None = None
    delivered_on: date | None
    reason: str
    resolution: str
    notes: str
    currency: str
    state: str
    grade: str | None
    awaiting_decision: bool
    revision: int
    created_at: datetime
    updated_at: datetime
    lines: list[RmaLineOut]
    transitions: list[TransitionOut]


class ProblemOut(BaseModel):
    """A refused request: ``detail`` says why (for policies: code, message and facts)."""

    detail: Any


class OrderLineOut(_Out):
    """An order line with what may still be returned."""

    line_no: int
    sku: str
    category: str | None
    ordered_quantity: int
    delivered_quantity: int
    unit_price_cents: int
    line_discount_cents: int = 0
    tax_rate_bp: int = 0
    name: str = ""
    gtin: str | None = None
    serials: list[str] = []
    rfid_uids: list[str] = []
    returnable: int = 0


class OrderOut(_Out):
    """An order as stored."""

    order_ref: str
    site: str
    customer: str
    customer_email: str = ""
    customer_address: str = ""
    customer_language: str = ""
    currency: str
    discount_cents: int = 0
    voucher_cents: int = 0
    shipping_paid_cents: int = 0
    tax_inclusive: bool = True
    delivered_at: datetime | None
    lines: list[OrderLineOut]


class ReasonOut(_Out):
    """An entry of the return-reason list."""

    code: str
    label: str
    merchant_fault: bool
    active: bool


class ReasonList(BaseModel):
    """Every return reason, ordered by code."""

    reasons: list[ReasonOut]


class CreditOut(_Out):
    """A credit for one RMA line (amounts in minor units of ``currency``)."""

    rma_number: str
    sku: str
    category: str
    kind: str
    grade: str
    quantity: int
    unit_no: int = 1
    paid_cents: int
    amount_cents: int
    restocking_fee_cents: int
    recovered_value_cents: int
    shipping_cost_cents: int
    currency: str
    source: str
    created_at: datetime


class CreditList(BaseModel):
    """Credits, newest first."""

    credits: list[CreditOut]


class StockLevelOut(_Out):
    """Net units of a SKU at a location."""

    sku: str
    location: str
    quantity: int


class StockMovementOut(_Out):
    """A ledger entry."""

    site: str
    sku: str
    location: str
    quantity: int
    kind: str
    rma_number: str | None
    created_at: datetime


class StockOut(BaseModel):
    """Stock levels per SKU and location, and the latest ledger entries."""

    levels: list[StockLevelOut]
    movements: list[StockMovementOut]


class ImpactRowOut(_Out):
    """Financial impact of one (currency, day, category); amounts in its minor units."""

    currency: str
    day: str
    category: str
    units: int
    refused_units: int
    refunds_cents: int
    store_credits_cents: int
    exchanges_cents: int
    shipping_refunded_cents: int
    restocking_fees_cents: int
    recovered_restock_cents: int
    recovered_refurbish_cents: int
    recovered_recycle_cents: int
    recovered_return_to_vendor_cents: int
    recovered_scrap_cents: int
    recovered_return_to_customer_cents: int
    shipping_cents: int
    net_loss_cents: int


class ImpactReport(BaseModel):
    """Rows per currency by day and category, each currency ending with its total.

    ``currencies`` lists the currencies present; amounts are never summed across them.
    """

    currencies: list[str]
    rows: list[ImpactRowOut]


class DeliveryOut(_Out):
    """An outbound webhook delivery and its retry state."""

    id: int
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str
    payload: dict[str, Any]


class ConnectorJobOut(_Out):
    """An outbound call to a shop (refund or stock movement) and its retry state."""

    id: int
    connector: str
    kind: str
    key: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str
    shop_ref: str
    payload: dict[str, Any]


class ConnectorJobList(BaseModel):
    """Connector jobs, newest first."""

    jobs: list[ConnectorJobOut]


class DeliveryList(BaseModel):
    """Webhook deliveries, newest first."""

    deliveries: list[DeliveryOut]


class NotificationOut(_Out):
    """A customer e-mail in the outbox and its delivery state."""

    id: int
    rma_number: str
    kind: str
    recipient: str
    language: str
    subject: str
    message_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str
    created_at: datetime
    sent_at: datetime | None


class NotificationList(BaseModel):
    """Customer e-mails, newest first."""

    notifications: list[NotificationOut]


class ApiKeyCreate(BaseModel):
    """A new API key's name and scopes."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    scopes: list[str] = Field(min_length=1, max_length=5)
    sites: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list,
        max_length=100,
        description="The only sites it may see and change (each one of the gateway's); "
        "empty: every site",
    )


class ApiKeyOut(BaseModel):
    """The new key: ``key`` is shown this once and never stored in the clear."""

    name: str
    scopes: list[str]
    sites: list[str] = Field(default_factory=list, description="empty: every site")
    key: str


class ApiKeyInfo(_Out):
    """A stored API key (never the key nor its hash): ``prefix`` is its first characters."""

    name: str
    prefix: str
    scopes: str
    sites: str = Field(default="", description="space-separated; empty: every site")
    revoked: bool
    created_at: datetime


class WebhookEndpointCreate(BaseModel):
    """A new webhook receiver."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(min_length=8, max_length=500, pattern=r"^https?://[^\s]+$")


class WebhookRotate(BaseModel):
    """A secret rotation.

    ``overlap_s``: how long the old secret still signs (default
    ``RS_WEBHOOK_ROTATION_OVERLAP_S``).
    """

    overlap_s: float | None = Field(default=None, ge=0, le=30 * 86_400)


class WebhookEndpointOut(_Out):
    """A webhook receiver; ``secret`` only in the answer that created or rotated it."""

    name: str
    url: str
    active: bool
    created_at: datetime
    rotated_at: datetime | None = None
    previous_until: datetime | None = None
    secret: str | None = None


class UserCreate(BaseModel):
    """A new user account."""

    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=12, max_length=256)
    role: Literal["viewer", "lead", "admin"]
    sites: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list,
        max_length=100,
        description="The only sites it may see and change (each one of the gateway's); "
        "empty: every site",
    )


class AuditOut(_Out):
    """One audited write."""

    principal: str
    method: str
    path: str
    status_code: int
    at: datetime


class UserOut(_Out):
    """A user account (never the password hash)."""

    username: str
    role: str
    sites: str = Field(default="", description="space-separated; empty: every site")
    active: bool


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
    config_hash: str
    health: StationHealth


class CommandIn(BaseModel):
    """A command for one station.

    ``command``: ``resume``, ``pause``, ``run``, ``gate_test``, ``resync``,
    ``reload_policy``; ``args`` only for ``gate_test`` (``lane``, ``pulse_ms`` 50..5000).
    """

    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, max_length=32)
    args: dict[str, str | int] = Field(default_factory=dict, max_length=4)


class CommandOut(_Out):
    """A sent command and the station's last reply.

    ``state``: ``sent``, ``accepted``, ``done``, ``failed``; ``detail``: the reason.
    """

    request_id: str
    station: str
    command: str
    args: dict[str, Any]
    issued_by: str
    issued_at: datetime
    state: str
    detail: str
    result: dict[str, Any]


class StationList(BaseModel):
    """Every known station, ordered by id."""

    stations: list[StationOut]


class EventPhoto(BaseModel):
    """A parcel's photo evidence: the JPEG is at ``url`` (``GET /api/v1/photos/{sha256}``)."""

    sha256: str
    taken_at: datetime
    content_type: str = "image/jpeg"
    size: int
    url: str


class EventOut(_Out):
    """A recorded parcel event (times in UTC)."""

    event_id: str
    site: str
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
    photo: EventPhoto | None = None
    grade: str | None = None
    grade_confidence: float | None = None
    grade_explanation: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_raw(cls, data: Any) -> Any:
        """Photo and camera grade come from the stored event (``raw``), when present."""
        raw = getattr(data, "raw", None)
        if not isinstance(raw, dict):
            return data
        fields = {name: getattr(data, name) for name in cls.model_fields if hasattr(data, name)}
        for key in ("grade", "grade_confidence", "grade_explanation"):
            fields[key] = raw.get(key)
        photo = raw.get("photo")
        if isinstance(photo, dict) and "sha256" in photo:
            fields["photo"] = {**photo, "url": f"/api/v1/photos/{photo['sha256']}"}
        return fields


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
    """Health: database reachable and broker connected; ``mqtt_status`` is the bridge's.

    The details (``db``, ``mqtt``, ``mqtt_status``) are given to readers only.
    """

    status: str
    db: bool | None = None
    mqtt: bool | None = None
    mqtt_status: dict[str, Any] | None = None


class CatalogueItemOut(_Out):
    """A catalogue entry: one unit's weight (g), dimensions (mm), GTIN-14s, tolerances."""

    sku: str
    name: str
    weight_g: int | None
    length_mm: int | None
    width_mm: int | None
    height_mm: int | None
    gtins: list[str]
    weight_tol_g: int | None
    size_tol_mm: int | None
    updated_at: datetime


class CatalogueList(BaseModel):
    """A page of entries by SKU; ``next_after``: pass as ``after`` for the next page."""

    items: list[CatalogueItemOut]
    next_after: str | None


class CataloguePutOut(BaseModel):
    """What storing an entry did, and how many open RMAs were re-announced for it."""

    item: CatalogueItemOut
    outcome: Literal["created", "updated", "unchanged"]
    reannounced: int


class CatalogueImportOut(BaseModel):
    """What a bulk import did: counts by outcome, then one result per entry in order."""

    created: int
    updated: int
    unchanged: int
    reannounced: int
    results: list[CataloguePutOut]
