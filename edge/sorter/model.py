"""Value types of the sorter core: belt geometry, lanes, reasons, decisions, commands."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from protocol.messages import CodeRead, UnitReceipt


class Disposition(enum.StrEnum):
    """Where a returned item goes next; decided by its condition, not the customer's reason."""

    RESTOCK = "restock"
    REFURBISH = "refurbish"
    RECYCLE = "recycle"
    QUARANTINE = "quarantine"


class Reason(enum.StrEnum):
    """Reason codes of a decision; every quarantine has one, shown on the status page."""

    MATCHED = "matched"
    HYGIENE_OPENED = "hygiene_opened"
    NO_READ = "no_read"
    GARBLED_READ = "garbled_read"
    UNKNOWN_RMA = "unknown_rma"
    CONFLICTING_READS = "conflicting_reads"
    AMBIGUOUS_READ = "ambiguous_read"
    WRONG_ITEM = "wrong_item"
    RFID_TIMEOUT = "rfid_timeout"
    RMA_CANCELLED = "rma_cancelled"
    RMA_EXPIRED = "rma_expired"
    RMA_ALREADY_RECEIVED = "rma_already_received"
    QUANTITY_EXCEEDED = "quantity_exceeded"
    UNVERIFIED = "unverified"
    MIXED_DISPOSITIONS = "mixed_dispositions"
    UNKNOWN_GRADE = "unknown_grade"
    RECALLED = "recalled"
    NO_RULE = "no_rule"
    NO_LANE = "no_lane"
    LANE_FULL = "lane_full"
    GATE_FAULT = "gate_fault"
    GAP_VIOLATION = "gap_violation"
    LATE_DECISION = "late_decision"
    LATE_GATE = "late_gate"
    BELT_STOPPED = "belt_stopped"
    WEIGHT_MISMATCH = "weight_mismatch"
    SIZE_MISMATCH = "size_mismatch"


class Identity(enum.StrEnum):
    """What the reads of one tracking window say about the item (see ``identify``).

    ``matched``: one known RMA, and no item identifier read (tag UID, serial, GTIN)
    contradicts it; which of its units the parcel verified is the evidence per line
    (``identify.LineEvidence``), judged by the policy's verification table.
    ``garbled_read``: only garbled reads (a check character or digit failed).
    ``ambiguous_read``: a read whose time of observation is uncertain could belong to
    another parcel too (its uncertainty interval at the reader covers another parcel or a
    gap), or was delivered later than its reader's healthy bound: never evidence.
    ``rfid_timeout`` is no longer a verdict of ``identify`` (a line whose tag was not read
    is an unverified unit, inspected with that reason); it stays a valid policy value.
    """

    MATCHED = "matched"
    NO_READ = "no_read"
    GARBLED = "garbled_read"
    UNKNOWN_RMA = "unknown_rma"
    CONFLICTING = "conflicting_reads"
    AMBIGUOUS = "ambiguous_read"
    WRONG_ITEM = "wrong_item"
    RFID_TIMEOUT = "rfid_timeout"


class Mark(enum.StrEnum):
    """Facts about a parcel's way off the belt, reported with it."""

    DIVERT_UNCONFIRMED = "divert_unconfirmed"
    GATE_CANCELLED = "gate_cancelled"
    LANE_FULL = "lane_full"
    GATE_FAULT = "gate_fault"


