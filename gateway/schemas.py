"""Gateway input models shared by the API and the services.

Field limits mirror :class:`protocol.RmaAnnouncement` so a valid draft always yields a valid
announcement.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal, Protocol

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from stdnum import ean
from stdnum.exceptions import ValidationError

from gateway.returns.refunds import (
    LineTerms,
    OrderTerms,
    RefundError,
    is_currency,
    paid_lines,
)
from gateway.returns.tracking import CARRIER_MAX_CHARS, TRACKING_NUMBER_MAX_CHARS, check_tracking
from protocol.messages import canonical_uid

EARLIEST_DATE = date(1970, 1, 1)
"""The first day a client may send (a delivery, a carrier's date, a report's bounds)."""
LATEST_DATE = date(2999, 12, 31)
"""The last such day: far from :data:`datetime.MAXYEAR`, so the days the gateway adds to
a date it was given (a return window, a report's or a shift's end) stay in the calendar."""
EARLIEST_MOMENT = datetime.combine(EARLIEST_DATE, datetime.min.time(), UTC)
"""The first instant a client may send, in UTC: 1970-01-01T00:00:00Z."""
MOMENTS_END = datetime.combine(LATEST_DATE + timedelta(days=1), datetime.min.time(), UTC)
"""The first instant past the range, in UTC: 3000-01-01T00:00:00Z (excluded)."""

BoundedDate = Annotated[date, Field(ge=EARLIEST_DATE, le=LATEST_DATE)]
"""A date within :data:`EARLIEST_DATE` .. :data:`LATEST_DATE` (else a 422 naming it)."""
BoundedDatetime = Annotated[AwareDatetime, Field(ge=EARLIEST_MOMENT, lt=MOMENTS_END)]
"""An aware datetime whose UTC instant is on a day of :data:`EARLIEST_DATE` ..
:data:`LATEST_DATE` (else a 422 naming it): ``0001-01-01T00:00:00+14:00`` is valid ISO 8601
but its UTC instant is before year 1, which neither Python nor a database can hold."""

ADDRESS_MAX_LINES = 8
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _address(v: str) -> str:
    lines = [line.strip() for line in v.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    if _CONTROL.search("".join(lines)):
        raise ValueError("an address may not hold control characters")
    lines = [line for line in lines if line]
    if len(lines) > ADDRESS_MAX_LINES:
        raise ValueError(f"an address has at most {ADDRESS_MAX_LINES} lines")
    return "\n".join(lines)


Email = Annotated[
    str,
    Field(max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+$"),
    AfterValidator(str.lower),
]
"""An e-mail address ("" for none), stored lower-case."""
PostalAddress = Annotated[
    str,
    Field(
        max_length=500,
        description="Postal address, lines separated by newlines (at most 8; blank lines dropped)",
    ),
    AfterValidator(_address),
]
"""A postal address: up to 8 non-blank lines, no control characters."""
LanguageTag = Annotated[
    str,
    Field(
        max_length=16,
        pattern=r"^$|^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8}){0,3}$",
        description="BCP 47 language tag of the customer (en, fr, fr-CA); e-mails use the "
        "nearest catalogue language, else the shop's",
    ),
]
"""A BCP 47 language tag ("" when unknown)."""


class RmaLineDraft(BaseModel):
    """One line of a new RMA; ``line_no`` is assigned by position (1..n)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sku: str = Field(min_length=1, max_length=64, description="Stock keeping unit")
    quantity: int = Field(ge=1, le=10_000, description="Units returned on this line")
    gtin: str | None = Field(
        default=None, pattern=r"^\d{8}$|^\d{12,14}$", description="GTIN-8/12/13/14 digits"
    )
    serial: str | None = Field(default=None, min_length=1, max_length=64)
    rfid_uid: str | None = Field(
        default=None, description="RFID UID, 4/7/10 bytes hex; stored canonical (e.g. DD17380A)"
    )
    category: str | None = Field(default=None, min_length=1, max_length=64)
    order_line: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Line number on the order; default: the order line with this SKU",
    )
    unit_price_cents: int | None = Field(
        default=None,
        ge=0,
        le=10**12,
        description="Paid per unit after discounts, minor units; default: from the order",
    )

    @field_validator("rfid_uid")
    @classmethod
    def _canonical_uid(cls, v: str | None) -> str | None:
        return None if v is None else canonical_uid(v)


class _CarrierTracking(BaseModel):
    """A carrier and its tracking number, validated together (``gateway.returns.tracking``).

    ``tracking_number`` is stored upper-case; ``carrier`` None (not given) keeps the name
    stored for the same number, else takes the classifier's (``UPU S10``, ``UPS``).
    """

    carrier: str | None = Field(
        default=None,
        max_length=CARRIER_MAX_CHARS,
        description="Carrier's name; default: the one the tracking number's format names",
    )
    tracking_number: str | None = Field(
        default=None,
        min_length=1,
        max_length=TRACKING_NUMBER_MAX_CHARS,
        description="Carrier tracking number (UPU S10 such as RB123456785GB, UPS 1Z...), "
        "check digit verified",
    )

    @model_validator(mode="after")
    def _tracking_known(self) -> _CarrierTracking:
        if self.tracking_number is None:
            if self.carrier:
                raise ValueError("a carrier needs its tracking_number")
            return self
        carrier, self.tracking_number = check_tracking(self.tracking_number, self.carrier)
        self.carrier = carrier if self.carrier else None  # None: the stored or the format's
        return self


class RmaDraft(_CarrierTracking):
    """A new RMA as the shop back-end submits it (with its parcel's carrier tracking, if known)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    number: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="RMA number printed on the return label (letters, digits, . _ -); "
        "default: a generated one with a check character (ISO 7064 MOD 37,36)",
    )
    order_ref: str = Field(min_length=1, max_length=64, description="Shop order reference")
    site: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The site that receives the parcel (one of the gateway's sites; 422 "
        "otherwise); default: the order's site, else the gateway's default site",
    )
    reason: str = Field(
        min_length=1, max_length=64, description="A code of GET /api/v1/reasons (e.g. size)"
    )
    resolution: str = Field(
        min_length=1,
        max_length=32,
        description="Requested resolution: refund, store_credit or exchange ('credit' is "
        "taken as store_credit)",
    )
    lines: list[RmaLineDraft] = Field(min_length=1, max_length=500)
    customer: str | None = Field(default=None, max_length=128, description="default: order's")
    customer_email: Email | None = Field(default=None, description="default: order's")
    customer_address: PostalAddress | None = Field(
        default=None, description="The label's sender; default: order's"
    )
    customer_language: LanguageTag | None = Field(default=None, description="default: order's")
    delivered_on: BoundedDate | None = Field(
        default=None,
        description="Delivery date (shop's calendar, 1970-01-01..2999-12-31); default: from "
        "the order",
    )
    notes: str = Field(default="", max_length=4000)
    authorize: bool = Field(
        default=True,
        description="Authorize at once when every policy passes; False leaves it "
        "'requested' for a lead to authorize or reject",
    )

    @field_validator("resolution")
    @classmethod
    def _known_resolution(cls, v: str) -> str:
        v = {"credit": "store_credit", "store-credit": "store_credit"}.get(v.lower(), v.lower())
        if v not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}")
        return v


RESOLUTIONS = ("refund", "store_credit", "exchange")


class TrackingEventIn(BaseModel):
    """A carrier's tracking event, carrier-neutral (``POST /api/v1/tracking/events``).

    ``status``: ``in_transit`` (the parcel is moving), ``delivered`` (at our warehouse),
    ``exception`` (held, damaged, returned to sender...); ``occurred_at`` is when the
    carrier saw it (with its UTC offset); ``expected_on`` the delivery date it expects;
    both within :data:`EARLIEST_DATE` .. :data:`LATEST_DATE` (``occurred_at`` in UTC).
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    carrier: str = Field(min_length=1, max_length=CARRIER_MAX_CHARS)
    tracking_number: str = Field(min_length=1, max_length=TRACKING_NUMBER_MAX_CHARS)
    status: Literal["in_transit", "delivered", "exception"]
    occurred_at: BoundedDatetime
    expected_on: BoundedDate | None = None
    detail: str = Field(default="", max_length=500, description="The carrier's own words")

    @field_validator("tracking_number")
    @classmethod
    def _tracking_known(cls, v: str) -> str:
        return check_tracking(v)[1]


class ShipRequest(_CarrierTracking):
    """The customer's parcel is on its way (``ship``): its carrier tracking, if known."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: str = Field(default="", max_length=2000)


class TrackingRequest(_CarrierTracking):
    """Set the carrier tracking of an RMA (e.g. from a label bought for it); no state change."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tracking_number: str = Field(
        min_length=1,
        max_length=TRACKING_NUMBER_MAX_CHARS,
        description="Carrier tracking number (UPU S10, UPS 1Z...), check digit verified",
    )


class OrderLineDraft(BaseModel):
    """One order line: units ordered and delivered, unit price, line discount, tax rate.

    Money in minor units of the order's currency; what the customer paid per line follows
    :mod:`gateway.returns.refunds` (unit price x ordered units - line discount - the
    line's share of the order's discount and voucher, with tax per ``tax_rate_bp``).
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sku: str = Field(min_length=1, max_length=64)
    category: str | None = Field(default=None, min_length=1, max_length=64)
    ordered_quantity: int = Field(ge=1, le=10_000)
    delivered_quantity: int = Field(ge=0, le=10_000)
    unit_price_cents: int = Field(
        ge=0,
        le=10**12,
        description="Unit price, minor units, before the line's and the order's discounts",
    )
    line_discount_cents: int = Field(
        default=0, ge=0, le=10**12, description="Discount off the whole line, minor units"
    )
    tax_rate_bp: int = Field(
        default=0, ge=0, le=10_000, description="Tax rate in basis points (2000 = 20 %)"
    )
    name: str = Field(default="", max_length=200, description="Product name shown to customers")
    gtin: str | None = Field(default=None, pattern=r"^\d{8}$|^\d{12,14}$")
    serials: list[str] = Field(
        default_factory=list, max_length=10_000, description="Serial numbers, when known"
    )
    rfid_uids: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="RFID UIDs of the delivered units (4/7/10 bytes hex), when known",
    )

    @field_validator("serials")
    @classmethod
    def _serials(cls, v: list[str]) -> list[str]:
        v = [s.strip() for s in v]
        if any(not s or len(s) > 64 for s in v):
            raise ValueError("serials must be 1..64 characters each")
        return v

    @field_validator("rfid_uids")
    @classmethod
    def _canonical_uids(cls, v: list[str]) -> list[str]:
        return [canonical_uid(uid) for uid in v]


class OrderDraft(BaseModel):
    """An order as the shop back-end submits it (lines numbered 1..n in order).

    Unknown fields are refused (422 naming them). The order's discount and voucher are
    spread over its lines by :mod:`gateway.returns.refunds`, which also refuses terms that
    cannot have been paid (a discount larger than the lines).
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    order_ref: str = Field(min_length=1, max_length=64)
    site: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The site that receives this order's returns (one of the gateway's "
        "sites); default: the gateway's default site (kept as it is on an update)",
    )
    customer: str = Field(default="", max_length=128)
    customer_email: Email = Field(
        default="",
        description="The customer's e-mail (stored lower-case): with the order number it "
        "opens the public return form",
    )
    customer_address: PostalAddress = ""
    customer_language: LanguageTag = ""
    currency: str = Field(
        default="EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of every amount"
    )
    discount_cents: int = Field(
        default=0, ge=0, le=10**12, description="Order-level discount, minor units"
    )
    voucher_cents: int = Field(
        default=0, ge=0, le=10**12, description="Voucher redeemed on the order, minor units"
    )
    shipping_paid_cents: int = Field(
        default=0, ge=0, le=10**12, description="Shipping the customer paid, minor units"
    )
    tax_inclusive: bool = Field(
        default=True, description="Prices, discounts and voucher include tax"
    )
    delivered_at: BoundedDatetime | None = Field(
        default=None,
        description="When the parcel was delivered (with a UTC offset; in UTC within "
        "1970-01-01..2999-12-31)",
    )
    lines: list[OrderLineDraft] = Field(min_length=1, max_length=500)

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, v: str) -> str:
        if not is_currency(v):
            raise ValueError(f"{v!r} is not an ISO 4217 currency code")
        return v

    @model_validator(mode="after")
    def _payable(self) -> OrderDraft:
        try:
            paid_lines(order_terms(self))
        except RefundError as exc:
            raise ValueError(str(exc)) from exc
        return self


class _OrderLike(Protocol):
    currency: str
    discount_cents: int
    voucher_cents: int
    shipping_paid_cents: int
    tax_inclusive: bool

    @property
    def lines(self) -> Sequence[_OrderLineLike]: ...


class _OrderLineLike(Protocol):
    ordered_quantity: int
    unit_price_cents: int
    line_discount_cents: int
    tax_rate_bp: int
    category: str | None


def order_terms(order: _OrderLike) -> OrderTerms:
    """The refund terms of an order draft or a stored :class:`gateway.models.Order`.

    Lines are numbered 1..n in order (as stored); each line's quantity is what was ordered
    (and paid for).
    """
    return OrderTerms(
        currency=order.currency,
        lines=tuple(
            LineTerms(
                line_no=i,
                quantity=line.ordered_quantity,
                unit_price_cents=line.unit_price_cents,
                line_discount_cents=line.line_discount_cents,
                tax_rate_bp=line.tax_rate_bp,
                category=line.category,
            )
            for i, line in enumerate(order.lines, start=1)
        ),
        order_discount_cents=order.discount_cents,
        voucher_cents=order.voucher_cents,
        shipping_paid_cents=order.shipping_paid_cents,
        tax_inclusive=order.tax_inclusive,
    )


class TransitionRequest(BaseModel):
    """A lifecycle trigger fired by a person or a system."""

    model_config = ConfigDict(extra="forbid")

    trigger: Literal["authorize", "reject", "ship", "cancel", "expire", "close"] = Field(
        description="Resolution (refund / credit / exchange) follows grading automatically: "
        "POST .../decision for a received return"
    )
    note: str = Field(default="", max_length=2000)


class ReceiptLine(BaseModel):
    """Units of one RMA line received at the desk."""

    model_config = ConfigDict(extra="forbid")

    line_no: int = Field(ge=1, le=10_000)
    quantity: int = Field(ge=1, le=10_000)


class ReceiptRequest(BaseModel):
    """A manual (possibly partial) receipt of an RMA's lines."""

    model_config = ConfigDict(extra="forbid")

    lines: list[ReceiptLine] = Field(min_length=1, max_length=500)
    note: str = Field(default="", max_length=2000)


class DecisionRequest(BaseModel):
    """A lead's decision on a quarantined return: the grade it gets, or refuse credit."""

    model_config = ConfigDict(extra="forbid")

    grade: Literal["restock", "refurbish", "recycle", "refuse"]
    destination: Literal["return_to_vendor", "scrap", "return_to_customer"] | None = Field(
        default=None,
        description="Where refused goods go (grade refuse only); default: the shop's "
        "refusal_default setting",
    )
    note: str = Field(default="", max_length=2000)
    revision: int | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="The RMA revision the lead decided on: when the RMA has changed since, "
        "409 with its current state and nothing is done",
    )

    @model_validator(mode="after")
    def _destination_with_refuse(self) -> DecisionRequest:
        if self.destination is not None and self.grade != "refuse":
            raise ValueError("destination is only for grade 'refuse'")
        return self


class UnitDecisionRequest(BaseModel):
    """A lead's decision on one received unit waiting for a lead.

    ``verify``: checked, credited at its station grade or ``grade``; ``regrade``: credited
    at ``grade``; ``confirm_location``: an unconfirmed divert found at ``grade``'s
    location (credited when the station verified it); ``refuse``: no credit, the unit goes
    to ``destination`` (default: the shop's ``refusal_default``). ``revision`` as in
    :class:`DecisionRequest`.
    """

    model_config = ConfigDict(extra="forbid")

    action: Literal["verify", "regrade", "refuse", "confirm_location"]
    grade: Literal["restock", "refurbish", "recycle"] | None = None
    destination: Literal["return_to_vendor", "scrap", "return_to_customer"] | None = None
    revision: int | None = Field(default=None, ge=0, le=2**63 - 1)

    @model_validator(mode="after")
    def _destination_with_refuse(self) -> UnitDecisionRequest:
        if self.destination is not None and self.action != "refuse":
            raise ValueError("destination is only for action 'refuse'")
        return self


class ReasonDraft(BaseModel):
    """An entry of the return-reason list."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    label: str = Field(min_length=1, max_length=128)
    merchant_fault: bool = False
    active: bool = True


MAX_GTINS_PER_SKU = 16
MAX_CATALOGUE_BATCH = 1000


def normalise_gtin(value: str) -> str:
    """A GTIN-8 / -12 (UPC-A) / -13 / -14 as GTIN-14 (zero-padded), check digit verified.

    GS1 General Specifications, section 7.9 (check digit calculation); validated with
    ``python-stdnum`` (``stdnum.ean``), which also drops spaces and hyphens.

    Raises:
        ValueError: when it is not 8, 12, 13 or 14 digits or its check digit is wrong.
    """
    try:
        return ean.validate(value).zfill(14)
    except ValidationError as exc:
        raise ValueError(f"GTIN {value!r}: {exc}") from exc


class CatalogueItemBody(BaseModel):
    """What one unit of a SKU weighs and measures (the body of ``PUT .../catalogue/{sku}``).

    Limits mirror :class:`protocol.RmaLine`, so every entry can be announced. Omitted
    values are unknown (the stations skip that check); tolerances omitted: the policy's.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(default="", max_length=200, description="Product name")
    weight_g: int | None = Field(
        default=None, ge=1, le=1_000_000, description="One unit as shipped back, grams"
    )
    length_mm: int | None = Field(default=None, ge=1, le=5_000, description="mm")
    width_mm: int | None = Field(default=None, ge=1, le=5_000, description="mm")
    height_mm: int | None = Field(default=None, ge=1, le=5_000, description="mm")
    gtins: list[str] = Field(
        default_factory=list,
        max_length=MAX_GTINS_PER_SKU,
        description="Product codes (GTIN-8/12/13/14, check digit verified); stored as GTIN-14",
    )
    weight_tol_g: int | None = Field(
        default=None,
        ge=0,
        le=1_000_000,
        description="Weight tolerance per unit, grams, instead of the policy's percentage",
    )
    size_tol_mm: int | None = Field(
        default=None,
        ge=0,
        le=5_000,
        description="Added to the camera's footprint tolerance for this SKU, mm",
    )

    @field_validator("gtins")
    @classmethod
    def _gtins(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(normalise_gtin(g) for g in v))


class CatalogueItemDraft(CatalogueItemBody):
    """A catalogue entry with its SKU (bulk import, CSV rows)."""

    sku: str = Field(min_length=1, max_length=64, description="Stock keeping unit")


class CatalogueImport(BaseModel):
    """A bulk catalogue import: every entry is stored, or none (one transaction)."""

    model_config = ConfigDict(extra="forbid")

    items: list[CatalogueItemDraft] = Field(min_length=1, max_length=MAX_CATALOGUE_BATCH)

    @field_validator("items")
    @classmethod
    def _unique_skus(cls, v: list[CatalogueItemDraft]) -> list[CatalogueItemDraft]:
        counts = Counter(i.sku for i in v)
        twice = sorted(sku for sku, n in counts.items() if n > 1)
        if twice:
            raise ValueError(f"SKU(s) given more than once: {', '.join(twice)}")
        return v
