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
    faults:                  # the timeline; at_s / duration_s in (virtual) belt seconds
      - {kind: broker_outage, at_s: 2, duration_s: 3}
      - {kind: gateway_outage, at_s: 6, duration_s: 3}
      - {kind: station_kill, at_s: 4, duration_s: 1}   # SIGKILL, restart after duration
      - {kind: gate_power_cut, at_s: 5, duration_s: 1}  # gates do not move
      - {kind: gate_stuck, at_s: 5, duration_s: 1, lane: restock}
      - {kind: lane_full, at_s: 5, duration_s: 2, lane: restock}
      - {kind: jam, at_s: 5, duration_s: 4}  # the next parcel sticks at the induct eye;
                             # the station stops the belt after belt.jam_ms (needs a
                             # belt_run output); taken off and resumed after duration_s
                             # (resume: operator: by a lead on the status page instead)
      - {kind: camera_failure, at_s: 1}      # the camera stops delivering frames
      - {kind: late_rma, at_s: 3, count: 2}  # 2 RMAs are announced only at 3 s
      - {kind: clock_skew, at_s: 2, skew_s: 3600}  # the station's UTC clock jumps
    expect:                  # what the run must show; any miss fails the run (exit 1)
      lanes: {restock: 5, quarantine: 3}
      mis_sorts: 0
      quarantine_reasons: {no_read: 1, unknown_rma: 2}
      min_parcels_per_hour: 1000

Whatever ``expect`` says, a run also fails when any event the station committed did not
reach the gateway exactly once, when a parcel was restocked that should not have been, or
when a quarantined parcel has no reason. A parcel whose way down the belt overlaps a
physical fault (power cut, stuck gate, full lane, jam, station down) may end in quarantine instead
of its lane (fail safe); anything else is a mis-sort.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


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


FaultKind = Literal[
    "broker_outage",
    "gateway_outage",
    "station_kill",
    "gate_power_cut",
    "gate_stuck",
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
    "gate_stuck",
    "lane_full",
    "jam",
}
NEEDS_LANE = {"gate_stuck", "lane_full"}
PHYSICAL = {"gate_power_cut", "gate_stuck", "station_kill", "jam"}


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


class Scenario(_Strict):
    """A whole scenario."""

    name: str
    site: str = "site1"
    station: dict[str, Any]
    time: TimeMode = TimeMode()
    parcels: ParcelMix
    reads: ReadBehaviour = ReadBehaviour()
    faults: list[Fault] = Field(default_factory=list, max_length=1000)
    expect: Expectations = Expectations()

    @model_validator(mode="after")
    def _lanes(self) -> Scenario:
        lanes = self.station.get("lanes", [])
        names = {lane.get("name") for lane in lanes if isinstance(lane, dict)}
        for i, f in enumerate(self.faults):
            if f.lane is not None and f.lane not in names:
                raise ValueError(f"faults.{i}.lane: no lane {f.lane!r} in station.lanes")
        late = sum(f.count for f in self.faults if f.kind == "late_rma")
        if late > self.parcels.known:
            raise ValueError(f"late_rma counts ({late}) exceed parcels.known")
        return self

    @property
    def rate(self) -> float:
        """Virtual ms per real ms."""
        return self.time.rate


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


def tag_uid_for(run_tag: str, index: int) -> str:
    """A 7-byte ISO 14443 UID (hex) for a known parcel's tag, unique within a run."""
    seed = int(run_tag, 16) if all(c in "0123456789ABCDEF" for c in run_tag) else 0
    raw = ((seed * 100_000 + index) % (1 << 48)).to_bytes(6, "big")
    return "04" + bytes(0x87 if b == 0x88 else b for b in raw).hex().upper()


def plan_reads(reads: ReadBehaviour, known: int, seed: int) -> list[Read]:
    """How each known parcel (in RMA order) reads: seeded, exact counts (rounded)."""
    rng = random.Random(seed * 7919 + 1)
    plan: list[Read] = []
    for name, rate in (
        ("no_read", reads.no_read_rate),
        ("garbled", reads.garbled_rate),
        ("rfid", reads.rfid_rate),
        ("rfid_mismatch", reads.rfid_mismatch_rate),
    ):
        plan += [name] * round(rate * known)  # type: ignore[list-item]
    plan = plan[:known]
    plan += ["ok"] * (known - len(plan))
    rng.shuffle(plan)
    ok = [i for i, r in enumerate(plan) if r == "ok"]
    for i in rng.sample(ok, min(len(ok), round(reads.duplicate_rate * known))):
        plan[i] = "duplicate"
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
) -> list[SimParcel]:
    """Lay out the parcels on the belt in a seeded random order.

    ``known_codes`` are the RMA numbers issued for this run (one per known parcel);
    unknown labels are numbers that were never issued (tagged with ``run_tag``). With
    ``reads``, known parcels read as :func:`plan_reads` says; the RMA of 1-based index
    ``n`` read ``rfid`` or ``rfid_mismatch`` declares tag :func:`tag_uid_for` ``(run_tag, n)``;
    an ``rfid`` parcel carries that tag, an ``rfid_mismatch`` parcel another one.
    """
    if len(known_codes) < mix.known:
        raise ValueError(f"{mix.known} known parcels need as many RMAs, got {len(known_codes)}")
    rng = random.Random(mix.seed)
    labels: list[Label] = ["known" for _ in range(mix.known)]
    labels += ["unknown" for _ in range(mix.unknown)]
    labels += ["no_read" for _ in range(mix.no_read)]
    rng.shuffle(labels)
    read_plan = plan_reads(reads or ReadBehaviour(), mix.known, mix.seed)
    known = iter(enumerate(known_codes[: mix.known]))
    parcels: list[SimParcel] = []
    t_ms = mix.start_ms
    for i, label in enumerate(labels, start=1):
        length = rng.uniform(*mix.length_mm)
        tag: str | None = None
        read: Read = "ok"
        scans: tuple[str, ...] | None = None
        if label == "known":
            k, code_ = next(known)
            code: str | None = code_
            read = read_plan[k]
            lane, reason = restock_lane, "matched"
            if read == "no_read":
                scans, lane, reason = (), "quarantine", "no_read"
            elif read == "duplicate":
                scans = (code_, code_)
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
        parcels.append(SimParcel(i, label, code, length, t_ms, lane, tag, read, scans, reason))
        if mix.rate_per_h is not None:
            t_ms += 3_600_000.0 / mix.rate_per_h
        else:
            gap = rng.uniform(*mix.gap_mm)
            t_ms += (length + gap) * 1000.0 / speed_mm_s
    return parcels