@dataclass(frozen=True)
class LaneSpec:
    """One outlet of the belt.

    Attributes:
        name: lane id used in reports (e.g. ``"restock"``).
        disposition: what the lane is for.
        pos_mm: distance of the gate (or the belt end) downstream of the induct photo-eye, mm.
        gate: gate id of the diverter; ``None`` for the end-of-line lane where nothing fires.
        confirm: True when a divert-confirm sensor watches the lane: a diverted parcel not
            confirmed within ``BeltConfig.confirm_timeout_ms`` after its gate closed raises
            an alarm and is marked ``divert_unconfirmed``.
        overflow: the lane (same disposition) a parcel goes to while this one is full,
            before quarantine (the sort plan); ``None``: quarantine. Followed in turn when
            it is full too; a name not on the belt (e.g. a broken gate) counts as none.
    """

    name: str
    disposition: Disposition
    pos_mm: float
    gate: str | None
    confirm: bool = False
    overflow: str | None = None


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
        encoder_mm_per_count: belt travel per encoder count, mm; when set, belt position
            comes from ``on_encoder`` counts, else from ``speed_mm_s`` (and belt stops).
        rfid_pos_mm / rfid_tol_mm: RFID antenna position and association tolerance, mm
            (``None``: no reader; the antenna sits at the scan tunnel by default).
        camera_pos_mm / camera_tol_mm: grading camera position and tolerance, mm (``None``:
            no camera; the policy says what grade to assume).
        jam_ms: photo-eye blocked longer than this (ms) is a jam: belt stop and alarm.
        confirm_timeout_ms: how long after its gate closed a divert may be confirmed, ms.
        scale_pos_mm / scale_platform_mm / scale_tol_mm: the checkweigher platform's
            centre downstream of the eye, its length along the belt and the association
            tolerance, mm (``scale_pos_mm`` None: no checkweigher). A weighing belongs to
            the one parcel whose body lay wholly on the platform (within the tolerance)
            while it settled; the parcel is decided once its trailing edge has left the
            platform.

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
    encoder_mm_per_count: float | None = None
    rfid_pos_mm: float | None = None
    rfid_tol_mm: float = 100.0
    camera_pos_mm: float | None = None
    camera_tol_mm: float = 50.0
    jam_ms: float = 5000.0
    confirm_timeout_ms: float = 500.0
    scale_pos_mm: float | None = None
    scale_platform_mm: float = 500.0
    scale_tol_mm: float = 50.0

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
        if self.encoder_mm_per_count is not None and self.encoder_mm_per_count <= 0:
            raise ValueError("encoder_mm_per_count must be > 0")
        if self.jam_ms <= 0:
            raise ValueError(f"jam_ms must be > 0, got {self.jam_ms}")
        if self.scale_platform_mm <= 0 or self.scale_tol_mm < 0:
            raise ValueError("scale_platform_mm must be > 0 and scale_tol_mm >= 0")

    def zones(self) -> tuple[tuple[float, float], ...]:
        """(position, tolerance) of every identifying / grading station on the belt, mm."""
        zones = [(self.scan_pos_mm, self.scan_tol_mm)]
        if self.rfid_pos_mm is not None:
            zones.append((self.rfid_pos_mm, self.rfid_tol_mm))
        if self.camera_pos_mm is not None:
            zones.append((self.camera_pos_mm, self.camera_tol_mm))
        if self.scale_pos_mm is not None:
            zones.append((self.scale_pos_mm, self.scale_platform_mm / 2 + self.scale_tol_mm))
        return tuple(zones)

    def platform_mm(self) -> tuple[float, float] | None:
        """(start, end) of the checkweigher platform downstream of the eye, mm, or None."""
        if self.scale_pos_mm is None:
            return None
        half = self.scale_platform_mm / 2
        return self.scale_pos_mm - half, self.scale_pos_mm + half

    def lane_named(self, name: str) -> LaneSpec | None:
        """The lane called ``name``, or None."""
        return next((lane for lane in self.lanes if lane.name == name), None)

    @property
    def end_lane(self) -> LaneSpec:
        """The end-of-line (no divert) lane: quarantine."""
        return next(lane for lane in self.lanes if lane.gate is None)

    def lane_for(self, disposition: Disposition) -> LaneSpec | None:
        """The first lane (nearest the induct) serving ``disposition``, or None.

        Quarantine is always the end of the belt (:attr:`end_lane`): a gated lane of
        disposition quarantine is an inspection lane, chosen by name only
        (``Policy.inspection_lane``).
        """
        if disposition is Disposition.QUARANTINE:
            return self.end_lane
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
    """An RMA line as the station knows it (identifiers canonical).

    Attributes:
        sku / quantity / gtin / serial / rfid_uid / category: as announced.
        line_no: the line's number on the RMA (None: its position, 1-based).
        unit_value_cents: what one unit is worth (minor currency units), None: unknown
            (the verification table treats an unknown value as above every threshold).
        received_quantity: units the gateway has received (any station, any source) at
            the cached revision.
        received_here: how many of those came from this station's events, when the
            gateway says (None: unknown, so none of this station's receipts is assumed
            to be in ``received_quantity``: the safe side).
        weight_g / length_mm / width_mm / height_mm: the catalogue's expectation of one
            unit, grams and mm (None: unknown); weight_tol_g / size_tol_mm: its tolerance
            overrides (None: the policy's); see ``edge.sorter.physical``.
    """

    sku: str
    quantity: int
    gtin: str | None = None
    serial: str | None = None
    rfid_uid: str | None = None
    category: str | None = None
    line_no: int | None = None
    unit_value_cents: int | None = None
    received_quantity: int = 0
    received_here: int | None = None
    weight_g: int | None = None
    length_mm: int | None = None
    width_mm: int | None = None
    height_mm: int | None = None
    weight_tol_g: int | None = None
    size_tol_mm: int | None = None

    def number(self, index: int) -> int:
        """The line number: ``line_no``, or ``index + 1`` when the record has none."""
        return self.line_no if self.line_no is not None else index + 1

    @property
    def declares_identifier(self) -> bool:
        """True when the line declares any item identifier (GTIN, serial or tag)."""
        return bool(self.gtin or self.serial or self.rfid_uid)


