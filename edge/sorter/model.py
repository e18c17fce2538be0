"""Value types of the sorter core: belt geometry, lanes, reasons, decisions, commands."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Disposition(enum.StrEnum):
    """Where a returned item goes next; decided by its condition, not the customer's reason."""

    RESTOCK = "restock"
    REFURBISH = "refurbish"
    RECYCLE = "recycle"
    QUARANTINE = "quarantine"


class Reason(enum.StrEnum):
    """Reason codes of a decision; every quarantine has one, shown on the status page."""

    MATCHED = "matched"
    NO_READ = "no_read"
    UNKNOWN_RMA = "unknown_rma"
    CONFLICTING_READS = "conflicting_reads"
    RMA_CANCELLED = "rma_cancelled"
    RMA_EXPIRED = "rma_expired"
    RMA_ALREADY_RECEIVED = "rma_already_received"
    NO_LANE = "no_lane"
    LATE_DECISION = "late_decision"


@dataclass(frozen=True)
class LaneSpec:
    """One outlet of the belt.

    Attributes:
        name: lane id used in reports (e.g. ``"restock"``).
        disposition: what the lane is for.
        pos_mm: distance of the gate (or the belt end) downstream of the induct photo-eye, mm.
        gate: gate id of the diverter; ``None`` for the end-of-line lane where nothing fires.
    """

    name: str
    disposition: Disposition
    pos_mm: float
    gate: str | None


@dataclass(frozen=True)
class BeltConfig:
    """Belt geometry and timing the core computes with.

    Attributes:
        speed_mm_s: belt speed, mm/s (> 0).
        scan_pos_mm: position of the scan tunnel (barcode/RFID) downstream of the photo-eye, mm.
        scan_tol_mm: tolerance around the parcel body when associating a read, mm.
        gate_stroke_ms: time a diverter needs to reach its open position, ms.
        gate_margin_ms: extra time the gate is open before the leading edge and after the
            trailing edge, ms.
        debounce_ms: photo-eye debounce (stable time), ms.
        lanes: diverting lanes plus exactly one end-of-line quarantine lane (gate ``None``).

    Raises:
        ValueError: on a non-positive speed, no or several end-of-line lanes, a gate lane
            downstream of the belt end or at/behind the scan tunnel.
    """

    speed_mm_s: float
    scan_pos_mm: float
    lanes: tuple[LaneSpec, ...]
    scan_tol_mm: float = 50.0
    gate_stroke_ms: float = 60.0
    gate_margin_ms: float = 40.0
    debounce_ms: float = 5.0

    def __post_init__(self) -> None:
        if self.speed_mm_s <= 0:
            raise ValueError(f"speed_mm_s must be > 0, got {self.speed_mm_s}")
        ends = [lane for lane in self.lanes if lane.gate is None]
        if len(ends) != 1 or ends[0].disposition is not Disposition.QUARANTINE:
            raise ValueError("exactly one end-of-line lane (no gate) is needed: quarantine")
        for lane in self.lanes:
            if lane.gate is not None and lane.pos_mm >= ends[0].pos_mm:
                raise ValueError(f"lane {lane.name!r} lies beyond the end of the belt")
            if lane.gate is not None and lane.pos_mm <= self.scan_pos_mm:
                raise ValueError(f"lane {lane.name!r} must lie downstream of the scan tunnel")

    @property
    def end_lane(self) -> LaneSpec:
        """The end-of-line (no divert) lane: quarantine."""
        return next(lane for lane in self.lanes if lane.gate is None)

    def lane_for(self, disposition: Disposition) -> LaneSpec | None:
        """The first lane (nearest the induct) serving ``disposition``, or None."""
        lanes = sorted(
            (lane for lane in self.lanes if lane.disposition is disposition),
            key=lambda lane: lane.pos_mm,
        )
        return lanes[0] if lanes else None

    def travel_ms(self, distance_mm: float) -> float:
        """Time (ms) the belt takes to carry a point over ``distance_mm``."""
        return distance_mm * 1000.0 / self.speed_mm_s


@dataclass(frozen=True)
class RmaLineRecord:
    """An RMA line as the station knows it (identifiers canonical)."""

    sku: str
    quantity: int
    gtin: str | None = None
    serial: str | None = None
    rfid_uid: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class RmaRecord:
    """An RMA as cached on the station."""

    number: str
    state: str
    revision: int
    lines: tuple[RmaLineRecord, ...] = ()


class RmaDirectory(Protocol):
    """Where the core looks RMAs up (the station's cache implements it)."""

    def lookup_rma(self, number: str) -> RmaRecord | None:
        """Return the RMA with this number, or None when the station does not know it."""
        ...


@dataclass(frozen=True)
class Decision:
    """Why a parcel goes where it goes.

    Attributes:
        parcel_id: the tracking id given at induct.
        lane: the lane it is sent to.
        reason: the reason code.
        rma_number: the RMA identified, if any.
        reads: distinct codes read in the tracking window.
        decided_at_ms: when the decision was made (monotonic ms).
    """

    parcel_id: int
    lane: LaneSpec
    reason: Reason
    rma_number: str | None
    reads: tuple[str, ...]
    decided_at_ms: float

    @property
    def disposition(self) -> Disposition:
        """The disposition of the chosen lane."""
        return self.lane.disposition


@dataclass(frozen=True)
class GateCommand:
    """Energise ``gate`` from ``open_at_ms`` to ``close_at_ms`` (monotonic ms)."""

    parcel_id: int
    gate: str
    open_at_ms: float
    close_at_ms: float


@dataclass(frozen=True)
class ParcelExited:
    """The parcel has left the belt into ``decision.lane``; report it.

    Attributes:
        decision: the decision the parcel was sorted by.
        inducted_at_ms: leading edge at the photo-eye, monotonic ms.
        length_mm: measured length, mm.
        exited_at_ms: when the trailing edge left the belt (or passed the gate), ms.
    """

    decision: Decision
    inducted_at_ms: float
    length_mm: float
    exited_at_ms: float


@dataclass(frozen=True)
class OrphanRead:
    """A read that no parcel in the scan tunnel can own (logged and counted)."""

    code: str
    t_ms: float


Action = GateCommand | ParcelExited | Decision | OrphanRead


@dataclass
class TrackedParcel:
    """A parcel on the belt, from induct to exit (mutable core state)."""

    parcel_id: int
    inducted_at_ms: float
    cleared_at_ms: float | None = None
    reads: list[str] = field(default_factory=list)
    decision: Decision | None = None
    exit_at_ms: float | None = None

    def length_mm(self, cfg: BeltConfig) -> float | None:
        """Measured length (mm), known once the photo-eye cleared."""
        if self.cleared_at_ms is None:
            return None
        return (self.cleared_at_ms - self.inducted_at_ms) * cfg.speed_mm_s / 1000.0

    def body_mm(self, cfg: BeltConfig, t_ms: float) -> tuple[float, float]:
        """(trailing, leading) edge positions (mm downstream of the eye) at ``t_ms``."""
        lead = (t_ms - self.inducted_at_ms) * cfg.speed_mm_s / 1000.0
        length = self.length_mm(cfg)
        trail = 0.0 if length is None else lead - length
        return trail, lead


def distinct(values: Sequence[str]) -> tuple[str, ...]:
    """Values in first-seen order without repeats."""
    return tuple(dict.fromkeys(values))
