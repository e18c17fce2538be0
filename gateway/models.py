"""SQLAlchemy ORM models (typed ``Mapped[]``) of the gateway database.

All timestamps are timezone-aware UTC in Python; they are stored as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


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


class SiteRevision(Base):
    """Site-wide RMA revision counter: bumped by one for every RMA change."""

    __tablename__ = "site_revision"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)


class Rma(Base):
    """A return merchandise authorisation; ``revision`` is the site revision of its last change."""

    __tablename__ = "rmas"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    order_ref: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    resolution: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    lines: Mapped[list[RmaLineRecord]] = relationship(
        back_populates="rma",
        cascade="all, delete-orphan",
        order_by="RmaLineRecord.line_no",
        lazy="selectin",
    )


class RmaLineRecord(Base):
    """One line of an RMA; ``rfid_uid`` is canonical (upper-case hex, no separators)."""

    __tablename__ = "rma_lines"
    __table_args__ = (UniqueConstraint("rma_id", "line_no"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rma_id: Mapped[int] = mapped_column(ForeignKey("rmas.id", ondelete="CASCADE"), index=True)
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    gtin: Mapped[str | None] = mapped_column(String(14))
    serial: Mapped[str | None] = mapped_column(String(64))
    rfid_uid: Mapped[str | None] = mapped_column(String(20), index=True)
    category: Mapped[str | None] = mapped_column(String(64))
    rma: Mapped[Rma] = relationship(back_populates="lines")


class StationEvent(Base):
    """A parcel event reported by a station, stored once per ``event_id``."""

    __tablename__ = "station_events"
    __table_args__ = (Index("ix_station_events_station_lane", "station", "lane"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    station: Mapped[str] = mapped_column(String(64))
    parcel_id: Mapped[int] = mapped_column(Integer)
    rma_number: Mapped[str | None] = mapped_column(String(32))
    lane: Mapped[str] = mapped_column(String(32))
    disposition: Mapped[str] = mapped_column(String(32))
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
    site: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    software_version: Mapped[str] = mapped_column(String(64), default="")
    rma_revision: Mapped[int] = mapped_column(Integer, default=0)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime())
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DeadLetter(Base):
    """An MQTT message the gateway could not accept, kept for inspection."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(String(255))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
