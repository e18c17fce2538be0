"""SQLAlchemy ORM models (typed ``Mapped[]``) of the gateway database.

All timestamps are timezone-aware UTC in Python; they are stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from protocol import StationHealth


def utcnow() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A datetime stored as UTC and always returned timezone-aware (UTC).

    Naive datetimes given to it are taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (naive for SQLite, which has no time zones)."""
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every gateway table."""


#: the largest value of an ``Integer`` column (a 32-bit INTEGER on PostgreSQL, which
#: refuses more: ``integer out of range``; SQLite would store it): ids included
INT32_MAX = 2**31 - 1
#: the largest revision the ``revision`` columns hold (32-bit INTEGER on PostgreSQL)
REVISION_MAX = INT32_MAX


class SiteRevision(Base):
    """Site-wide RMA revision counter: bumped by one for every RMA change."""

    __tablename__ = "site_revision"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)


class Rma(Base):
    """A return merchandise authorisation; ``revision`` is the site revision of its last change.

    ``state`` is driven only by :mod:`gateway.services.lifecycle` (an explicit state machine);
    every change is recorded in :class:`RmaTransition`. Money is in integer minor units
    (cents) of ``currency``.
    """

    __tablename__ = "rmas"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    #: the site that receives the parcel (its stations are announced the RMA; its revision
    #: counter numbers the RMA's changes); one of ``Settings.sites``
    site: Mapped[str] = mapped_column(String(64), index=True)
    order_ref: Mapped[str] = mapped_column(String(64), index=True)
    customer: Mapped[str] = mapped_column(String(128), default="")
    #: the customer's contact when the RMA was created (the label's sender, the e-mails):
    #: from the request, else from the order; "" when unknown. ``customer_language`` is a
    #: BCP 47 tag (``fr``, ``fr-CA``); notifications fall back to the shop's language.
    customer_email: Mapped[str] = mapped_column(String(254), default="", server_default="")
    customer_address: Mapped[str] = mapped_column(Text, default="", server_default="")
    customer_language: Mapped[str] = mapped_column(String(16), default="", server_default="")
    #: the parcel's carrier tracking number as :mod:`gateway.returns.tracking` validates
    #: it (UPU S10, UPS 1Z; one RMA per number), and the carrier's name ("" with none)
    carrier: Mapped[str] = mapped_column(String(32), default="", server_default="")
    tracking_number: Mapped[str | None] = mapped_column(String(48), unique=True, index=True)
    #: when the parcel left (ship, or the carrier's first scan): in transit since then;
    #: the carrier's last reported status (``in_transit``, ``delivered`` at the warehouse,
    #: ``exception``; "" none yet), when it happened, and the delivery date it expects
    shipped_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    carrier_status: Mapped[str] = mapped_column(String(16), default="", server_default="")
    carrier_status_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    expected_on: Mapped[date | None] = mapped_column(Date)
    delivered_on: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(64))
    resolution: Mapped[str] = mapped_column(String(32))
    notes: Mapped[str] = mapped_column(Text, default="")
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    state: Mapped[str] = mapped_column(String(24))
    grade: Mapped[str | None] = mapped_column(String(24))
    awaiting_decision: Mapped[bool] = mapped_column(Boolean, default=False)
    revision: Mapped[int] = mapped_column(Integer, index=True)  # at most REVISION_MAX
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    #: compare-and-set on the revision: every UPDATE of the row carries
    #: ``WHERE revision = <the revision read>``, so a writer that read a revision another
    #: writer has since replaced changes nothing (``StaleDataError``: HTTP 409). The
    #: revision itself is set by :func:`gateway.services.rma_writer.apply_change`.
    __mapper_args__ = {"version_id_col": revision, "version_id_generator": False}
    lines: Mapped[list[RmaLineRecord]] = relationship(
        back_populates="rma",
        cascade="all, delete-orphan",
        order_by="RmaLineRecord.line_no",
        lazy="selectin",
    )
    transitions: Mapped[list[RmaTransition]] = relationship(
        back_populates="rma",
        cascade="all, delete-orphan",
        order_by="RmaTransition.id",
        lazy="selectin",
    )


class RmaLineRecord(Base):
    """One line of an RMA; ``rfid_uid`` is canonical (upper-case hex, no separators).

    ``unit_price_cents`` is what the customer actually paid per unit after discounts;
    ``received_quantity`` counts units received so far (partial receipt).
    """

    __tablename__ = "rma_lines"
    __table_args__ = (UniqueConstraint("rma_id", "line_no"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rma_id: Mapped[int] = mapped_column(ForeignKey("rmas.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    order_line_id: Mapped[int | None] = mapped_column(
        ForeignKey("order_lines.id", ondelete="SET NULL"), index=True
    )
    sku: Mapped[str] = mapped_column(String(64), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    received_quantity: Mapped[int] = mapped_column(Integer, default=0)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    gtin: Mapped[str | None] = mapped_column(String(14))
    serial: Mapped[str | None] = mapped_column(String(64))
    rfid_uid: Mapped[str | None] = mapped_column(String(20), index=True)
    category: Mapped[str | None] = mapped_column(String(64))
    rma: Mapped[Rma] = relationship(back_populates="lines")
    #: the units received so far, with their evidence and decision (unit 1 .. quantity)
    units: Mapped[list[RmaUnit]] = relationship(
        back_populates="line",
        cascade="all, delete-orphan",
        order_by="RmaUnit.unit_no",
        lazy="selectin",
    )
    #: the catalogue's entry for ``sku`` (None while the catalogue does not know it): read
    #: at announcement time, never copied, so a later catalogue entry reaches old RMAs
    catalogue: Mapped[CatalogueItem | None] = relationship(
        primaryjoin="foreign(RmaLineRecord.sku) == CatalogueItem.sku",
        viewonly=True,
        lazy="selectin",
    )


class RmaUnit(Base):
    """One received unit of an RMA line: what proved it, where it is, what was decided.

    ``unit_no`` is the unit of the line (1 .. quantity), unique per line, so a unit is
    received, booked and credited once whatever is redelivered. ``state``: ``awaiting``
    (a lead decides; ``reason`` says why: ``unverified``, ``divert_unconfirmed``,
    ``quarantine``, ``unproved_event`` for a version 1 event, ``desk_receipt``),
    ``credited`` or ``refused``. ``evidence`` / ``identifier`` / ``verified`` come from
    the station's :class:`protocol.UnitReceipt` (or a lead's verification);
    ``divert_confirmed`` from the event (None: no sensor). ``location`` is the stock
    location the unit is booked at (``UNCONFIRMED`` until a lead confirms an unconfirmed
    divert; None while not booked). ``station_reason`` is the station's decision reason
    code and ``photo_sha256`` the parcel photo, shown to the lead.
    """

    __tablename__ = "rma_units"
    __table_args__ = (UniqueConstraint("rma_line_id", "unit_no", name="uq_rma_units_line_unit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rma_line_id: Mapped[int] = mapped_column(
        ForeignKey("rma_lines.id", ondelete="CASCADE"), index=True
    )
    unit_no: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32), default="")
    evidence: Mapped[str | None] = mapped_column(String(16))
    identifier: Mapped[str | None] = mapped_column(String(64))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    divert_confirmed: Mapped[bool | None] = mapped_column(Boolean)
    grade: Mapped[str | None] = mapped_column(String(24))
    location: Mapped[str | None] = mapped_column(String(64))
    event_id: Mapped[str | None] = mapped_column(String(64))
    station_reason: Mapped[str] = mapped_column(String(64), default="")
    photo_sha256: Mapped[str | None] = mapped_column(String(64))
    decided_by: Mapped[str] = mapped_column(String(128), default="")
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    line: Mapped[RmaLineRecord] = relationship(back_populates="units")


class CatalogueItem(Base):
    """What one unit of a SKU weighs and measures: the product catalogue.

    ``weight_g`` (grams) and ``length_mm`` / ``width_mm`` / ``height_mm`` describe one unit
    as it is shipped back (in its own packaging); ``gtins`` are its product codes as
    GTIN-14 (check digit verified). ``weight_tol_g`` / ``size_tol_mm`` override the
    policy's tolerance for this SKU (None: the policy's). Announced to stations with the
    RMA lines of the SKU (``gateway.services.rmas.to_announcement``).
    """

    __tablename__ = "catalogue_items"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    weight_g: Mapped[int | None] = mapped_column(Integer)
    length_mm: Mapped[int | None] = mapped_column(Integer)
    width_mm: Mapped[int | None] = mapped_column(Integer)
    height_mm: Mapped[int | None] = mapped_column(Integer)
    gtins: Mapped[list[str]] = mapped_column(JSON, default=list)
    weight_tol_g: Mapped[int | None] = mapped_column(Integer)
    size_tol_mm: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class RmaTransition(Base):
    """One recorded state change of an RMA: from, to, trigger, who/what and when."""

    __tablename__ = "rma_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    rma_id: Mapped[int] = mapped_column(ForeignKey("rmas.id", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    rma: Mapped[Rma] = relationship(back_populates="transitions")


class ReturnReason(Base):
    """An entry of the editable list of return reasons (seeded with the usual ones)."""

    __tablename__ = "return_reasons"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(128))
    merchant_fault: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Order(Base):
    """A shop order: who may return what (the public return form and the policies)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_ref: Mapped[str] = mapped_column(String(64), unique=True)
    #: the site that receives this order's returns (the return form's RMAs go there)
    site: Mapped[str] = mapped_column(String(64), index=True)
    customer: Mapped[str] = mapped_column(String(128), default="")
    #: lower-cased; with ``order_ref`` it identifies the order on the public return form
    customer_email: Mapped[str] = mapped_column(String(254), default="", server_default="")
    #: postal address, lines separated by newlines; language: a BCP 47 tag ("" unknown)
    customer_address: Mapped[str] = mapped_column(Text, default="", server_default="")
    customer_language: Mapped[str] = mapped_column(String(16), default="", server_default="")
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    #: what the customer paid beyond the lines (minor units of ``currency``; see
    #: :mod:`gateway.returns.refunds`): order-level discount and voucher spread over the
    #: lines, shipping paid; ``tax_inclusive``: prices and reductions include tax
    discount_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    voucher_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    shipping_paid_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    tax_inclusive: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order",
        cascade="all, delete-orphan",
        order_by="OrderLine.line_no",
        lazy="selectin",
    )