@dataclass(frozen=True)
class RmaRecord:
    """An RMA as cached on the station (``tracking_number``: its parcel's carrier's)."""

    number: str
    state: str
    revision: int
    lines: tuple[RmaLineRecord, ...] = ()
    reason: str | None = None
    tracking_number: str | None = None


class RmaDirectory(Protocol):
    """Where the core looks RMAs up (the station's cache implements it)."""

    def lookup_rma(self, number: str) -> RmaRecord | None:
        """Return the RMA with this number, or None when the station does not know it."""
        ...


@runtime_checkable
class ReceiptBook(Protocol):
    """Optional: a directory that also keeps this station's durable receipts.

    The core stays pure: it only reads the book. Claims it makes are kept in memory
    (visible to the next decision at once, even within one ``advance`` call) and handed
    to the shell on ``ParcelExited``; the shell writes them to the book in the same
    transaction as the parcel's event (``StationStore.outbox_put(..., receipts=...)``),
    so "unit claimed" and "event queued" never disagree after a power cut, and a core
    started over the same store starts from the persisted receipts.
    """

    def claimed_units(self, rma_number: str) -> dict[int, int]:
        """Per line number: the highest unit this station has recorded as claimed."""
        ...


@runtime_checkable
class IdentifierDirectory(Protocol):
    """Optional: a directory that also finds RMAs by identifier (tag UID, serial, tracking)."""

    def find_rmas(self, kind: str, value: str) -> tuple[str, ...]:
        """RMA numbers with identifier ``kind`` equal to ``value``.

        ``rfid_uid`` and ``serial``: declared by one of the RMA's lines; ``tracking``: the
        carrier tracking number of the RMA's parcel.
        """
        ...


@dataclass(frozen=True)
class Decision:
    """Why a parcel goes where it goes.

    Attributes:
        parcel_id: the tracking id given at induct.
        lane: the lane it is sent to.
        reason: the reason code.
        rma_number: the RMA identified, if any.
        reads: distinct codes read in the tracking window (barcodes, then ``rfid:UID``).
        decided_at_ms: when the decision was made (monotonic ms).
        policy_version: version of the disposition policy that decided.
        inputs: the inputs the decision used, as (name, value) pairs: identity, RMA state,
            grade and where it came from, SKU, category, customer's reason, verification,
            rule.
        explanation: one sentence a lead can read: why this lane.
        units: the RMA units the parcel claims, with their evidence, strongest first per
            line (``protocol.messages.UnitReceipt``; the core's claim rule). Empty when no
            RMA was identified, its item contradicted it, its state is not authorized or
            nothing was outstanding.
        codes: every distinct read of the window, classified (``CodeRead``), first seen
            first, at most ``MAX_READS_PER_EVENT``.
    """

    parcel_id: int
    lane: LaneSpec
    reason: Reason
    rma_number: str | None
    reads: tuple[str, ...]
    decided_at_ms: float
    policy_version: str = ""
    inputs: tuple[tuple[str, str], ...] = ()
    explanation: str = ""
    units: tuple[UnitReceipt, ...] = ()
    codes: tuple[CodeRead, ...] = ()

    @property
    def disposition(self) -> Disposition:
        """The disposition of the chosen lane."""
        return self.lane.disposition


@dataclass(frozen=True)
class Inducted:
    """A parcel entered the belt: its induct photo-eye edge was accepted (debounced).

    Emitted once per parcel, when the debouncer accepts the blocked level (``debounce_ms``
    after the burst's last raw edge); ``t_ms`` is the accepted edge's time, the first raw
    edge of the burst (when the leading edge broke the beam). The shell triggers the
    camera from it, with ``parcel_id`` as the photo's tag, so the grade comes back by id.

    Attributes:
        parcel_id: the tracking id the parcel has from now on (1, 2, ...).
        t_ms: when the leading edge reached the photo-eye, monotonic ms.
    """

    parcel_id: int
    t_ms: float


