"""Station configuration (TOML): one section per component, typed and bounded.

Unknown keys are rejected, so a misspelt setting is an error at start, not a silent default.
Every device section names its ``backend``, built by that name through
:mod:`edge.drivers.registry` (GPIO devices: ``gpiozero`` on the ``[gpio]`` pin factory).
Example: ``hardware/station.example.toml``.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any, Literal

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


class ModbusSection(_Section):
    """``[modbus]``: the PLC or remote I/O coupler of lanes with ``backend = "modbus"``.

    One Modbus TCP connection (``host``, ``port``, ``unit_id``: the device id the coupler
    answers, 0 .. 247) carries every gate coil and lane input. ``timeout_ms``: per request;
    ``poll_ms``: how often the discrete inputs are read (their edges are stamped at the
    poll that saw them, so this is their resolution); a lost connection is retried after
    ``reconnect_min_ms``, doubling up to ``reconnect_max_ms``.
    """

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=247)
    timeout_ms: float = Field(default=200.0, ge=10, le=10_000)
    poll_ms: float = Field(default=10.0, ge=1, le=1000)
    reconnect_min_ms: float = Field(default=100.0, ge=10, le=60_000)
    reconnect_max_ms: float = Field(default=5000.0, ge=10, le=600_000)

    @model_validator(mode="after")
    def _backoff(self) -> ModbusSection:
        if self.reconnect_max_ms < self.reconnect_min_ms:
            raise ValueError("reconnect_max_ms must be at least reconnect_min_ms")
        return self


class OpcuaSection(_Section):
    """``[opcua]``: the station's OPC UA server for the plant's SCADA (absent: none).

    ``endpoint``: where it listens (``opc.tcp://host:port/path``). Security policy
    Basic256Sha256 with SignAndEncrypt only, with the server's ``certificate`` (DER or PEM)
    and ``private_key`` (PEM). Clients authenticate with an X.509 user certificate listed
    in ``trusted_clients`` (DER or PEM files); ``allow_anonymous`` (off by default) also
    lets unauthenticated sessions in (still over the encrypted channel). ``update_ms``: how
    often the variables are refreshed from the station's status.
    """

    endpoint: str = Field(
        default="opc.tcp://0.0.0.0:4840/returns-sorter/",
        pattern=r"^opc\.tcp://[^\s/]+(:\d{1,5})?(/\S*)?$",
        max_length=256,
    )
    certificate: Path
    private_key: Path
    trusted_clients: tuple[Path, ...] = Field(default=(), max_length=64)
    allow_anonymous: bool = False
    update_ms: float = Field(default=250.0, ge=20, le=60_000)


MODBUS_MAX_ADDRESS = 65_535
"""Highest coil / discrete-input address (Modbus Application Protocol V1.1b3, §4.3)."""


class PhotoEyeSection(_Section):
    """``[photo_eye]``: the induct photo-eye.

    ``backend = "gpiozero"``: on GPIO ``pin`` (edges stamped by the pin's interrupt).
    ``backend = "modbus"``: on ``discrete_input`` of the ``[modbus]`` PLC, polled: each edge
    is stamped at the poll that saw it, up to ``poll_ms`` late (at 1 m/s and 10 ms, a
    parcel's position is known within 10 mm; both edges are late alike, so its length is
    not). ``blocked_level``: the level read while the beam is blocked.
    """

    backend: Literal["gpiozero", "modbus"] = "gpiozero"
    pin: int | None = Field(default=None, ge=0, le=53)
    discrete_input: int | None = Field(default=None, ge=0, le=MODBUS_MAX_ADDRESS)
    blocked_level: Literal["high", "low"] = "high"
    debounce_ms: float = Field(default=5.0, gt=0, le=200)

    @model_validator(mode="after")
    def _keys_of_backend(self) -> PhotoEyeSection:
        own, other = ("pin", "discrete_input")[:: 1 if self.backend == "gpiozero" else -1]
        if getattr(self, own) is None:
            raise ValueError(f"photo_eye: backend {self.backend!r} needs {own}")
        if getattr(self, other) is not None:
            raise ValueError(f"photo_eye: backend {self.backend!r} takes {own}, not {other}")
        return self

    @property
    def address(self) -> int:
        """The eye's GPIO pin (gpiozero) or discrete input (modbus)."""
        address = self.pin if self.backend == "gpiozero" else self.discrete_input
        assert address is not None  # checked by the validator
        return address


class ScannerSection(_Section):
    """``[scanner]``: the label barcode scanner on a serial port."""

    backend: Literal["pyserial"] = "pyserial"
    url: str = Field(min_length=1)
    baudrate: int = Field(default=9600, ge=1200, le=921600)
    suffix: Literal["CR", "LF", "CRLF"] = "CR"
    inter_byte_timeout_ms: float = Field(default=300.0, gt=0, le=10_000)
    device_latency_ms: float = Field(
        default=10.0,
        ge=0,
        le=1000,
        description="the scanner's own max delay from seeing a code to its first byte, ms",
    )
    max_latency_ms: float = Field(
        default=50.0,
        gt=0,
        le=5000,
        description="max delivery latency of a healthy reader, ms; a read later is never "
        "evidence (issue 20)",
    )
    read_cadence_ms: float = Field(
        default=10.0, gt=0, le=1000, description="how long one port read waits, ms"
    )
    reader_priority: int | None = Field(
        default=40,
        ge=1,
        le=99,
        description="SCHED_FIFO priority of the scanner's reader thread (none: normal); "
        "below the gate scheduler's",
    )

    @model_validator(mode="after")
    def _latency_bound(self) -> ScannerSection:
        if self.max_latency_ms < self.device_latency_ms + self.read_cadence_ms:
            raise ValueError(
                "max_latency_ms must be at least device_latency_ms + read_cadence_ms "
                "(else every read is late)"
            )
        return self


class RfidSection(_Section):
    """``[rfid]``: the RFID reader in the scan tunnel (absent: no RFID on this station)."""

    backend: Literal["mfrc522"]
    spi_bus: int = Field(default=0, ge=0, le=6)
    spi_device: int = Field(default=0, ge=0, le=2)
    spi_speed_hz: int = Field(default=1_000_000, ge=100_000, le=10_000_000)
    rst_pin: int = Field(default=25, ge=0, le=27)
    poll_interval_ms: float = Field(default=20.0, ge=5, le=1000)
    poll_deadline_ms: float = Field(default=50.0, ge=5, le=5000)
    absence_misses: int = Field(default=3, ge=1, le=50)
    reinit_after_errors: int = Field(default=5, ge=1, le=100)
    max_tags: int = Field(default=4, ge=1, le=16)


class CameraSection(_Section):
    """``[camera]``: the grading camera, one photo per parcel the core inducts (absent: none)."""

    backend: Literal["opencv"]
    source: str = Field(min_length=1, description="device path, index or video file")
    api: Literal["any", "v4l2", "ffmpeg", "images"] = "v4l2"
    width: int | None = Field(default=None, ge=16, le=8192)
    height: int | None = Field(default=None, ge=16, le=8192)
    trigger_delay_ms: float = Field(
        default=0.0,
        ge=0,
        le=10_000,
        description="from the parcel's leading edge at the photo-eye to the photo, ms",
    )
    flush_frames: int = Field(default=2, ge=0, le=16)
    max_attempts: int = Field(default=5, ge=1, le=50)
    timestamps: Literal["device", "read"] = "device"
    black_level: float = Field(default=8.0, ge=0, le=255)
    frozen_diff: float = Field(default=0.5, ge=0, le=255)
    reopen_after_failures: int = Field(default=3, ge=1, le=100)


class ScaleSection(_Section):
    """``[scale]``: the checkweigher (absent: none).

    A weigh platform in the belt whose indicator streams its weight on a serial line
    (``edge.drivers.pyserial_scale``, Toledo continuous output).
    ``pos_mm`` is the platform's centre downstream of the induct photo-eye, ``platform_mm``
    its length along the belt and ``tol_mm`` the association tolerance: a weighing belongs
    to the one parcel whose body lay on the platform (within ``tol_mm``) while it settled.
    ``empty_g``: at or below this the platform is empty; ``settle_readings``: stable
    readings that make a weighing. The line settings must match the indicator's.
    """

    backend: Literal["pyserial"] = "pyserial"
    url: str = Field(min_length=1)
    format: Literal["toledo"] = "toledo"
    baudrate: int = Field(default=9600, ge=1200, le=115_200)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    checksum: bool = True
    inter_byte_timeout_ms: float = Field(default=200.0, gt=0, le=10_000)
    stale_after_ms: float = Field(default=1000.0, ge=100, le=60_000)
    pos_mm: float = Field(ge=0, le=20_000)
    platform_mm: float = Field(default=500.0, gt=0, le=5_000)
    tol_mm: float = Field(default=50.0, ge=0, le=1_000)
    empty_g: float = Field(default=20.0, ge=0, le=10_000)
    settle_readings: int = Field(default=3, ge=1, le=50)


class VisionSection(_Section):
    """``[vision]``: condition grading from the camera's photos (``edge.vision``).

    Grading thresholds are policy data (``grading`` in the disposition policy), not here.
    """

    grade: bool = Field(default=True, description="grade photos (False: keep them only)")
    calibration: Path | None = Field(
        default=None, description="JSON from `python -m edge.vision.calibration calibrate`"
    )
    mm_per_px: float = Field(default=1.0, gt=0, le=100, description="scale without a file")
    background: Path | None = Field(default=None, description="photo of the empty belt")
    photo_dir: Path | None = Field(default=None, description="default: <data_dir>/photos")
    retention_days: float = Field(default=30.0, gt=0, le=3650)
    jpeg_quality: int = Field(default=85, ge=30, le=100)
    upload: bool = Field(default=True, description="send photos to the gateway")
    backend: Literal["measures", "onnx"] = Field(
        default="measures", description="grading backend (onnx: a learned classifier)"
    )
    model: Path | None = Field(default=None, description="the .onnx file of backend onnx")

    @model_validator(mode="after")
    def _model_for_onnx(self) -> VisionSection:
        if self.backend == "onnx" and self.model is None:
            raise ValueError("backend 'onnx' needs model = <file.onnx>")
        return self


class EncoderSection(_Section):
    """``[encoder]``: optional belt encoder (pulses on ``pin_a``, quadrature with ``pin_b``)."""

    backend: Literal["gpiozero"] = "gpiozero"  # a GPIO pin through [gpio] pin_factory
    pin_a: int = Field(ge=0, le=27)
    pin_b: int | None = Field(default=None, ge=0, le=27)
    mm_per_pulse: float = Field(gt=0, le=1000)


class BeltRunSection(_Section):
    """``[belt_run]``: the output that runs the belt motor contactor."""

    backend: Literal["gpiozero"] = "gpiozero"  # a GPIO pin through [gpio] pin_factory
    pin: int = Field(ge=0, le=27)
    active_high: bool = True


class StackLightSection(_Section):
    """``[stack_light]``: green (running), amber (degraded), red (stopped / fault) outputs."""

    backend: Literal["gpiozero"] = "gpiozero"  # a GPIO pin through [gpio] pin_factory
    green_pin: int | None = Field(default=None, ge=0, le=27)
    amber_pin: int | None = Field(default=None, ge=0, le=27)
    red_pin: int | None = Field(default=None, ge=0, le=27)
    active_high: bool = True


class ControlsSection(_Section):
    """``[controls]``: the operator's physical controls (inputs through the driver registry).

    ``reset_pin``: the reset / resume push button (active when pressed). ``estop_pin``: the
    emergency-stop loop, by default a normally-closed contact (``estop_active_high = false``:
    engaged while the input reads low, so a cut wire is an engaged E-stop).
    """

    backend: Literal["gpiozero"] = "gpiozero"  # a GPIO pin through [gpio] pin_factory
    reset_pin: int | None = Field(default=None, ge=0, le=27)
    reset_active_high: bool = True
    estop_pin: int | None = Field(default=None, ge=0, le=27)
    estop_active_high: bool = False


SPI_PINS: dict[int, tuple[int, ...]] = {0: (7, 8, 9, 10, 11), 1: (16, 17, 18, 19, 20, 21)}
"""BCM pins taken by each SPI bus (chip selects, MISO, MOSI, SCLK) when the reader uses it."""


class BeltSection(_Section):
    """``[belt]``: geometry and timing (mm, mm/s, ms)."""

    speed_mm_s: float = Field(gt=0, le=5000)
    scan_pos_mm: float = Field(ge=0, le=20_000)
    scan_tol_mm: float = Field(default=50.0, ge=0, le=1000)
    length_mm: float = Field(gt=0, le=100_000)
    gate_stroke_ms: float = Field(default=60.0, ge=0, le=2000)
    gate_margin_ms: float = Field(default=40.0, ge=0, le=2000)
    rfid_pos_mm: float | None = Field(default=None, ge=0, le=20_000)
    rfid_tol_mm: float = Field(default=100.0, ge=0, le=1000)
    camera_pos_mm: float | None = Field(default=None, ge=0, le=20_000)
    camera_tol_mm: float = Field(default=50.0, ge=0, le=1000)
    jam_ms: float = Field(default=5000.0, gt=0, le=600_000)
    confirm_timeout_ms: float = Field(default=500.0, ge=0, le=10_000)
    scheduler_priority: int | None = Field(
        default=50,
        ge=1,
        le=99,
        description="SCHED_FIFO priority of the gate scheduler thread (none: normal)",
    )
    scheduler_cpu: int | None = Field(
        default=None, ge=0, le=63, description="reserved CPU of the gate scheduler thread"
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "encoder_mm_per_count" in data:
            raise ValueError(
                "[belt] encoder_mm_per_count is no longer read: the belt encoder has one "
                "source of truth, [encoder] (pin_a, pin_b, mm_per_pulse)"
            )
        return data


class LaneSection(_Section):
    """``[[lanes]]``: a diverting lane with its gate output (and its confirm / full inputs).

    A lane of disposition ``quarantine`` is an **inspection lane**: only the parcels the
    policy's verification table inspects go there, when the policy names it
    (``inspection_lane``); every other quarantined parcel runs on to the end of the belt.

    ``backend = "gpiozero"``: the gate and inputs are GPIO pins (``gate_pin``,
    ``confirm_pin``, ``full_pin``) through ``[gpio]``. ``backend = "modbus"``: they are a
    coil (``gate_coil``) and discrete inputs (``confirm_input``, ``full_input``) of the
    ``[modbus]`` PLC, zero-based protocol addresses. Each backend takes only its own keys.
    """

    backend: Literal["gpiozero", "modbus"] = "gpiozero"
    name: str = Field(min_length=1, max_length=32)
    disposition: Disposition
    pos_mm: float = Field(gt=0, le=100_000)
    gate_pin: int | None = Field(default=None, ge=0, le=53)
    active_high: bool = True
    confirm_pin: int | None = Field(default=None, ge=0, le=53)
    full_pin: int | None = Field(default=None, ge=0, le=53)
    gate_coil: int | None = Field(default=None, ge=0, le=MODBUS_MAX_ADDRESS)
    confirm_input: int | None = Field(default=None, ge=0, le=MODBUS_MAX_ADDRESS)
    full_input: int | None = Field(default=None, ge=0, le=MODBUS_MAX_ADDRESS)

    @model_validator(mode="after")
    def _keys_of_backend(self) -> LaneSection:
        gpio = (self.gate_pin, self.confirm_pin, self.full_pin)
        modbus = (self.gate_coil, self.confirm_input, self.full_input)
        own, other = (gpio, modbus) if self.backend == "gpiozero" else (modbus, gpio)
        if own[0] is None:
            key = "gate_pin" if self.backend == "gpiozero" else "gate_coil"
            raise ValueError(f"lane {self.name}: backend {self.backend!r} needs {key}")
        if any(v is not None for v in other):
            raise ValueError(
                f"lane {self.name}: backend {self.backend!r} takes "
                + (
                    "gate_pin, confirm_pin, full_pin"
                    if self.backend == "gpiozero"
                    else "gate_coil, confirm_input, full_input"
                )
            )
        return self

    @property
    def gate_address(self) -> int:
        """The gate's pin (gpiozero) or coil (modbus)."""
        address = self.gate_pin if self.backend == "gpiozero" else self.gate_coil
        assert address is not None  # checked by the validator
        return address

    @property
    def confirm_address(self) -> int | None:
        """The divert-confirm input's pin or discrete input, None without one."""
        return self.confirm_pin if self.backend == "gpiozero" else self.confirm_input

    @property
    def full_address(self) -> int | None:
        """The lane-full input's pin or discrete input, None without one."""
        return self.full_pin if self.backend == "gpiozero" else self.full_input

    overflow: str | None = Field(default=None, min_length=1, max_length=32)
    """Another lane of the same disposition taking this lane's parcels while it is full."""


class StationConfig(_Section):
    """The whole station config."""

    station: StationSection
    mqtt: MqttSection = MqttSection()
    gpio: GpioSection = GpioSection()
    modbus: ModbusSection | None = None
    opcua: OpcuaSection | None = None
    photo_eye: PhotoEyeSection
    scanner: ScannerSection
    belt: BeltSection
    lanes: tuple[LaneSection, ...] = Field(min_length=1)
    rfid: RfidSection | None = None
    camera: CameraSection | None = None
    scale: ScaleSection | None = None
    vision: VisionSection = VisionSection()
    encoder: EncoderSection | None = None
    belt_run: BeltRunSection | None = None
    stack_light: StackLightSection | None = None
    controls: ControlsSection | None = None
    config_hash: str = ""

    @model_validator(mode="after")
    def _check(self) -> StationConfig:
        names = [lane.name for lane in self.lanes]
        if len(set(names)) != len(names) or "quarantine" in names:
            raise ValueError("lane names must be unique; 'quarantine' is the end-of-line lane")
        pins = [lane.gate_pin for lane in self.lanes if lane.gate_pin is not None]
        pins += [self.photo_eye.pin] if self.photo_eye.pin is not None else []
        pins += [
            p for lane in self.lanes for p in (lane.confirm_pin, lane.full_pin) if p is not None
        ]
        if len(set(pins)) != len(pins):
            raise ValueError("every gate and the photo-eye need their own GPIO pin")
        self._check_modbus()
        used = self.gpio_pins()
        taken: dict[int, str] = {}
        for name, pin in used.items():
            if pin in taken:
                raise ValueError(f"GPIO{pin} is used twice: {taken[pin]} and {name}")
            taken[pin] = name
        if self.rfid is not None:
            spi = set(SPI_PINS.get(self.rfid.spi_bus, ()))
            clash = sorted(f"{name} (GPIO{pin})" for name, pin in used.items() if pin in spi)
            if clash:
                raise ValueError(
                    f"SPI{self.rfid.spi_bus} of the RFID reader needs pins used by: "
                    + ", ".join(clash)
                )
        by_name = {lane.name: lane for lane in self.lanes}
        for lane in self.lanes:
            if lane.overflow is None:
                continue
            other = by_name.get(lane.overflow)
            if other is None or other is lane:
                raise ValueError(f"lane {lane.name}: overflow {lane.overflow!r} is no other lane")
            if other.disposition != lane.disposition:
                wanted, got = lane.disposition.value, other.disposition.value
                raise ValueError(
                    f"lane {lane.name}: overflow lane {other.name} is for {got}, not {wanted}"
                )
        if self.scale is not None:
            self._check_scale(self.scale)
        self.belt_config()  # geometry checks
        return self

    def _check_modbus(self) -> None:
        """Modbus devices need ``[modbus]``; each coil and each discrete input is used once."""
        lanes = [lane for lane in self.lanes if lane.backend == "modbus"]
        eye = self.photo_eye
        if (lanes or eye.backend == "modbus") and self.modbus is None:
            raise ValueError("devices with backend 'modbus' need a [modbus] section")
        coils = [lane.gate_coil for lane in lanes]
        inputs = [
            a for lane in lanes for a in (lane.confirm_input, lane.full_input) if a is not None
        ]
        if eye.discrete_input is not None:
            inputs.append(eye.discrete_input)
        if len(set(coils)) != len(coils):
            raise ValueError("every modbus gate needs its own coil")
        if len(set(inputs)) != len(inputs):
            raise ValueError("every modbus input (lanes, photo-eye) needs its own discrete input")

    def _check_scale(self, scale: ScaleSection) -> None:
        """The platform lies on the belt, wholly before the first diverting gate."""
        start = scale.pos_mm - scale.platform_mm / 2
        end = scale.pos_mm + scale.platform_mm / 2 + scale.tol_mm
        if start < 0:
            raise ValueError("scale: the platform starts before the induct photo-eye")
        first_gate = min(lane.pos_mm for lane in self.lanes)
        if end >= first_gate:
            raise ValueError(
                f"scale: the platform (to {end:g} mm with tol_mm) must end before the first "
                f"diverting lane at {first_gate:g} mm, so the weight is known in time"
            )

    def gpio_pins(self) -> dict[str, int]:
        """Every GPIO (BCM) the config uses, by function (e.g. ``"lanes.restock.gate_pin"``)."""
        pins: dict[str, int] = {}
        if self.photo_eye.pin is not None:
            pins["photo_eye.pin"] = self.photo_eye.pin
        for lane in self.lanes:
            for key in ("gate_pin", "confirm_pin", "full_pin"):
                value = getattr(lane, key)
                if value is not None:
                    pins[f"lanes.{lane.name}.{key}"] = value
        if self.rfid is not None:
            pins["rfid.rst_pin"] = self.rfid.rst_pin
        for section in ("encoder", "belt_run", "stack_light", "controls"):
            model = getattr(self, section)
            if model is None:
                continue
            for key, value in model.model_dump().items():
                if key.startswith("pin") or key.endswith("_pin"):
                    if value is None:
                        continue
                    pins[f"{section}.{key}"] = value
        return pins

    def belt_config(
        self, without_lanes: frozenset[str] = frozenset(), *, encoder: bool = True
    ) -> BeltConfig:
        """The core's view of the belt: diverting lanes plus the end-of-line quarantine.

        Args:
            without_lanes: lanes to leave out (e.g. a gate that failed its self-test), so
                the core never decides for them; their parcels run on to quarantine.
            encoder: False when the ``[encoder]`` device failed to start: tracking falls
                back to ``[belt] speed_mm_s`` (else belt position comes from its counts,
                ``mm_per_pulse`` mm each).
        """
        lanes = [
            LaneSpec(
                lane.name,
                lane.disposition,
                lane.pos_mm,
                lane.name,
                confirm=lane.confirm_address is not None,
                overflow=lane.overflow,
            )
            for lane in self.lanes
            if lane.name not in without_lanes
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
            encoder_mm_per_count=(
                self.encoder.mm_per_pulse if self.encoder is not None and encoder else None
            ),
            rfid_pos_mm=self.belt.rfid_pos_mm,
            rfid_tol_mm=self.belt.rfid_tol_mm,
            camera_pos_mm=self.belt.camera_pos_mm,
            camera_tol_mm=self.belt.camera_tol_mm,
            jam_ms=self.belt.jam_ms,
            confirm_timeout_ms=self.belt.confirm_timeout_ms,
            **self._scale_geometry(),
        )

    def _scale_geometry(self) -> dict[str, float]:
        """The checkweigher platform for the core's belt (none without ``[scale]``)."""
        if self.scale is None:
            return {}
        return {
            "scale_pos_mm": self.scale.pos_mm,
            "scale_platform_mm": self.scale.platform_mm,
            "scale_tol_mm": self.scale.tol_mm,
        }


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
