"""Message models of the edge <-> gateway contract.

Every message is JSON (UTF-8) with a ``kind`` and a ``schema_version``. Models are frozen
pydantic models; :func:`decode` turns bytes into the expected model or raises
:class:`ProtocolError`, never anything else.
"""

from __future__ import annotations

import enum
import json
import re
from datetime import datetime
from typing import Annotated, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from protocol.text import may_hold_nul, nul_places

SCHEMA_VERSION = 1
"""Schema version of the messages that have never changed shape. A message that did
change carries its own newer version (:attr:`_Message.SCHEMA_VERSIONS`): ``ParcelEvent``
is at 2."""

_UID_RE = re.compile(r"^(?:[0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})$")


INT64_MAX = 2**63 - 1
"""Largest integer a message may carry where no tighter bound applies: what SQLite (and
PostgreSQL ``BIGINT``) can store. A larger value is a protocol error at decode time, never
an ``OverflowError`` deep in a store."""


MAX_NAME = 64
"""Longest name on the wire (station, lane, disposition, reason, SKU, version, key)."""
MAX_TEXT = 500
"""Longest free text on the wire (a detail, a message)."""
MAX_MAP_ENTRIES = 64
"""Most entries of a keyed map on the wire (command arguments, metrics, counters)."""
MAX_LANES = 32
"""Most lanes a station may report."""

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
"""A bounded name: 1 to :data:`MAX_NAME` characters."""
StationId = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=r"^[^/+#\s]+$")]
"""A station id: a valid MQTT topic segment (no ``/``, ``+``, ``#``, white space)."""
Text = Annotated[str, Field(max_length=MAX_TEXT)]
"""Bounded free text: at most :data:`MAX_TEXT` characters."""
Count = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A counter or gauge: 0 .. :data:`INT64_MAX`."""
Finite = Annotated[float, Field(ge=-1e15, le=1e15, allow_inf_nan=False)]
"""A finite float within +-1e15 (no NaN, no infinity)."""
Scalar = (
    Annotated[str, Field(max_length=MAX_TEXT)]
    | Annotated[int, Field(ge=-INT64_MAX, le=INT64_MAX)]
    | Finite
    | bool
)
"""A bounded JSON scalar (the value of a command argument or result)."""

MAX_PACKET_BYTES = 3 * 1024 * 1024
"""Largest MQTT packet the site broker takes (``max_packet_size`` in
``hardware/mosquitto.conf``): a client sending a larger one is disconnected."""
MAX_MESSAGE_BYTES = MAX_PACKET_BYTES - 4096
"""Largest payload anyone may publish: the packet limit less room for the topic and
header. The largest legitimate message, a :class:`PhotoUpload` of :data:`MAX_PHOTO_BYTES`
(base64, about 2.67 MB), fits with about 15 % to spare; catch-up batches are split below it."""


MAX_EVENT_BYTES = 384 * 1024
"""Largest :class:`ParcelEvent` payload (bytes): the largest valid event (every field at its
bound) fits; anything larger is refused before parsing and never stored."""
MAX_STATUS_BYTES = 64 * 1024
"""Largest :class:`StationStatus` payload (bytes), so the stored status of every station,
and the status page built from them, stay small."""
MAX_REPLY_BYTES = 64 * 1024
"""Largest :class:`CommandReply` payload (bytes)."""

WIRE_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
"""The config of every model on the wire: frozen, unknown fields refused, finite floats."""


SchemaVersion = Annotated[int, Field(ge=1, le=99)]
"""A message's ``schema_version`` (which ones a model accepts: its ``SCHEMA_VERSIONS``)."""


class ProtocolError(ValueError):
    """A payload that is not a valid message of the expected kind."""


CASCADE_TAG = "88"
"""The ISO/IEC 14443-3 cascade tag (``88h``), as canonical hex."""