class OrderLine(Base):
    """One order line: ordered and delivered units, unit price, line discount, tax rate.

    ``unit_price_cents`` is the unit price before the line's discount
    (``line_discount_cents``, off the whole line) and the order's discount and voucher;
    ``tax_rate_bp`` in basis points (2000 = 20 %). What was paid follows
    :mod:`gateway.returns.refunds`.
    """

    __tablename__ = "order_lines"
    __table_args__ = (UniqueConstraint("order_id", "line_no"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(64))
    ordered_quantity: Mapped[int] = mapped_column(Integer)
    delivered_quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)
    line_discount_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    tax_rate_bp: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    gtin: Mapped[str | None] = mapped_column(String(14))
    #: serial numbers and RFID UIDs (canonical hex) of the delivered units, when known
    serials: Mapped[list[str]] = mapped_column(JSON, default=list)
    rfid_uids: Mapped[list[str]] = mapped_column(JSON, default=list)
    order: Mapped[Order] = relationship(back_populates="lines")


class IdempotencyRecord(Base):
    """The stored outcome of a creating request, keyed by ``Idempotency-Key`` and caller."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("principal", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    principal: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Credit(Base):
    """Money (or an exchange) granted for one unit of an RMA line: at most one per unit.

    ``kind`` is ``refund``, ``store_credit`` or ``exchange``; amounts in minor units of
    ``currency``: ``amount_cents`` is what is granted (goods and, by policy, shipping),
    of which ``tax_refund_cents`` tax and ``shipping_refund_cents`` the shipping paid;
    ``shipping_cost_cents`` is the return shipping the shop spent.
    ``unit_no`` is the unit of the line (1 .. quantity; ``quantity`` is 1).
    """

    __tablename__ = "credits"
    __table_args__ = (UniqueConstraint("rma_line_id", "unit_no", name="uq_credits_line_unit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rma_line_id: Mapped[int] = mapped_column(ForeignKey("rma_lines.id", ondelete="CASCADE"))
    unit_no: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    rma_number: Mapped[str] = mapped_column(String(32), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    grade: Mapped[str] = mapped_column(String(24))
    quantity: Mapped[int] = mapped_column(Integer)
    paid_cents: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    restocking_fee_cents: Mapped[int] = mapped_column(BigInteger)
    recovered_value_cents: Mapped[int] = mapped_column(BigInteger)
    shipping_cost_cents: Mapped[int] = mapped_column(BigInteger)
    tax_refund_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    shipping_refund_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class WriteOff(Base):
    """A unit of an RMA line received but refused credit: where it went, what it cost.

    ``destination`` is the lead's choice (``return_to_vendor``, ``scrap``,
    ``return_to_customer``); amounts in minor units of ``currency``: ``paid_cents`` what
    the customer paid for the units, ``recovered_value_cents`` what the shop gets back
    (by destination and category, from settings), ``shipping_cost_cents`` the return
    shipping spent. One per unit (``unit_no``, ``quantity`` 1), at most once.
    """

    __tablename__ = "write_offs"
    __table_args__ = (UniqueConstraint("rma_line_id", "unit_no", name="uq_write_offs_line_unit"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rma_line_id: Mapped[int] = mapped_column(ForeignKey("rma_lines.id", ondelete="CASCADE"))
    unit_no: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    rma_number: Mapped[str] = mapped_column(String(32), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64))
    destination: Mapped[str] = mapped_column(String(24))
    quantity: Mapped[int] = mapped_column(Integer)
    paid_cents: Mapped[int] = mapped_column(BigInteger)
    recovered_value_cents: Mapped[int] = mapped_column(BigInteger)
    shipping_cost_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class StockMovement(Base):
    """One entry of the stock ledger: units of a SKU into (or, negative, out of) a location.

    Per RMA unit (``rma_line_id``, ``unit_no``) each ``kind`` happens once: ``return_in``
    (the unit arrives at its lane's location, or ``UNCONFIRMED``), ``confirm_out`` /
    ``confirm_in`` (a lead moved an unconfirmed divert to where it really is).
    """

    __tablename__ = "stock_movements"
    __table_args__ = (
        UniqueConstraint("rma_line_id", "unit_no", "kind", name="uq_stock_movements_unit_kind"),
        Index("ix_stock_movements_sku_location", "sku", "location"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the site whose stock it moves (its RMA's, so its station event's)
    site: Mapped[str] = mapped_column(String(64), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(24))
    rma_line_id: Mapped[int | None] = mapped_column(ForeignKey("rma_lines.id", ondelete="SET NULL"))
    unit_no: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    rma_number: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class AnnouncementRow(Base):
    """One RMA announcement in the announcement outbox, until the broker acknowledges it.

    Written in the transaction of the RMA change it announces
    (:func:`gateway.services.rma_writer.apply_change`); the MQTT bridge publishes pending
    rows (QoS 1) and sets ``sent_at`` on the PUBACK, so a gateway restart between the
    commit and the publish loses nothing. ``payload`` is the encoded
    :class:`protocol.RmaAnnouncement` (JSON text, at most the protocol's message size).
    """

    __tablename__ = "announcement_outbox"
    __table_args__ = (Index("ix_announcement_outbox_pending", "sent_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the RMA's site: published on ``rs/v1/{site}/rma``, ``revision`` is that site's
    site: Mapped[str] = mapped_column(String(64))
    rma_number: Mapped[str] = mapped_column(String(32))
    revision: Mapped[int] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class WebhookDelivery(Base):
    """An outbound webhook message and its persisted retry schedule.

    ``status``: ``pending`` (due at ``next_attempt_at``), ``delivered`` or ``dead`` (gave up
    after the maximum attempts; a lead can replay it).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    url: Mapped[str] = mapped_column(String(500))
    endpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ConnectorJob(Base):
    """One outbound call to a shop's back-end (:mod:`gateway.connectors`), durably queued.

    Written in the transaction of the credit or stock movement it pushes. ``kind`` is
    ``refund`` or ``stock``; ``key`` (unique per connector) is the idempotency key sent to
    the shop; ``status`` ``pending`` (due at ``next_attempt_at``), ``done`` (``shop_ref``:
    the shop's id of the refund / adjustment) or ``dead`` (a lead can replay it).
    """

    __tablename__ = "connector_jobs"
    __table_args__ = (
        UniqueConstraint("connector", "key", name="uq_connector_jobs_connector_key"),
        Index("ix_connector_jobs_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connector: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    shop_ref: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class WebhookEndpoint(Base):
    """A receiver of webhooks with its own signing secret (never shared with anything else).

    The secret is stored as it is (the receiver needs the same value to check the HMAC); it
    is shown once, when the endpoint is created or its secret rotated. After a rotation the
    ``previous_secret`` still signs (a second signature header) until ``previous_until``.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Notification(Base):
    """A customer e-mail in the outbox (``gateway.services.notifications``), as it is sent.

    ``kind``: ``return_authorised``, ``return_received`` or ``refund_issued``; one row per
    RMA, kind and ``event_key`` (e.g. a second refund of a partly received return). The
    subject and bodies are rendered when the row is written (in the customer's
    ``language``); ``message_id`` is fixed then too, so a retry is the same message.
    ``status``: ``pending`` (due at ``next_attempt_at``), ``sending`` (claimed by a worker
    until ``claimed_until``), ``sent`` or ``dead`` (gave up; a lead can replay it).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("rma_number", "kind", "event_key"),
        Index("ix_notifications_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rma_number: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    event_key: Mapped[str] = mapped_column(String(64), default="")
    recipient: Mapped[str] = mapped_column(String(254))
    recipient_name: Mapped[str] = mapped_column(String(128), default="")
    language: Mapped[str] = mapped_column(String(8))
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    subject: Mapped[str] = mapped_column(String(255))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ApiKey(Base):
    """An API key for a shop back-end or a tool: only its SHA-256 is stored.

    ``scopes`` is a space-separated list (e.g. ``"rmas:write read"``); ``sites`` the
    space-separated sites it may see and change ("" = every site).
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(255))
    sites: Mapped[str] = mapped_column(String(1000), default="", server_default="")
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class User(Base):
    """A person (warehouse lead, viewer, admin); the password hash is Argon2 (pwdlib).

    ``sites``: the space-separated sites the user may see and change ("" = every site).
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    sites: Mapped[str] = mapped_column(String(1000), default="", server_default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class WebSession(Base):
    """A signed-in browser: only the SHA-256 of its random cookie value is stored.

    Valid while not revoked (sign-out, user revoked), before ``expires_at`` and while the
    user is active; ``csrf`` is the token its form posts must carry.
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AuditEntry(Base):
    """One audited write: who, what (method and path), outcome status, when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    principal: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    status_code: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class StationEvent(Base):
    """A parcel event reported by a station, stored once per ``event_id`` and per parcel.

    A parcel is identified by its station's ``station``, ``parcel_id`` and ``inducted_at``
    (a station restarting may give a parcel id again, never at the same induction time):
    the unique index ``uq_station_events_parcel`` refuses a second event of one parcel
    under another ``event_id`` (a replay), whichever replica stores it.
    """

    __tablename__ = "station_events"
    __table_args__ = (
        Index("ix_station_events_station_lane", "station", "lane"),
        Index("uq_station_events_parcel", "station", "parcel_id", "inducted_at", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    #: the site of the topic it came on (the RMA it names, if any, is of the same site)
    site: Mapped[str] = mapped_column(String(64), index=True)
    station: Mapped[str] = mapped_column(String(64))
    #: the station's own tracking id, as it sent it (1 .. 2^63 - 1, the protocol's bound)
    parcel_id: Mapped[int] = mapped_column(BigInteger)
    rma_number: Mapped[str | None] = mapped_column(String(32))
    #: protocol names (at most protocol.messages.MAX_NAME = 64 characters), as sent
    lane: Mapped[str] = mapped_column(String(64))
    disposition: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    diverted: Mapped[bool] = mapped_column(Boolean)
    barcode: Mapped[str | None] = mapped_column(String(128))
    length_mm: Mapped[float] = mapped_column(Float)
    inducted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)


class Station(Base):
    """Last known status of a station (from its retained status message and last will)."""

    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    software_version: Mapped[str] = mapped_column(String(64), default="")
    #: at most REVISION_MAX: a larger claim is clamped (gateway.services.stations)
    rma_revision: Mapped[int] = mapped_column(Integer, default=0)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime())
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """``{"config_hash": str, "health": StationHealth as JSON}`` from the last status."""

    @property
    def health(self) -> StationHealth:
        """The station's last reported health (:class:`~protocol.StationHealth`).

        Validated when the status came in; a row written before (or altered since) that
        does not validate reads as an empty health, never as a crash of the page.
        """
        try:
            return StationHealth.model_validate((self.details or {}).get("health") or {})
        except ValidationError:
            return StationHealth()

    @property
    def config_hash(self) -> str:
        """Hash of the station config its last birth reported ("" when unknown)."""
        return str((self.details or {}).get("config_hash") or "")


class StationCommand(Base):
    """A command a lead sent to a station, and the station's last reply to it.

    ``state``: ``sent`` (no reply yet), then the station's ``accepted`` / ``done`` /
    ``failed`` (with ``detail``, the refusal or failure reason, and ``result``). Bounded:
    the newest :data:`gateway.services.commands.KEEP_PER_STATION` per station are kept.
    """

    __tablename__ = "station_commands"
    __table_args__ = (Index("ix_station_commands_station_id", "station", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    station: Mapped[str] = mapped_column(String(64))
    command: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    issued_by: Mapped[str] = mapped_column(String(128))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="sent")
    detail: Mapped[str] = mapped_column(String(500), default="")
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class StationStateChange(Base):
    """A change of what a station's belt was doing, from its status (the shift report).

    ``mode``: ``running`` (sorting), ``stopped`` (belt stopped: paused, E-stop), ``jammed``
    or ``offline``; from ``at`` until the next row of the station.
    """

    __tablename__ = "station_state_changes"
    __table_args__ = (Index("ix_station_state_changes_station_at", "station", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    station: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class DeadLetter(Base):
    """An MQTT message the gateway could not accept, kept for inspection."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    station: Mapped[str | None] = mapped_column(String(64))
    """The station whose topic it came on (None: not a station topic); its quota's key."""
    size: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bytes of the stored payload (at most 64 KiB: longer payloads are cut)."""

    __table_args__ = (Index("ix_dead_letters_station", "station", "id"),)


class Alarm(Base):
    """A line alarm (issue 7): raised from a station's status or a parcel event.

    ``kind``: ``estop``, ``jam``, ``lane_full``, ``gate_fault``, ``divert_unconfirmed``,
    ``device_down``, ``station_offline``, ``station_overloaded``, ``untrusted_event`` or
    ``goods_not_received``; ``subject`` names the lane,
    device or parcel concerned ("" for the whole station). ``key`` identifies the condition so
    it is raised once while it lasts: ``{station}:{kind}:{subject}`` for a condition, plus the
    event id for a one-off event.
    A condition alarm is cleared (``cleared_at``) when the station no longer reports it; a
    lead acknowledges it (``acknowledged_at`` / ``acknowledged_by``). Open = not yet
    acknowledged or still active.
    """

    __tablename__ = "alarms"
    __table_args__ = (Index("ix_alarms_open", "cleared_at", "acknowledged_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), index=True)
    station: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(64), default="")
    message: Mapped[str] = mapped_column(String(500), default="")
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
