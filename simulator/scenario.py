"""Scenario files (YAML): the belt, the station, the parcels and what must come out.

Schema (every key checked; unknown keys are errors)::

    name: smoke
    site: site1
    station:                 # station config sections, as in the station TOML
      belt: {speed_mm_s: 1000, scan_pos_mm: 400, length_mm: 3000}
      lanes:
        - {name: restock, disposition: restock, pos_mm: 1200, gate_pin: 17}
    parcels:
      known: 5               # labels of RMAs the simulator creates through the gateway API
      unknown: 2             # labels of RMAs nobody issued
      no_read: 1             # labels the scanner cannot read
      length_mm: [200, 400]  # uniform range, mm
      gap_mm: [400, 800]     # free space between parcels, mm
      seed: 1
    expect:
      lanes: {restock: 5, quarantine: 3}
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
    seed: int = 1
    start_ms: float = Field(default=500.0, ge=0)

    @model_validator(mode="after")
    def _ranges(self) -> ParcelMix:
        for name in ("length_mm", "gap_mm"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be [low, high] with 0 < low <= high")
        return self


class Expectations(_Strict):
    """What the run must show; any miss makes the run fail."""

    lanes: dict[str, int] | None = None
    mis_sorts: int = 0


class Scenario(_Strict):
    """A whole scenario."""

    name: str
    site: str = "site1"
    station: dict[str, Any]
    parcels: ParcelMix
    expect: Expectations = Expectations()


Label = Literal["known", "unknown", "no_read"]


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
    """

    index: int
    label: Label
    barcode: str | None
    length_mm: float
    induct_at_ms: float
    expected_lane: str
    tag_uid: str | None = None


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


def plan_parcels(
    mix: ParcelMix,
    speed_mm_s: float,
    known_codes: list[str],
    restock_lane: str,
    run_tag: str,
) -> list[SimParcel]:
    """Lay out the parcels on the belt in a seeded random order.

    ``known_codes`` are the RMA numbers issued for this run (one per known parcel);
    unknown labels are numbers that were never issued (tagged with ``run_tag``).
    """
    if len(known_codes) < mix.known:
        raise ValueError(f"{mix.known} known parcels need as many RMAs, got {len(known_codes)}")
    rng = random.Random(mix.seed)
    labels: list[Label] = ["known" for _ in range(mix.known)]
    labels += ["unknown" for _ in range(mix.unknown)]
    labels += ["no_read" for _ in range(mix.no_read)]
    rng.shuffle(labels)
    known = iter(known_codes)
    parcels: list[SimParcel] = []
    t_ms = mix.start_ms
    for i, label in enumerate(labels, start=1):
        length = rng.uniform(*mix.length_mm)
        if label == "known":
            code: str | None = next(known)
            lane = restock_lane
        elif label == "unknown":
            code, lane = f"RMA-X{run_tag}{i:05d}", "quarantine"
        else:
            code, lane = None, "quarantine"
        parcels.append(SimParcel(i, label, code, length, t_ms, lane))
        gap = rng.uniform(*mix.gap_mm)
        t_ms += (length + gap) * 1000.0 / speed_mm_s
    return parcels