def canonical_uid(value: str) -> str:
    """Return an RFID UID in canonical form: upper-case hex, no separators.

    The single UID rule of the station, the gateway and RMA lines (field case C1).
    Accepts ``"dd:17:38:0a"``, ``"DD-17-38-0A"``, ``"dd17380a"``. A UID is 4, 7 or 10 bytes
    (ISO/IEC 14443-3 single, double, triple size). A 4-byte value starting with the
    cascade tag ``88`` is the first cascade level of a 7- or 10-byte UID read incompletely,
    never a tag's UID (ISO/IEC 14443-3 forbids ``uid0 = 88h`` for single-size UIDs).

    Raises:
        ValueError: when the value is not 4, 7 or 10 bytes of hex, or is 4 bytes starting
            with the cascade tag ``88``.
    """
    cleaned = re.sub(r"[\s:\-]", "", value).upper()
    if not _UID_RE.match(cleaned):
        raise ValueError(f"RFID UID {value!r} is not 4, 7 or 10 bytes of hex")
    if len(cleaned) == 8 and cleaned.startswith(CASCADE_TAG):
        raise ValueError(
            f"RFID UID {value!r} starts with the cascade tag 88: it is the first level of a "
            "7- or 10-byte UID (incomplete read), not a UID; use the full UID"
        )
    return cleaned


class _Message(BaseModel):
    """Base of every message: frozen, unknown fields refused, a known ``schema_version``.

    ``SCHEMA_VERSIONS`` lists the versions a receiver accepts, oldest first; the last one
    is what a sender writes (the field's default). Accepting the previous version lets one
    side be upgraded before the other during a rollout: the gateway first for messages the
    stations send, the stations first for messages the gateway sends.
    """

    model_config = WIRE_CONFIG

    SCHEMA_VERSIONS: ClassVar[tuple[int, ...]] = (SCHEMA_VERSION,)
    MAX_BYTES: ClassVar[int] = MAX_MESSAGE_BYTES
    """Largest payload of this kind :func:`decode` parses (bytes); a larger one is a
    :class:`ProtocolError` before any parsing. Kinds with small bounded fields set less."""

    schema_version: SchemaVersion = SCHEMA_VERSION

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v not in cls.SCHEMA_VERSIONS:
            accepted = ", ".join(str(x) for x in cls.SCHEMA_VERSIONS)
            raise ValueError(f"schema_version {v} is not supported (accepted: {accepted})")
        return v


class RmaState(enum.StrEnum):
    """RMA states a station cares about."""

    AUTHORIZED = "authorized"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    RECEIVED = "received"


class RmaLine(BaseModel):
    """One RMA line: what the customer sends back, and how the station may recognise it.

    Identifiers (``gtin``, ``serial``, ``rfid_uid``) say how a unit can be verified
    (:class:`Evidence`). Since schema version 2 of :class:`RmaAnnouncement`, optionally:
    ``received_quantity``, units the gateway has already received (from any station of
    the site) at this revision, so a station never claims them again;
    ``unit_value_cents``, what one unit is worth (paid price, minor currency units), for
    the policy's value threshold; and the catalogue's expectation of one unit: ``weight_g``
    (grams) and ``length_mm`` / ``width_mm`` / ``height_mm``, for the checkweigher and the
    camera's footprint check, with the catalogue's tolerance overrides for this SKU:
    ``weight_tol_g`` (grams per unit, instead of the policy's percentage) and
    ``size_tol_mm`` (added to the camera's footprint tolerance). ``received_by_station``:
    how many of ``received_quantity`` came from each station's parcel events (station id ->
    units; the rest came from elsewhere, e.g. a lead's manual receipt), so a station tells
    its own receipts the gateway has counted from those it has not yet ingested; a station
    the map does not name has none counted (the safe side: its own receipts are added to
    the total).
    """

    model_config = WIRE_CONFIG

    line_no: int = Field(ge=1, le=INT64_MAX)
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=10_000)
    gtin: str | None = Field(default=None, max_length=14, pattern=r"^\d{8}$|^\d{12,14}$")
    serial: str | None = Field(default=None, min_length=1, max_length=64)
    rfid_uid: str | None = Field(default=None, max_length=32)
    category: str | None = Field(default=None, max_length=64)
    received_quantity: int = Field(default=0, ge=0, le=10_000)
    unit_value_cents: int | None = Field(default=None, ge=0, le=10**12)
    weight_g: int | None = Field(default=None, ge=1, le=1_000_000)
    length_mm: int | None = Field(default=None, ge=1, le=5_000)
    width_mm: int | None = Field(default=None, ge=1, le=5_000)
    height_mm: int | None = Field(default=None, ge=1, le=5_000)
    weight_tol_g: int | None = Field(default=None, ge=0, le=1_000_000)
    size_tol_mm: int | None = Field(default=None, ge=0, le=5_000)
    received_by_station: dict[StationId, Annotated[int, Field(ge=1, le=10_000)]] = Field(
        default_factory=dict, max_length=64
    )

    @field_validator("rfid_uid")
    @classmethod
    def _uid(cls, v: str | None) -> str | None:
        return None if v is None else canonical_uid(v)

    @model_validator(mode="after")
    def _received_within_quantity(self) -> RmaLine:
        if self.received_quantity > self.quantity:
            raise ValueError(
                f"received_quantity {self.received_quantity} exceeds quantity {self.quantity}"
            )
        if sum(self.received_by_station.values()) > self.received_quantity:
            raise ValueError("received_by_station adds up to more than received_quantity")
        return self

    def has_v2_fields(self) -> bool:
        """True when a field of schema version 2 is set (not allowed in a version 1 message)."""
        return bool(
            self.received_quantity
            or self.received_by_station
            or any(
                v is not None
                for v in (
                    self.unit_value_cents,
                    self.weight_g,
                    self.length_mm,
                    self.width_mm,
                    self.height_mm,
                    self.weight_tol_g,
                    self.size_tol_mm,
                )
            )
        )