@dataclass(frozen=True)
class GateCommand:
    """Energise ``gate`` from ``open_at_ms`` to ``close_at_ms`` (monotonic ms).

    Commands for one gate may overlap (two parcels for the same lane close together): the
    shell keeps the gate energised while at least one of its commands is active, i.e. it
    holds the gate per parcel and releases it when the last hold ends.
    ``open_at_pos_mm`` / ``close_at_pos_mm`` are the same instants as belt odometer
    positions (mm), for shells that fire by encoder position.

    With an encoder the core re-times a pending command when the belt slows or speeds up:
    a later ``GateCommand`` for the same parcel *replaces* the earlier one (its times
    re-computed from position; ``inf``: not reached while the belt stands).
    """

    parcel_id: int
    gate: str
    open_at_ms: float
    close_at_ms: float
    open_at_pos_mm: float | None = None
    close_at_pos_mm: float | None = None


@dataclass(frozen=True)
class GateCancel:
    """Withdraw the earlier command for ``parcel_id`` on ``gate``: release it, fire nothing."""

    parcel_id: int
    gate: str
    t_ms: float


@dataclass(frozen=True)
class BeltCommand:
    """Run (True) or stop (False) the belt drive output, with the reason (``jam``, ...)."""

    run: bool
    t_ms: float
    reason: str


@dataclass(frozen=True)
class Alarm:
    """Raise (``active``) or clear an alarm: beacon and status page.

    Attributes:
        kind: ``jam``, ``divert_unconfirmed``, ``gate_fault`` (per lane) or
            ``station_overloaded`` (a gate could not be fired on time: see
            ``SorterCore.on_gate_late``).
        active: True when raised, False when cleared.
        t_ms: when, monotonic ms.
        lane: the lane concerned, if any.
        parcel_id: the parcel concerned, if any.
    """

    kind: str
    active: bool
    t_ms: float
    lane: str | None = None
    parcel_id: int | None = None


@dataclass(frozen=True)
class ParcelExited:
    """The parcel has left the belt into ``decision.lane``; report it.

    Attributes:
        decision: the decision the parcel was sorted by.
        inducted_at_ms: leading edge at the photo-eye, monotonic ms.
        length_mm: measured length, mm.
        exited_at_ms: when the trailing edge left the belt (or passed the gate), ms.
        marks: facts about the way out (``divert_unconfirmed``, ``gate_cancelled``).
        lane: where it went when that differs from the decision (a cancelled gate lets it
            run on to quarantine); ``None``: the decided lane.
        divert_confirmed: True when the lane's divert-confirm sensor saw the diverted
            parcel arrive, False when the lane has one and it did not, None when the lane
            has no sensor or the parcel was not diverted (``ParcelEvent.divert_confirmed``).

    The shell persists :attr:`units` (the receipts) atomically with the parcel's event,
    before its next call into the core (``ReceiptBook``).
    """

    decision: Decision
    inducted_at_ms: float
    length_mm: float
    exited_at_ms: float
    marks: tuple[Mark, ...] = ()
    lane: LaneSpec | None = None
    divert_confirmed: bool | None = None

    @property
    def final_lane(self) -> LaneSpec:
        """The lane the parcel actually ended in (as far as the station knows)."""
        return self.lane if self.lane is not None else self.decision.lane

    @property
    def units(self) -> tuple[UnitReceipt, ...]:
        """The RMA units the parcel claimed (its decision's), to persist with its event."""
        return self.decision.units


@dataclass(frozen=True)
class OrphanRead:
    """A read that no parcel in the scan tunnel can own (logged and counted)."""

    code: str
    t_ms: float


@dataclass(frozen=True)
class BadRead:
    """A read that is not an identifier (RFID UID not 4/7/10 bytes, unparsable GS1)."""

    source: str
    value: str
    t_ms: float
    error: str


Action = (
    Inducted
    | GateCommand
    | GateCancel
    | ParcelExited
    | Decision
    | OrphanRead
    | BadRead
    | BeltCommand
    | Alarm
)


def distinct(values: Sequence[str]) -> tuple[str, ...]:
    """Values in first-seen order without repeats."""
    return tuple(dict.fromkeys(values))
