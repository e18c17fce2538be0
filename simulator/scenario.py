"""Scenario files (YAML): the belt, the station, the parcels, faults and what must come out.

Schema (every key checked; unknown keys are errors; all but ``name``, ``station`` and
``parcels`` optional; files written for the first schema remain valid)::

    name: peak-rush
    site: site1
    station:                 # station config sections, as in the station TOML
      belt: {speed_mm_s: 1000, scan_pos_mm: 400, length_mm: 3000}   # belt geometry
      lanes:                 # lane positions along the belt (gate downstream of the eye)
        - {name: restock, disposition: restock, pos_mm: 1200, gate_pin: 17}
    time:
      mode: accelerated      # realtime (default) | accelerated
      rate: 4                # accelerated: virtual ms per real ms (station clock,
                             # gate scheduler and SimPy belt all run this much faster)
    parcels:
      known: 5               # labels of RMAs the simulator creates through the gateway API
      unknown: 2             # labels of RMAs nobody issued
      no_read: 1             # parcels without a readable label
      length_mm: [200, 400]  # parcel sizes along the belt: uniform range, mm
      gap_mm: [400, 800]     # free space between parcels, mm (uniform range) ...
      rate_per_h: null       # ... or an arrival rate: one parcel every 3600/rate s
      skus: [SKU-001, SKU-002]  # SKUs of the RMA lines (round robin)
      start_ms: 500          # first induct, ms after the belt starts
      seed: 1
    reads:                   # read behaviour, as fractions of the known parcels
      no_read_rate: 0.0      # the scanner misses the label: quarantine (no_read)
      duplicate_rate: 0.0    # the label is reported twice: still one parcel, sorted
      garbled_rate: 0.0      # a character of the scan is wrong: quarantine (unknown_rma)
      rfid_rate: 0.0         # the item carries an RFID tag its RMA line declares: sorted
      rfid_mismatch_rate: 0.0  # the tag is another RMA's: quarantine (wrong item / conflict)
                             # every RMA line declares its product's GTIN
                             # (:func:`product_gtin_for`); without ``photos`` a parcel
                             # that reads ``ok`` or ``duplicate`` shows that retail EAN-13
                             # beside its label (with ``photos`` the label the camera reads
                             # carries it): the GTIN verifies its unit, so the shipped
                             # (strict) verification table sorts it on condition
    photos:                  # what the camera's photos of the known parcels show (needs
                             # station.belt.camera_pos_mm and a lane for each grade);
                             # fractions, the rest grade A: restock
      grade_b_rate: 0.2      # minor damage: refurbish
      grade_c_rate: 0.2      # major damage: recycle
      unreadable_rate: 0.1   # a photo the grader abstains on: quarantine (unknown_grade)
    faults:                  # the timeline; at_s / duration_s in (virtual) belt seconds
      - {kind: broker_outage, at_s: 2, duration_s: 3}
      - {kind: gateway_outage, at_s: 6, duration_s: 3}
      - {kind: station_kill, at_s: 4, duration_s: 1}   # SIGKILL, restart after duration
      - {kind: gate_power_cut, at_s: 5, duration_s: 1}  # gates do not move
      - {kind: modbus_outage, at_s: 8, duration_s: 2}   # PLC of modbus lanes unreachable
      - {kind: gate_stuck, at_s: 5, duration_s: 1, lane: restock}
      - {kind: lane_full, at_s: 5, duration_s: 2, lane: restock}
      - {kind: jam, at_s: 5, duration_s: 4}  # the next parcel sticks at the induct eye;
                             # the station stops the belt after belt.jam_ms (needs a
                             # belt_run output); taken off and resumed after duration_s
                             # (resume: operator: by a lead on the status page instead)
      - {kind: camera_failure, at_s: 1}      # the camera stops delivering frames
      - {kind: late_rma, at_s: 3, count: 2}  # 2 RMAs are announced only at 3 s
      - {kind: clock_skew, at_s: 2, skew_s: 3600}  # the station's UTC clock jumps
    returns:                 # explicit returns (RMAs, what each box holds and shows), after
                             # the parcels above, round robin over the cases
      cases:
        - name: partial      # a two-line RMA whose box holds only line 1
          count: 3
          lines:             # the RMA's lines; the catalogue gets each SKU's weight
            - {sku: SHOE, weight_g: 800}           # declares its EAN-13 (gtin: true)
            - {sku: BOOT, weight_g: 1200}
            - {sku: CAM, weight_g: 600, serial: true}  # GTIN + serial (GS1 AI 21)
          carries: [1]       # 1-based lines in the box (default: all)
          label: true        # the RMA label reads
          show: product      # product: each carried line's code (EAN-13 or, for a serial,
                             # a GS1 element string); aim: EAN-13 with its ]E0 prefix;
                             # wrong_unit: a serialised line shows another unit's serial;
                             # none: nothing but the label
          packaging_g: 150   # the box's own weight on the checkweigher ([scale] section)
          expect: {lane: quarantine, reason: weight_mismatch}
      pause_after: 10        # a gap of pause_mm after that many return parcels (a fault
      pause_mm: 11000        # such as station_kill can fall into it: exact counts)
    expect:                  # what the run must show; any miss fails the run (exit 1)
      lanes: {restock: 5, quarantine: 3}
      mis_sorts: 0
      quarantine_reasons: {no_read: 1, unknown_rma: 2}
      min_parcels_per_hour: 1000
      verified_units: 14     # RMA units the station reported verified

Whatever ``expect`` says, a run also fails when any event the station committed did not
reach the gateway exactly once, when a parcel was restocked that should not have been,
when a quarantined parcel has no reason, or when the station reported a unit verified that
the box does not hold (a line it does not carry, another RMA's, or another unit of a
serialised product): the report counts ``verified_units`` and ``wrongly_verified_units``
against the truth of each parcel. A parcel whose way down the belt overlaps a
physical fault (power cut, stuck gate, full lane, jam, station down) may end in quarantine instead
of its lane (fail safe); anything else is a mis-sort.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from stdnum import ean


class ScenarioError(ValueError):
    """A scenario file that cannot be read or is invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParcelMix(_Strict):
    """How many parcels of each kind, and their sizes and spacing."""

    known: int = Field(default=0, ge=0, le=100_000)
    unknown: int = Field(default=0, ge=0, le=100_000)
    no_read: int = Field(default=0, ge=0, le=100_000)
    length_mm: tuple[float, float] = (200.0, 400.0)
    gap_mm: tuple[float, float] = (400.0, 800.0)
    rate_per_h: float | None = Field(default=None, gt=0, le=100_000)
    skus: list[str] = Field(default_factory=list, max_length=1000)
    seed: int = 1
    start_ms: float = Field(default=500.0, ge=0)

    @model_validator(mode="after")
    def _ranges(self) -> ParcelMix:
        for name in ("length_mm", "gap_mm"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be [low, high] with 0 < low <= high")
        return self

    @property
    def total(self) -> int:
        """Number of parcels."""
        return self.known + self.unknown + self.no_read


class ReadBehaviour(_Strict):
    """How labels and tags of the known parcels read (fractions, 0..1, seeded)."""

    no_read_rate: float = Field(default=0.0, ge=0, le=1)
    duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    garbled_rate: float = Field(default=0.0, ge=0, le=1)
    rfid_rate: float = Field(default=0.0, ge=0, le=1)
    rfid_mismatch_rate: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _sum(self) -> ReadBehaviour:
        exclusive = self.no_read_rate + self.garbled_rate + self.rfid_rate + self.rfid_mismatch_rate
        if exclusive > 1.0 + 1e-9:
            raise ValueError(
                "no_read_rate + garbled_rate + rfid_rate + rfid_mismatch_rate must be <= 1"
            )
        return self


PhotoGrade = Literal["A", "B", "C", "unreadable"]
GRADE_DISPOSITION: dict[str, str] = {"A": "restock", "B": "refurbish", "C": "recycle"}
"""The shipped policy's disposition of each grade a photo shows."""


class PhotoMix(_Strict):
    """What the camera's photos of the known parcels show (fractions, 0..1, seeded).

    The rest are grade A (intact). Every parcel's photo carries its label (the RMA
    number as Code 128), which the camera reads too.
    """

    grade_b_rate: float = Field(default=0.0, ge=0, le=1)
    grade_c_rate: float = Field(default=0.0, ge=0, le=1)
    unreadable_rate: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _sum(self) -> PhotoMix:
        if self.grade_b_rate + self.grade_c_rate + self.unreadable_rate > 1.0 + 1e-9:
            raise ValueError("grade_b_rate + grade_c_rate + unreadable_rate must be <= 1")
        return self


FaultKind = Literal[
    "broker_outage",
    "gateway_outage",
    "station_kill",
    "gate_power_cut",
    "gate_stuck",
    "modbus_outage",
    "lane_full",
    "jam",
    "camera_failure",
    "late_rma",
    "clock_skew",
]
NEEDS_DURATION = {
    "broker_outage",
    "gateway_outage",
    "gate_power_cut",
    "modbus_outage",
    "gate_stuck",
    "lane_full",
    "jam",
}
NEEDS_LANE = {"gate_stuck", "lane_full"}
PHYSICAL = {"gate_power_cut", "gate_stuck", "modbus_outage", "station_kill", "jam"}


class Fault(_Strict):
    """One fault on the timeline."""

    kind: FaultKind
    at_s: float = Field(ge=0, le=86_400)
    duration_s: float = Field(default=0.0, ge=0, le=86_400)
    lane: str | None = None
    count: int = Field(default=0, ge=0, le=100_000)
    skew_s: float = Field(default=0.0, ge=-86_400 * 365, le=86_400 * 365)
    resume: Literal["harness", "operator"] = "harness"
    """Jam only: ``operator``: nobody resumes for the run (a lead presses Resume on the
    status page); the belt model restarts when the station's belt-run output does."""

    @model_validator(mode="after")
    def _fields(self) -> Fault:
        if self.kind in NEEDS_DURATION and self.duration_s <= 0:
            raise ValueError(f"{self.kind} needs duration_s > 0")
        if (self.kind in NEEDS_LANE) != (self.lane is not None):
            raise ValueError(
                f"{self.kind} {'needs' if self.kind in NEEDS_LANE else 'takes no'} lane"
            )
        if self.kind == "late_rma" and self.count <= 0:
            raise ValueError("late_rma needs count > 0")
        if self.resume == "operator" and self.kind != "jam":
            raise ValueError("resume: operator is for a jam only")
        if self.kind == "clock_skew" and self.skew_s == 0:
            raise ValueError("clock_skew needs skew_s != 0")
        return self

    @property
    def end_s(self) -> float:
        """When the fault is over (belt seconds)."""
        return self.at_s + self.duration_s


class TimeMode(_Strict):
    """Real time, or accelerated time at ``rate`` virtual ms per real ms."""

    mode: Literal["realtime", "accelerated"] = "realtime"
    rate: float = Field(default=1.0, ge=1.0, le=50.0)

    @model_validator(mode="after")
    def _rate(self) -> TimeMode:
        if self.mode == "realtime" and self.rate != 1.0:
            raise ValueError("realtime runs at rate 1; use mode: accelerated")
        if self.mode == "accelerated" and self.rate <= 1.0:
            raise ValueError("accelerated needs rate > 1")
        return self


class Expectations(_Strict):
    """What the run must show; any miss makes the run fail."""

    lanes: dict[str, int] | None = None
    mis_sorts: int = Field(default=0, ge=0)
    quarantine_reasons: dict[str, int] | None = None
    min_parcels_per_hour: float | None = Field(default=None, gt=0)
    verified_units: int | None = Field(default=None, ge=0)


class ReturnLine(_Strict):
    """One line of a return case's RMA: a SKU, its catalogue weight, its identifiers."""

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(default=1, ge=1, le=100)
    weight_g: int | None = Field(default=None, ge=1, le=1_000_000)
    gtin: bool = True
    serial: bool = False

    @model_validator(mode="after")
    def _serial_needs_gtin(self) -> ReturnLine:
        if self.serial and not self.gtin:
            raise ValueError("a serialised line needs its GTIN (the GS1 string carries both)")
        return self


class ReturnExpect(_Strict):
    """The lane and reason a return case's parcels must get."""

    lane: str
    reason: str


class ReturnCase(_Strict):
    """``count`` boxes of one kind: the RMA, what each box holds and shows, the outcome."""

    name: str = Field(min_length=1, max_length=64)
    count: int = Field(default=1, ge=1, le=1000)
    lines: list[ReturnLine] = Field(min_length=1, max_length=10)
    carries: list[int] | None = None
    label: bool = True
    show: Literal["product", "aim", "wrong_unit", "none"] = "product"
    packaging_g: float = Field(default=150.0, ge=0, le=100_000)
    expect: ReturnExpect

    @model_validator(mode="after")
    def _carries(self) -> ReturnCase:
        if self.carries is not None and not set(self.carries) <= set(range(1, len(self.lines) + 1)):
            raise ValueError("carries names a line the RMA does not have")
        if self.show == "wrong_unit" and not any(ln.serial for ln in self.lines):
            raise ValueError("show: wrong_unit needs a serialised line")
        return self

    @property
    def carried(self) -> tuple[int, ...]:
        """The 1-based lines in the box."""
        if self.carries is None:
            return tuple(range(1, len(self.lines) + 1))
        return tuple(sorted(set(self.carries)))


class ReturnsPlan(_Strict):
    """Explicit return cases (see the module doc's ``returns``)."""

    cases: list[ReturnCase] = Field(min_length=1, max_length=100)
    pause_after: int | None = Field(default=None, ge=1)
    pause_mm: float = Field(default=0.0, ge=0, le=1_000_000)

    @property
    def total(self) -> int:
        """Number of return parcels."""
        return sum(c.count for c in self.cases)


class Scenario(_Strict):
    """A whole scenario."""

    name: str
    site: str = "site1"
    station: dict[str, Any]
    time: TimeMode = TimeMode()
    parcels: ParcelMix
    reads: ReadBehaviour = ReadBehaviour()
    photos: PhotoMix | None = None
    faults: list[Fault] = Field(default_factory=list, max_length=1000)
    returns: ReturnsPlan | None = None
    expect: Expectations = Expectations()

    @model_validator(mode="after")
    def _lanes(self) -> Scenario:
        lanes = self.station.get("lanes", [])
        names = {lane.get("name") for lane in lanes if isinstance(lane, dict)}
        for i, f in enumerate(self.faults):
            if f.lane is not None and f.lane not in names:
                raise ValueError(f"faults.{i}.lane: no lane {f.lane!r} in station.lanes")
        if self.photos is not None:
            belt = self.station.get("belt", {})
            if not isinstance(belt, dict) or belt.get("camera_pos_mm") is None:
                raise ValueError("photos: the core sorts on them only with belt.camera_pos_mm")
            have = {lane.get("disposition") for lane in lanes if isinstance(lane, dict)}
            rates = {"B": self.photos.grade_b_rate, "C": self.photos.grade_c_rate, "A": 1.0}
            for grade, rate in rates.items():
                if rate > 0 and GRADE_DISPOSITION[grade] not in have:
                    raise ValueError(
                        f"photos: grade {grade} parcels need a lane of disposition "
                        f"{GRADE_DISPOSITION[grade]!r}"
                    )
        late = sum(f.count for f in self.faults if f.kind == "late_rma")
        if late > self.parcels.known:
            raise ValueError(f"late_rma counts ({late}) exceed parcels.known")
        return self

    @property
    def rate(self) -> float:
        """Virtual ms per real ms."""
        return self.time.rate

    @property
    def total(self) -> int:
        """Number of parcels: the mix and the explicit returns."""
        return self.parcels.total + (self.returns.total if self.returns is not None else 0)


Label = Literal["known", "unknown", "no_read"]
Read = Literal["ok", "no_read", "duplicate", "garbled", "rfid", "rfid_mismatch"]


@dataclass(frozen=True)
class SimParcel:
    """A parcel the belt model inducts.

    Attributes:
        index: 1-based order of induct.
        label: what kind of label it carries.
        barcode: the label's code (None for an unreadable label).
        length_mm: its length along the belt, mm.
        induct_at_ms: when its leading edge reaches the photo-eye, ms from belt start.
        expected_lane: the lane it must end in.
        tag_uid: UID (hex) of an RFID tag on the parcel, shown to the emulated reader, or None.
        read: how its label / tag reads (``ReadBehaviour``).
        scans: what the scanner reports for it, in order (empty: a no-read).
        expected_reason: the reason code the station should give.
        rma: the RMA whose goods the box holds (None: none issued).
        carries: the 1-based RMA lines whose unit is in the box (the truth a verified unit
            is checked against; a serialised line's unit only when it is that unit).
        weight_g: what it weighs on the checkweigher, g (None: not weighed).
        case: the return case it comes from (``returns``), else None.
        photo: what the camera's photo of it shows (grade A, B, C or unreadable).
        gtin: the GTIN-14 its RMA line declares and its label shows (GS1-128), or None.
    """

    index: int
    label: Label
    barcode: str | None
    length_mm: float
    induct_at_ms: float
    expected_lane: str
    tag_uid: str | None = None
    read: Read = "ok"
    scans: tuple[str, ...] | None = None
    expected_reason: str | None = None
    rma: str | None = None
    carries: tuple[int, ...] = ()
    weight_g: float | None = None
    case: str | None = None
    photo: PhotoGrade = "A"
    gtin: str | None = None

    @property
    def scan_codes(self) -> tuple[str, ...]:
        """The codes the scanner reports (default: the barcode once)."""
        if self.scans is not None:
            return self.scans
        return () if self.barcode is None else (self.barcode,)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file.

    Raises:
        ScenarioError: when the file is missing, not YAML, or invalid (naming the key).
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ScenarioError(f"{path}: {problems}") from exc


def gtin_for(index: int) -> str:
    """A GTIN-14 for known parcel ``index``'s product (GS1 check digit; prefix 0950600).

    The GS1 example company prefix of the GS1 General Specifications, one item reference
    per index (mod 100 000).
    """
    body = f"0950600{index % 100_000:05d}0"[:13]
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def tag_uid_for(run_tag: str, index: int) -> str:
    """A 7-byte ISO 14443 UID (hex) for a known parcel's tag, unique within a run."""
    seed = int(run_tag, 16) if all(c in "0123456789ABCDEF" for c in run_tag) else 0
    raw = ((seed * 100_000 + index) % (1 << 48)).to_bytes(6, "big")
    return "04" + bytes(0x87 if b == 0x88 else b for b in raw).hex().upper()


def product_gtin_for(index: int) -> str:
    """The EAN-13 of known RMA ``index``'s product (1-based), check digit computed.

    Prefix ``20``: a GS1 restricted-circulation number (GS1 General Specifications
    1.4.5), never a real product's. The RMA line declares it; the parcel shows it.
    """
    body = f"20{index % 10**10:010d}"
    return body + ean.calc_check_digit(body)


def _exact_mix(rates: Sequence[tuple[str, float]], n: int, rest: str) -> list[str]:
    """``round(rate * n)`` of each name in turn (at most ``n`` in all), then ``rest``."""
    plan: list[str] = []
    for name, rate in rates:
        plan += [name] * round(rate * n)
    plan = plan[:n]
    return plan + [rest] * (n - len(plan))


def plan_reads(reads: ReadBehaviour, known: int, seed: int) -> list[Read]:
    """How each known parcel (in RMA order) reads: seeded, exact counts (rounded)."""
    rng = random.Random(seed * 7919 + 1)  # seeded, reproducible simulation; never a secret  # nosec B311
    rates = (
        ("no_read", reads.no_read_rate),
        ("garbled", reads.garbled_rate),
        ("rfid", reads.rfid_rate),
        ("rfid_mismatch", reads.rfid_mismatch_rate),
    )
    plan: list[Read] = _exact_mix(rates, known, "ok")  # type: ignore[assignment]
    rng.shuffle(plan)
    ok = [i for i, r in enumerate(plan) if r == "ok"]
    for i in rng.sample(ok, min(len(ok), round(reads.duplicate_rate * known))):
        plan[i] = "duplicate"
    return plan


def plan_photos(photos: PhotoMix | None, known: int, seed: int) -> list[PhotoGrade]:
    """What each known parcel's photo shows (in RMA order): seeded, exact counts (rounded).

    Without ``photos``: grade A for every parcel.
    """
    rates = (
        ()
        if photos is None
        else (
            ("B", photos.grade_b_rate),
            ("C", photos.grade_c_rate),
            ("unreadable", photos.unreadable_rate),
        )
    )
    plan: list[PhotoGrade] = _exact_mix(rates, known, "A")  # type: ignore[assignment]
    random.Random(seed * 104729 + 3).shuffle(plan)  # seeded simulation, never a secret  # nosec B311
    return plan


def _garble(code: str) -> str:
    return code[:-1] + ("Z" if code[-1] != "Z" else "Y")


def plan_parcels(
    mix: ParcelMix,
    speed_mm_s: float,
    known_codes: list[str],
    restock_lane: str,
    run_tag: str,
    reads: ReadBehaviour | None = None,
    photos: PhotoMix | None = None,
    grade_lanes: dict[str, str] | None = None,
) -> list[SimParcel]:
    """Lay out the parcels on the belt in a seeded random order.

    ``known_codes`` are the RMA numbers issued for this run (one per known parcel);
    unknown labels are numbers that were never issued (tagged with ``run_tag``). With
    ``reads``, known parcels read as :func:`plan_reads` says; the RMA of 1-based index
    ``n`` read ``rfid`` or ``rfid_mismatch`` declares tag :func:`tag_uid_for` ``(run_tag, n)``;
    an ``rfid`` parcel carries that tag, an ``rfid_mismatch`` parcel another one. Without
    ``photos``, an ``ok`` or ``duplicate`` parcel of RMA ``n`` also shows its product's
    EAN-13 (:func:`product_gtin_for` ``(n)``) to the scanner after the label. With
    ``photos``, known parcels' photos show what :func:`plan_photos` says, their RMA lines
    declare the product's GTIN (:func:`gtin_for`, shown on the label the camera reads), and
    one that reads and matches ends in ``grade_lanes[grade]`` (grade A, B, C: the lane of the
    grade's disposition, :data:`GRADE_DISPOSITION`), or quarantine ``unknown_grade`` for
    an unreadable photo (or a grade without a lane).
    """
    if len(known_codes) < mix.known:
        raise ValueError(f"{mix.known} known parcels need as many RMAs, got {len(known_codes)}")
    rng = random.Random(mix.seed)  # seeded, reproducible simulation; never a secret  # nosec B311
    labels: list[Label] = ["known" for _ in range(mix.known)]
    labels += ["unknown" for _ in range(mix.unknown)]
    labels += ["no_read" for _ in range(mix.no_read)]
    rng.shuffle(labels)
    read_plan = plan_reads(reads or ReadBehaviour(), mix.known, mix.seed)
    photo_plan = plan_photos(photos, mix.known, mix.seed)
    known = iter(enumerate(known_codes[: mix.known]))
    parcels: list[SimParcel] = []
    t_ms = mix.start_ms
    for i, label in enumerate(labels, start=1):
        length = rng.uniform(*mix.length_mm)
        tag: str | None = None
        read: Read = "ok"
        scans: tuple[str, ...] | None = None
        photo: PhotoGrade = "A"
        gtin: str | None = None
        if label == "known":
            k, code_ = next(known)
            code: str | None = code_
            read = read_plan[k]
            lane, reason = restock_lane, "matched"
            product: tuple[str, ...] = (product_gtin_for(k + 1),)
            if photos is not None:  # the GTIN is on the photo's label: the camera reads it
                photo, gtin = photo_plan[k], gtin_for(k + 1)
                graded = (grade_lanes or {}).get(photo)
                lane, reason = (graded, "matched") if graded else ("quarantine", "unknown_grade")
                product = ()
            if read == "ok":
                scans = (code_, *product) if product else None
            elif read == "no_read":
                scans, lane, reason = (), "quarantine", "no_read"
            elif read == "duplicate":
                scans = (code_, code_, *product)
            elif read == "garbled":
                scans, lane, reason = (_garble(code_),), "quarantine", "unknown_rma"
            elif read == "rfid":
                tag = tag_uid_for(run_tag, k + 1)
            elif read == "rfid_mismatch":
                tag = tag_uid_for(run_tag, 50_000 + k + 1)  # not the tag its RMA declares
                lane, reason = "quarantine", "wrong_item"
        elif label == "unknown":
            code, lane, reason = f"RMA-X{run_tag}{i:05d}", "quarantine", "unknown_rma"
        else:
            code, lane, reason = None, "quarantine", "no_read"
        holds = code if label == "known" and read != "rfid_mismatch" else None
        parcels.append(
            SimParcel(
                i,
                label,
                code,
                length,
                t_ms,
                lane,
                tag,
                read,
                scans,
                reason,
                rma=code if label == "known" else None,
                carries=(1,) if holds else (),
                photo=photo,
                gtin=gtin,
            )
        )
        if mix.rate_per_h is not None:
            t_ms += 3_600_000.0 / mix.rate_per_h
        else:
            gap = rng.uniform(*mix.gap_mm)
            t_ms += (length + gap) * 1000.0 / speed_mm_s
    return parcels


@dataclass(frozen=True)
class PlannedReturn:
    """One return parcel's RMA as the harness creates it.

    Attributes:
        number: the RMA number (its label).
        case: the return case.
        lines: the RMA lines (``sku``, ``quantity``, ``gtin``, ``serial``) for the API.
    """

    number: str
    case: ReturnCase
    lines: tuple[dict[str, Any], ...]


def return_gtin(case_no: int, line_no: int) -> str:
    """The EAN-13 of line ``line_no`` of return case ``case_no`` (both 1-based)."""
    return product_gtin_for(90_000 + 100 * case_no + line_no)


def plan_returns(
    plan: ReturnsPlan,
    mix: ParcelMix,
    speed_mm_s: float,
    run_tag: str,
    first_index: int,
    start_ms: float,
) -> tuple[list[SimParcel], list[PlannedReturn]]:
    """Lay out the return parcels from ``start_ms``, round robin over the cases.

    Each parcel has its own RMA ``RMA-R<run_tag><n>``; lines declare their product's
    EAN-13 (:func:`return_gtin`) and, when serialised, the serial ``S<n>L<line>``. A box
    shows its label (``label``), then per carried line its code (``show``), and weighs
    its carried units' catalogue weights plus ``packaging_g``. Lengths and gaps come from
    ``mix`` (seeded); after ``pause_after`` parcels the belt runs ``pause_mm`` empty.
    """
    rng = random.Random(mix.seed * 31 + 7)  # seeded simulation, never a secret  # nosec B311
    order: list[tuple[int, ReturnCase]] = []
    left = {k: c.count for k, c in enumerate(plan.cases, start=1)}
    while any(left.values()):
        for k, case in enumerate(plan.cases, start=1):
            if left[k]:
                left[k] -= 1
                order.append((k, case))
    parcels: list[SimParcel] = []
    planned: list[PlannedReturn] = []
    t_ms = start_ms
    for n, (k, case) in enumerate(order, start=1):
        number = f"RMA-R{run_tag}{n:04d}"
        lines = []
        scans: list[str] = [number] if case.label else []
        weight = case.packaging_g
        for no, ln in enumerate(case.lines, start=1):
            gtin = return_gtin(k, no) if ln.gtin else None
            serial = f"S{n}L{no}" if ln.serial else None
            lines.append({"sku": ln.sku, "quantity": ln.quantity, "gtin": gtin, "serial": serial})
            if no not in case.carried:
                continue
            weight += ln.weight_g or 0
            if gtin is None or case.show == "none":
                continue
            if serial is not None:
                shown = serial + "X" if case.show == "wrong_unit" else serial
                scans.append(f"]C101{gtin.zfill(14)}21{shown}")
            else:
                scans.append(("]E0" if case.show == "aim" else "") + gtin)
        carries = tuple(
            no
            for no in case.carried
            if not (case.show == "wrong_unit" and case.lines[no - 1].serial)
        )
        length = rng.uniform(*mix.length_mm)
        parcels.append(
            SimParcel(
                first_index + n - 1,
                "known",
                number,
                length,
                t_ms,
                case.expect.lane,
                scans=tuple(scans),
                expected_reason=case.expect.reason,
                rma=number,
                carries=carries,
                weight_g=weight,
                case=case.name,
            )
        )
        planned.append(PlannedReturn(number, case, tuple(lines)))
        t_ms += (length + rng.uniform(*mix.gap_mm)) * 1000.0 / speed_mm_s
        if plan.pause_after is not None and n == plan.pause_after:
            t_ms += plan.pause_mm * 1000.0 / speed_mm_s
    return parcels, planned