class RmaAnnouncement(_Message):
    """An RMA as the gateway announces it to the site's stations.

    ``revision`` is the site-wide revision number: strictly increasing per site, so a
    station applies an announcement only when it is newer than what it holds for that RMA
    and catches up by asking for everything after its highest applied revision.
    Schema version 2 adds the optional line fields of :class:`RmaLine` (received
    quantities, unit value, catalogue weight and dimensions); version 3 adds the parcel's
    carrier ``tracking_number`` (as the code classifier of :mod:`protocol.codes` names a
    tracking read: UPU S10, UPS 1Z, ...; at most 48 printable ASCII characters) and the
    ``carrier``'s name. Stations accept 1, 2 and 3 (upgrade stations first); the gateway
    writes 3 only for an RMA with a tracking number, so a station not yet upgraded still
    takes every other announcement.
    """

    SCHEMA_VERSIONS: ClassVar[tuple[int, ...]] = (1, 2, 3)

    schema_version: SchemaVersion = 3
    kind: Literal["rma"] = "rma"
    number: str = Field(min_length=1, max_length=32)
    revision: int = Field(ge=1, le=INT64_MAX)
    order_ref: str = Field(min_length=1, max_length=64)
    state: RmaState = RmaState.AUTHORIZED
    reason: str = Field(min_length=1, max_length=64)
    resolution: str = Field(min_length=1, max_length=32)
    lines: tuple[RmaLine, ...] = Field(min_length=1, max_length=1_000)
    tracking_number: str | None = Field(
        default=None, min_length=1, max_length=48, pattern=r"^[\x21-\x7e]+$"
    )
    carrier: str | None = Field(default=None, min_length=1, max_length=32)

    @model_validator(mode="after")
    def _v1_has_no_v2_fields(self) -> RmaAnnouncement:
        if self.schema_version < 2 and any(line.has_v2_fields() for line in self.lines):
            raise ValueError("received, value and catalogue line fields need schema_version 2")
        if self.schema_version < 3 and (self.tracking_number or self.carrier):
            raise ValueError("tracking_number and carrier need schema_version 3")
        return self


class RmaCancellation(_Message):
    """The gateway withdraws an RMA: the station must quarantine its parcel from now on.

    Carries the same site-wide ``revision`` sequence as :class:`RmaAnnouncement`, so a
    cancellation at revision 7 beats an announcement at revision 5 of the same RMA and an
    announcement at revision 9 (a re-authorisation) beats the cancellation.
    """

    kind: Literal["rma_cancel"] = "rma_cancel"
    number: str = Field(min_length=1, max_length=32)
    revision: int = Field(ge=1, le=INT64_MAX)
    reason: str = Field(default="cancelled", min_length=1, max_length=64)


RmaChange = Annotated[RmaAnnouncement | RmaCancellation, Field(discriminator="kind")]
"""What the RMA topic and a catch-up batch carry: an announcement or a cancellation."""


