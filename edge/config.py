"""Station configuration (TOML): one section per component, typed and bounded.

Unknown keys are rejected, so a misspelt setting is an error at start, not a silent default.
Example: ``hardware/station.example.toml``.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.sorter.model import BeltConfig, Disposition, LaneSpec


class ConfigError(ValueError):
    """The station config file is missing, not TOML, or has an invalid value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationSection(_Section):
    """``[station]``: identity."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    site: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    data_dir: Path = Path("var/station")


class MqttSection(_Section):
    """``[mqtt]``: the site broker.

    ``username`` is the station id under the shipped ACL; ``tls_ca`` (CA file) turns TLS
    on, ``tls_cert`` / ``tls_key`` add a client certificate.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    keepalive_s: int = Field(default=15, ge=5, le=600)
    username: str | None = None
    password: str | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    status_interval_s: float = Field(default=5.0, gt=0, le=3600)


class GpioSection(_Section):
    """``[gpio]``: which gpiozero pin factory drives the pins."""

    pin_factory: Literal["mock", "rpigpio", "lgpio"] = "rpigpio"


class PhotoEyeSection(_Section):
    """``[photo_eye]``: the induct photo-eye."""

    pin: int = Field(ge=0, le=53)
    blocked_level: Literal["high", "low"] = "high"
    debounce_ms: float = Field(default=5.0, gt=0, le=200)


class ScannerSection(_Section):
    """``[scanner]``: the label barcode scanner on a serial port."""

    backend: Literal["pyserial"] = "pyserial"
    url: str = Field(min_length=1)
    baudrate: int = Field(default=9600, ge=1200, le=921600)
    suffix: Literal["CR", "LF", "CRLF"] = "CR"
    inter_byte_timeout_ms: float = Field(default=300.0, gt=0, le=10_000)


class BeltSection(_Section):
    """``[belt]``: geometry and timing (mm, mm/s, ms)."""

    speed_mm_s: float = Field(gt=0, le=5000)
    scan_pos_mm: float = Field(ge=0, le=20_000)
    scan_tol_mm: float = Field(default=50.0, ge=0, le=1000)
    length_mm: float = Field(gt=0, le=100_000)
    gate_stroke_ms: float = Field(default=60.0, ge=0, le=2000)
    gate_margin_ms: float = Field(default=40.0, ge=0, le=2000)


class LaneSection(_Section):
    """``[[lanes]]``: a diverting lane with its gate output."""

    name: str = Field(min_length=1, max_length=32)
    disposition: Disposition
    pos_mm: float = Field(gt=0, le=100_000)
    gate_pin: int = Field(ge=0, le=53)
    active_high: bool = True


class StationConfig(_Section):
    """The whole station config."""

    station: StationSection
    mqtt: MqttSection = MqttSection()
    gpio: GpioSection = GpioSection()
    photo_eye: PhotoEyeSection
    scanner: ScannerSection
    belt: BeltSection
    lanes: tuple[LaneSection, ...] = Field(min_length=1)
    config_hash: str = ""

    @model_validator(mode="after")
    def _check(self) -> StationConfig:
        names = [lane.name for lane in self.lanes]
        if len(set(names)) != len(names) or "quarantine" in names:
            raise ValueError("lane names must be unique; 'quarantine' is the end-of-line lane")
        pins = [lane.gate_pin for lane in self.lanes] + [self.photo_eye.pin]
        if len(set(pins)) != len(pins):
            raise ValueError("every gate and the photo-eye need their own GPIO pin")
        if any(lane.disposition is Disposition.QUARANTINE for lane in self.lanes):
            raise ValueError("quarantine is the end of the belt; it has no diverting lane")
        self.belt_config()  # geometry checks
        return self

    def belt_config(self) -> BeltConfig:
        """The core's view of the belt: diverting lanes plus the end-of-line quarantine."""
        lanes = [
            LaneSpec(lane.name, lane.disposition, lane.pos_mm, lane.name) for lane in self.lanes
        ]
        lanes.append(LaneSpec("quarantine", Disposition.QUARANTINE, self.belt.length_mm, None))
        return BeltConfig(
            speed_mm_s=self.belt.speed_mm_s,
            scan_pos_mm=self.belt.scan_pos_mm,
            scan_tol_mm=self.belt.scan_tol_mm,
            gate_stroke_ms=self.belt.gate_stroke_ms,
            gate_margin_ms=self.belt.gate_margin_ms,
            debounce_ms=self.photo_eye.debounce_ms,
            lanes=tuple(lanes),
        )


def load_config(path: str | Path) -> StationConfig:
    """Read and validate a station TOML file.

    Raises:
        ConfigError: when the file is missing, not TOML, or fails validation; the message
            names the file, the key and what is wrong.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    data["config_hash"] = hashlib.sha256(raw).hexdigest()[:12]
    try:
        return StationConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc
