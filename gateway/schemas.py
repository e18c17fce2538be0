"""Gateway input models shared by the API and the services.

Field limits mirror :class:`protocol.RmaAnnouncement` so a valid draft always yields a valid
announcement.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from protocol.messages import canonical_uid


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

    @field_validator("rfid_uid")
    @classmethod
    def _canonical_uid(cls, v: str | None) -> str | None:
        return None if v is None else canonical_uid(v)


class RmaDraft(BaseModel):
    """A new RMA as the shop back-end submits it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    number: str = Field(
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="RMA number printed on the return label (letters, digits, . _ -)",
    )
    order_ref: str = Field(min_length=1, max_length=64, description="Shop order reference")
    reason: str = Field(min_length=1, max_length=64, description="Customer's return reason")
    resolution: str = Field(min_length=1, max_length=32, description="refund, exchange, ...")
    lines: list[RmaLineDraft] = Field(min_length=1, max_length=500)