class DeviceHealth(BaseModel):
    """Start-up self-test result of one device (photo-eye, gate, encoder, RFID, camera, ...).

    ``state``: ``ok`` or why not (``failed``); ``backend``: the configured backend name
    (``gpiozero``, ``mfrc522``, ...); ``detail``: what was checked, or why it failed.
    """

    model_config = WIRE_CONFIG

    state: Name
    backend: str = Field(default="", max_length=MAX_NAME)
    detail: Text = ""


class CoreStatus(BaseModel):
    """The sorter core: parcels on the belt, counters, parcels per lane, jam, full lanes.

    ``lanes``: parcels sent to each lane since start; ``lanes_full``: lanes whose full
    sensor is on (sorted); ``lanes_faulted``: lanes whose gate cannot be driven (its PLC
    link is lost); ``holds``: why the belt stands (``jam``, ``pause``, ``estop``; empty
    while it runs); ``policy_version``: the disposition policy in force.
    """

    model_config = WIRE_CONFIG

    on_belt: Count = 0
    counters: dict[Name, Count] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)
    lanes: dict[Name, Count] = Field(default_factory=dict, max_length=MAX_LANES)
    jammed: bool = False
    lanes_full: tuple[Name, ...] = Field(default=(), max_length=MAX_LANES)
    lanes_faulted: tuple[Name, ...] = Field(default=(), max_length=MAX_LANES)
    holds: tuple[Name, ...] = Field(default=(), max_length=8)
    policy_version: str = Field(default="", max_length=MAX_NAME)


class LinkStatus(BaseModel):
    """The station's MQTT link: connection, catch-up state, outbox.

    ``sync_lag`` = ``head_revision`` - ``rma_revision`` (site revisions known to exist and
    not yet applied); ``outbox_depth``: messages not yet acknowledged by the broker;
    ``inflight``: published and awaiting PUBACK; ``counters``: connects, published, ...
    """

    model_config = WIRE_CONFIG

    connected: bool = False
    in_sync: bool = False
    rma_revision: Count = 0
    head_revision: Count = 0
    sync_lag: Count = 0
    outbox_depth: Count = 0
    inflight: Count = 0
    counters: dict[Name, Count] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)


class StationAlarm(BaseModel):
    """An alarm the station has raised and not yet cleared (``jam``, ``lane_full``, ...).

    ``lane``: the lane it concerns, if any; ``parcel_id``: the parcel that raised it.
    """

    model_config = WIRE_CONFIG

    kind: Name
    lane: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    parcel_id: int | None = Field(default=None, ge=1, le=INT64_MAX)


class ComponentStatus(BaseModel):
    """What one driver or service (scanner, RFID, camera, grader, scheduler...) reports.

    ``state``: ``ok``, ``stopped``, ``failed``...; ``values``: its counters and gauges,
    nested keys joined with ``.`` (e.g. ``late_p99_ms``), each a bounded scalar.
    """

    model_config = WIRE_CONFIG

    state: str | None = Field(default=None, max_length=MAX_NAME)
    values: dict[Annotated[str, Field(min_length=1, max_length=128)], Scalar | None] = Field(
        default_factory=dict, max_length=MAX_MAP_ENTRIES
    )


class ClockStatus(BaseModel):
    """The station's system clock as it saw it: steps (an NTP correction after boot).

    ``steps``: wall-clock steps detected since start; ``last_step_s``: the last one, in s
    (positive: the clock jumped forward).
    """

    model_config = WIRE_CONFIG

    steps: Count = 0
    last_step_s: float = Field(default=0.0, ge=-1e9, le=1e9)


class StationHealth(BaseModel):
    """The health of every component of a station, as its status carries it.

    ``degraded``: a device failed, or the scanner / RFID / camera is not ok;
    ``belt_running``: None when unknown; ``devices``: self-test health by device name;
    ``core``, ``link``: see their models; ``alarms``: raised alarms by ``kind`` or
    ``kind:lane``; ``components``: the other drivers and services by name;
    ``estop_engaged``: the emergency stop holds gates and belt; ``resets``: reset button
    presses seen; ``clock``: system clock steps (:class:`ClockStatus`).
    """

    model_config = WIRE_CONFIG

    degraded: bool = False
    belt_running: bool | None = None
    devices: dict[Name, DeviceHealth] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)
    core: CoreStatus | None = None
    link: LinkStatus | None = None
    alarms: dict[Annotated[str, Field(min_length=1, max_length=2 * MAX_NAME + 1)], StationAlarm] = (
        Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)
    )
    components: dict[Name, ComponentStatus] = Field(
        default_factory=dict, max_length=MAX_MAP_ENTRIES
    )
    estop_engaged: bool = False
    resets: Count = 0
    clock: ClockStatus | None = None


class StationStatus(_Message):
    """Station birth / last will, published retained on the status topic.

    ``software_version`` and ``config_hash`` identify what the station runs (birth);
    ``rma_revision`` is its highest applied site revision; ``health`` is the typed status
    of its components (:class:`StationHealth`). Schema version 2 replaced version 1's
    untyped ``details`` dict with ``health``: a version 1 status is still accepted (a
    station not yet upgraded) but its ``details`` are dropped unread, never stored.
    """

    SCHEMA_VERSIONS: ClassVar[tuple[int, ...]] = (1, 2)

    schema_version: SchemaVersion = 2
    MAX_BYTES: ClassVar[int] = MAX_STATUS_BYTES
    kind: Literal["status"] = "status"
    station: StationId
    state: Literal["online", "offline", "degraded"]
    software_version: str = Field(default="", max_length=MAX_NAME)
    config_hash: str = Field(default="", max_length=MAX_NAME)
    rma_revision: int = Field(default=0, ge=0, le=INT64_MAX)
    health: StationHealth = StationHealth()

    @model_validator(mode="before")
    @classmethod
    def _drop_v1_details(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("schema_version") == 1 and "details" in data:
            return {k: v for k, v in data.items() if k != "details"}
        return data


MAX_PHOTO_BYTES = 2_000_000


class PhotoRef(BaseModel):
    """The photo evidence of a parcel: its JPEG is sent apart (:class:`PhotoUpload`).

    ``sha256`` (lower-case hex of the JPEG bytes) names the photo; the gateway serves it
    at ``GET /api/v1/photos/{sha256}``. ``taken_at``: capture time (UTC); ``size``: bytes.
    """

    model_config = WIRE_CONFIG

    sha256: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")
    taken_at: datetime
    content_type: Literal["image/jpeg"] = "image/jpeg"
    size: int = Field(ge=1, le=MAX_PHOTO_BYTES)


class Evidence(enum.StrEnum):
    """How a parcel proved one RMA unit, strongest first (:data:`EVIDENCE_ORDER`).

    - ``serial``: the unit's serial number was read (GS1 AI 21 in an unambiguous element
      string) and is the serial the RMA line declares;
    - ``tag``: the RFID tag UID the RMA line declares was read;
    - ``gtin``: a product barcode (GS1 AI 01 or a retail EAN / UPC / ITF-14, as GTIN-14)
      equal to the line's GTIN was read: the right product, not a particular unit;
    - ``label``: only the return label (RMA number, or the carrier's tracking number
      bound to the RMA) names the RMA: nothing about what is inside the box.
    """

    SERIAL = "serial"
    TAG = "tag"
    GTIN = "gtin"
    LABEL = "label"


EVIDENCE_ORDER: tuple[Evidence, ...] = (
    Evidence.SERIAL,
    Evidence.TAG,
    Evidence.GTIN,
    Evidence.LABEL,
)
"""Evidence kinds, strongest first."""


class UnitReceipt(BaseModel):
    """One RMA unit a parcel claims, and the evidence for it.

    ``line_no`` / ``sku``: the RMA line; ``unit``: which unit of that line (1 ..
    quantity), counted per station store, so a second parcel with the same label claims
    the next unit, never the same one twice. ``verified`` is True only when the evidence
    is an item identifier that the line declares and that was read in this parcel's
    window: a line that declares a serial or a tag is verified only by *that* identifier
    (its absence leaves the unit unverified); a line with only a GTIN by the GTIN; label
    evidence never verifies. ``identifier`` is the value that verified it (serial, tag
    UID, GTIN-14); None for label evidence.
    """

    model_config = WIRE_CONFIG

    line_no: int = Field(ge=1, le=INT64_MAX)
    sku: str = Field(min_length=1, max_length=64)
    unit: int = Field(ge=1, le=10_000)
    evidence: Evidence
    verified: bool
    identifier: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _evidence_backs_verified(self) -> UnitReceipt:
        if self.evidence is Evidence.LABEL:
            if self.verified or self.identifier is not None:
                raise ValueError("label evidence never verifies a unit and names no identifier")
        elif self.identifier is None:
            raise ValueError(f"{self.evidence} evidence needs the identifier that was read")
        return self


class CodeClass(enum.StrEnum):
    """What a read is (the station's code classifier; the source spec in its docstring).

    ``rma_label``: our return label (RMA number with its check character); ``gs1``: a GS1
    element string (GS1-128, GS1 DataMatrix / QR / DataBar) with GTIN, serial, lot,
    expiry; ``retail``: a plain product code (EAN-13, UPC-A, UPC-E, EAN-8, ITF-14) as
    GTIN-14; ``sscc``: a logistic unit (GS1 AI 00); ``tracking``: a carrier's tracking
    number (UPU S10, UPS 1Z, ...); ``tag``: an RFID tag UID; ``garbled``: a code of a known
    kind whose check character or digit fails, or a GS1 symbol whose data does not parse (a
    misread: never an identifier, never an unknown RMA); ``unknown``: none of these.
    """

    RMA_LABEL = "rma_label"
    GS1 = "gs1"
    RETAIL = "retail"
    SSCC = "sscc"
    TRACKING = "tracking"
    TAG = "tag"
    GARBLED = "garbled"
    UNKNOWN = "unknown"


class CodeRead(BaseModel):
    """One distinct read of a parcel's tracking window, classified.

    ``value``: the normalised text (RMA number, GTIN-14 / element string, SSCC-18,
    tracking number, canonical UID; an ``unknown`` read as received, cut to 128
    characters); ``source``: which reader; ``detail``: what the classifier added (the
    carrier of a tracking number, the symbology, why a GS1 parse was ambiguous).
    """

    model_config = WIRE_CONFIG

    code_class: CodeClass
    value: str = Field(min_length=1, max_length=128)
    source: Literal["scanner", "camera", "rfid"] = "scanner"
    detail: str | None = Field(default=None, max_length=128)


MAX_UNITS_PER_EVENT = 256
MAX_READS_PER_EVENT = 64


class ParcelEvent(_Message):
    """What the station did with one parcel: the facts, not the accounting.

    ``event_id`` is unique per event (UUID4 hex) so the gateway ingests it exactly once.
    ``lane`` is where the parcel went; ``reason`` is the decision's reason code
    (``edge.sorter.model.Reason``; e.g. ``late_gate``: its gate could not fire on time).
    ``marks`` are facts about the way out (``divert_unconfirmed``, ``gate_cancelled``);
    ``policy_version`` / ``explanation``: which disposition policy decided, and why.
    ``photo``: the camera's evidence, when a valid photo was taken (none on an invalid
    frame, field case C9); ``grade`` / ``grade_confidence`` / ``grade_explanation``: what
    the camera grading found (``unknown`` included), or ``no_photo`` when it had no photo.

    Schema version 2 adds what the parcel *proved*: ``units``, the RMA units it claims
    with their evidence (:class:`UnitReceipt`; empty when it named no RMA, or its item
    contradicted every line); ``codes``, every distinct read classified
    (:class:`CodeRead`); ``divert_confirmed``: True when the lane's divert-confirm sensor
    saw the parcel arrive, False when the lane has one and it did not, None when the lane
    has no sensor or the parcel was not diverted. A version 1 event (a station not yet
    upgraded) is accepted and proves nothing: the gateway treats its units as unverified.
    """

    SCHEMA_VERSIONS: ClassVar[tuple[int, ...]] = (1, 2)

    MAX_BYTES: ClassVar[int] = MAX_EVENT_BYTES
    schema_version: SchemaVersion = 2
    kind: Literal["parcel"] = "parcel"
    event_id: str = Field(min_length=8, max_length=64)
    station: StationId
    parcel_id: int = Field(ge=1, le=INT64_MAX)
    inducted_at: datetime
    length_mm: float = Field(ge=0, le=100_000)
    barcode: str | None = Field(default=None, max_length=128)
    rma_number: str | None = Field(default=None, min_length=1, max_length=32)
    lane: Name
    disposition: Name
    reason: Name
    diverted: bool
    marks: tuple[Name, ...] = Field(default=(), max_length=16)
    policy_version: str | None = Field(default=None, max_length=MAX_NAME)
    explanation: str | None = Field(default=None, max_length=1000)
    photo: PhotoRef | None = None
    grade: str | None = Field(default=None, max_length=16)
    grade_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    grade_explanation: str | None = Field(default=None, max_length=500)
    units: tuple[UnitReceipt, ...] = Field(default=(), max_length=MAX_UNITS_PER_EVENT)
    codes: tuple[CodeRead, ...] = Field(default=(), max_length=MAX_READS_PER_EVENT)
    divert_confirmed: bool | None = None

    @model_validator(mode="after")
    def _proof_is_consistent(self) -> ParcelEvent:
        if self.schema_version < 2 and (self.units or self.codes or self.divert_confirmed):
            raise ValueError("units, codes and divert_confirmed need schema_version 2")
        if self.units and self.rma_number is None:
            raise ValueError("units claimed without an rma_number")
        seen = {(u.line_no, u.unit) for u in self.units}
        if len(seen) != len(self.units):
            raise ValueError("a unit (line_no, unit) is claimed twice")
        if self.divert_confirmed is not None and not self.diverted:
            raise ValueError("divert_confirmed is only known for a diverted parcel")
        return self

    @property
    def verified_units(self) -> tuple[UnitReceipt, ...]:
        """The units this parcel proved by an item identifier."""
        return tuple(u for u in self.units if u.verified)


class PhotoUpload(_Message):
    """A parcel photo's JPEG (base64), from the station's outbox; stored once by hash.

    Sent before the :class:`ParcelEvent` that names it in ``photo``.
    """

    kind: Literal["photo"] = "photo"
    station: StationId
    sha256: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")
    taken_at: datetime
    content_type: Literal["image/jpeg"] = "image/jpeg"
    jpeg_b64: str = Field(min_length=4, max_length=(MAX_PHOTO_BYTES + 2) // 3 * 4)


class SyncRequest(_Message):
    """Station asks for every RMA announcement after ``after_revision``."""

    MAX_BYTES: ClassVar[int] = 4096
    kind: Literal["sync_req"] = "sync_req"
    station: StationId
    after_revision: int = Field(ge=0, le=INT64_MAX)
    request_id: Name


class SyncBatch(_Message):
    """One batch of a catch-up reply; ``last`` marks the final batch."""

    kind: Literal["sync_batch"] = "sync_batch"
    request_id: Name
    announcements: tuple[RmaChange, ...] = Field(default=(), max_length=10_000)
    last: bool = True
    head_revision: int = Field(ge=0, le=INT64_MAX)


SITE_PATTERN = r"^[^/+#\s]{1,64}$"
"""A site id: 1 to 64 characters, none of ``/``, ``+``, ``#`` or white space (a valid MQTT
topic segment; the gateway's ``RS_SITE`` follows the same rule)."""


class HeadRevision(_Message):
    """The site's head revision: the highest site revision announced to its stations.

    Published retained on ``rs/v1/{site}/head`` (QoS 1) after each announcement batch the
    broker acknowledged, so a connected station that holds less (``StationStore``'s applied
    revision) knows it missed announcements and asks for catch-up (:class:`SyncRequest`).
    ``site``: the site id (:data:`SITE_PATTERN`); ``revision``: 0 before the first
    announcement, at most :data:`INT64_MAX`.
    """

    kind: Literal["head"] = "head"
    site: str = Field(pattern=SITE_PATTERN)
    revision: int = Field(ge=0, le=INT64_MAX)


class CommandName(enum.StrEnum):
    """Commands a station understands.

    ``resume``: lift a jam or E-stop stop (refused while the E-stop is engaged); ``pause`` /
    ``run``: the operator stops / restarts the belt; ``reload_policy``: apply the cached
    disposition policy again; ``resync``: catch up RMAs from the gateway.
    """

    PING = "ping"
    RESYNC = "resync"
    GATE_TEST = "gate_test"
    PUBLISH_STATUS = "publish_status"
    RESUME = "resume"
    PAUSE = "pause"
    RUN = "run"
    RELOAD_POLICY = "reload_policy"


class Command(_Message):
    """A command to one station, on its command topic; QoS 1 and never retained.

    A station ignores (dead-letters) a command it finds retained, and one older than
    ``expires_in_s`` seconds after ``issued_at`` (a command that waited in a queue while the
    station was offline must not run late). ``args`` are command specific, e.g.
    ``{"lane": "restock"}`` for ``gate_test``.
    """

    kind: Literal["command"] = "command"
    request_id: str = Field(min_length=8, max_length=64)
    command: CommandName
    issued_at: datetime
    expires_in_s: float = Field(default=60.0, gt=0, le=86_400)
    args: dict[Name, Scalar] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)


class CommandState(enum.StrEnum):
    """Life of a command: ``accepted`` first, then exactly one of ``done`` / ``failed``."""

    ACCEPTED = "accepted"
    DONE = "done"
    FAILED = "failed"


class CommandReply(_Message):
    """A station's reply to a :class:`Command`, matched by ``request_id``."""

    MAX_BYTES: ClassVar[int] = MAX_REPLY_BYTES
    kind: Literal["command_reply"] = "command_reply"
    request_id: str = Field(min_length=8, max_length=64)
    station: StationId
    command: CommandName
    state: CommandState
    detail: Text = ""
    result: dict[Name, Scalar | None] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)


class Telemetry(_Message):
    """Periodic station counters and gauges (not retained; QoS 0 is enough)."""

    MAX_BYTES: ClassVar[int] = 16 * 1024
    kind: Literal["telemetry"] = "telemetry"
    station: StationId
    at: datetime
    metrics: dict[Name, Finite] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)


Message = Annotated[
    RmaAnnouncement
    | RmaCancellation
    | StationStatus
    | ParcelEvent
    | PhotoUpload
    | SyncRequest
    | SyncBatch
    | Command
    | CommandReply
    | Telemetry,
    Field(discriminator="kind"),
]

M = TypeVar("M", bound=_Message)

_RMA_CHANGE: TypeAdapter[RmaAnnouncement | RmaCancellation] = TypeAdapter(RmaChange)


def encode(message: _Message) -> bytes:
    """Serialise a message to UTF-8 JSON bytes."""
    return message.model_dump_json().encode("utf-8")


def decode(payload: bytes | str, model: type[M]) -> M:
    """Parse ``payload`` as a message of type ``model``.

    Raises:
        ProtocolError: on a payload larger than ``model.MAX_BYTES``, non-UTF-8 bytes,
            malformed or truncated JSON, a wrong ``kind``, an unsupported
            ``schema_version``, any invalid field, or text holding NUL (U+0000); the
            message says which.
    """
    size = len(payload.encode("utf-8") if isinstance(payload, str) else payload)
    if size > model.MAX_BYTES:
        raise ProtocolError(f"invalid {model.__name__}: {size} bytes, over {model.MAX_BYTES}")
    try:
        message = model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
        raise ProtocolError(f"invalid {model.__name__}: {where}: {first['msg']}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"invalid {model.__name__}: {exc}") from exc
    _refuse_nul(payload, model.__name__)
    return message


def _refuse_nul(payload: bytes | str, name: str) -> None:
    """Raise :class:`ProtocolError` naming the first field whose text holds NUL (U+0000).

    No code, name or note of ours holds one, and PostgreSQL cannot store it: a message
    carrying one is refused here, as one bad message, instead of failing a database
    write (and with it the set-based ingest of the batch it came in).
    """
    if not may_hold_nul(payload):
        return
    try:
        places = nul_places(json.loads(payload), [])
    except (ValueError, RecursionError):  # what the model parsed, json refuses: no NUL walk
        return
    if places:
        where = ".".join(str(p) for p in places[0]) or "payload"
        raise ProtocolError(f"invalid {name}: {where}: NUL character (U+0000) not allowed")


def decode_rma_change(payload: bytes | str) -> RmaAnnouncement | RmaCancellation:
    """Parse a payload of the RMA topic: an announcement or a cancellation (by ``kind``).

    Raises:
        ProtocolError: as :func:`decode` does.
    """
    try:
        change: RmaAnnouncement | RmaCancellation = _RMA_CHANGE.validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "payload"
        raise ProtocolError(f"invalid RmaChange: {where}: {first['msg']}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"invalid RmaChange: {exc}") from exc
    _refuse_nul(payload, "RmaChange")
    return change
