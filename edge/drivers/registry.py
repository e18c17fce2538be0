"""Every device is built by the backend its config section names, never by silent fallback.

A backend is a factory registered for a device kind under a name: ``(kind, name) ->
factory(spec, context)``. The built-in ones: ``gpiozero`` for the photo-eye, gates, lane
inputs, outputs and encoder (on the ``[gpio]`` pin factory), ``pyserial`` for the
scanner, ``mfrc522`` for RFID, ``opencv`` for the camera, ``modbus`` for the photo-eye,
gates and lane inputs on a PLC or remote I/O coupler (coils and discrete inputs over
Modbus TCP, one shared ``[modbus]`` connection). A new backend is added by
:func:`register_backend` and named in the config; nothing in the station shell changes.

``pyserial`` also drives the checkweigher (``[scale]``).

Each built-in factory imports its backend module only when that backend is built, so a
station without RFID or camera does not need their libraries. A backend whose library
cannot be imported is a failed device with that reason (:class:`BackendUnavailable`; the
station runs degraded without it); another backend is never substituted.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal, TypeVar, cast

from edge.clock import monotonic_ms
from edge.config import (
    CameraSection,
    EncoderSection,
    RfidSection,
    ScaleSection,
    ScannerSection,
    StationConfig,
)
from edge.drivers.camera import Camera
from edge.drivers.gpio import BeltEncoder, BinaryInput, BinaryOutput, DiverterGate, PhotoEye
from edge.drivers.rfid import TagReader
from edge.drivers.scale import Checkweigher
from edge.drivers.scanner import BarcodeScanner

__all__ = [
    "BackendContext",
    "BackendFactory",
    "BackendUnavailable",
    "DeviceKind",
    "IoSpec",
    "UnknownBackend",
    "backends",
    "build",
    "make_camera",
    "make_encoder",
    "make_gate",
    "make_input",
    "make_output",
    "make_photo_eye",
    "make_pin_factory",
    "make_scale",
    "make_scanner",
    "make_tag_reader",
    "register_backend",
]

DeviceKind = Literal[
    "photo_eye", "gate", "lane_input", "output", "encoder", "scanner", "rfid", "camera", "scale"
]
"""The kinds of device a station is built from."""

T = TypeVar("T")


class BackendUnavailable(RuntimeError):
    """The configured backend's library is not installed or cannot load on this machine."""


class UnknownBackend(ValueError):
    """No backend of that name is registered for that kind of device."""


@dataclass(frozen=True)
class IoSpec:
    """One binary input or output as the station config names it.

    Attributes:
        name: what it is: ``photo_eye``, ``<lane>`` (a gate), ``<lane>.confirm``,
            ``<lane>.full``, ``belt_run``, ``stack_light.<colour>``.
        backend: the backend name of its config section.
        pin: its pin (BCM number for ``gpiozero``; the coil or discrete-input address
            for ``modbus``).
        active_high: True when active (blocked, energised, on) reads / drives high.
        section: the config section it comes from (backend-specific keys).
    """

    name: str
    backend: str
    pin: int
    active_high: bool = True
    section: object = None


@dataclass
class BackendContext:
    """What a backend factory may use: the config, the station clock, shared resources.

    Attributes:
        config: the whole station config.
        clock: the monotonic ms time source every device stamps with.
        pin_factory: the gpiozero pin factory of ``[gpio]`` (None: not built).
    """

    config: StationConfig
    clock: Callable[[], float] = monotonic_ms
    pin_factory: Any = None
    _shared: dict[str, object] = field(default_factory=dict)

    def shared(self, key: str, make: Callable[[], T]) -> T:
        """The resource ``key`` (e.g. a bus connection) every device of a backend shares."""
        if key not in self._shared:
            self._shared[key] = make()
        return cast(T, self._shared[key])


BackendFactory = Callable[[Any, BackendContext], object]
"""``factory(spec, context) -> device``; ``spec`` is an :class:`IoSpec` or a config section."""

_BACKENDS: dict[tuple[DeviceKind, str], BackendFactory] = {}


def register_backend(kind: DeviceKind, name: str, factory: BackendFactory) -> None:
    """Make ``factory`` the backend ``name`` of devices of ``kind`` (replaces an earlier one)."""
    _BACKENDS[(kind, name)] = factory


def backends(kind: DeviceKind) -> tuple[str, ...]:
    """The backend names registered for ``kind``, sorted."""
    return tuple(sorted(name for k, name in _BACKENDS if k == kind))


def build(kind: DeviceKind, backend: str, spec: object, context: BackendContext) -> object:
    """Build one device of ``kind`` with the backend named ``backend``.

    Raises:
        UnknownBackend: when no such backend is registered for ``kind``.
        BackendUnavailable: when the backend's library cannot load here.
        Exception: whatever the backend raises for a device it cannot open.
    """
    factory = _BACKENDS.get((kind, backend))
    if factory is None:
        known = ", ".join(backends(kind)) or "none"
        raise UnknownBackend(f"no {kind} backend {backend!r} (registered: {known})")
    return factory(spec, context)


def _import(module_name: str, backend: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except (ImportError, RuntimeError) as exc:  # RPi.GPIO raises RuntimeError off a Pi
        raise BackendUnavailable(f"backend {backend!r} cannot load: {exc}") from exc


# -- typed front doors ------------------------------------------------------------------------


def make_pin_factory(name: str) -> Any:
    """The gpiozero pin factory ``name`` (``mock``, ``rpigpio``, ``lgpio``).

    Raises:
        ValueError: on an unknown name.
        ImportError: when its library is not installed (e.g. RPi.GPIO off a Pi).
    """
    return _import("edge.drivers.gpiozero_io", "gpiozero").make_pin_factory(name)


def make_photo_eye(spec: IoSpec, context: BackendContext) -> PhotoEye:
    """The induct photo-eye (``active_high``: the input reads high while blocked)."""
    return cast(PhotoEye, build("photo_eye", spec.backend, spec, context))


def make_gate(spec: IoSpec, context: BackendContext) -> DiverterGate:
    """A lane's diverter gate output (``spec.name``: the lane), de-energised at start."""
    return cast(DiverterGate, build("gate", spec.backend, spec, context))


def make_input(spec: IoSpec, context: BackendContext) -> BinaryInput:
    """A lane's divert-confirm or lane-full input."""
    return cast(BinaryInput, build("lane_input", spec.backend, spec, context))


def make_output(spec: IoSpec, context: BackendContext) -> BinaryOutput:
    """A plain output (belt run, stack-light lamp), off at start."""
    return cast(BinaryOutput, build("output", spec.backend, spec, context))


def make_encoder(section: EncoderSection, context: BackendContext) -> BeltEncoder:
    """The belt encoder of ``[encoder]``."""
    return cast(BeltEncoder, build("encoder", section.backend, section, context))


def make_scanner(section: ScannerSection, context: BackendContext) -> BarcodeScanner:
    """The label scanner of ``[scanner]``."""
    return cast(BarcodeScanner, build("scanner", section.backend, section, context))


def make_tag_reader(section: RfidSection, context: BackendContext) -> TagReader:
    """The RFID reader of ``[rfid]``.

    Raises:
        BackendUnavailable: when the backend's library (e.g. ``mfrc522``) cannot load.
    """
    return cast(TagReader, build("rfid", section.backend, section, context))


def make_camera(section: CameraSection, context: BackendContext) -> Camera:
    """The camera of ``[camera]``.

    Raises:
        BackendUnavailable: when the backend's library (e.g. ``cv2``) cannot load.
    """
    return cast(Camera, build("camera", section.backend, section, context))


def make_scale(section: ScaleSection, context: BackendContext) -> Checkweigher:
    """The checkweigher of ``[scale]``.

    Raises:
        BackendUnavailable: when the backend's library (``serial``) cannot load.
    """
    return cast(Checkweigher, build("scale", section.backend, section, context))


# -- built-in backends ------------------------------------------------------------------------


def _gpiozero() -> Any:
    return _import("edge.drivers.gpiozero_io", "gpiozero")


def _gpiozero_photo_eye(spec: IoSpec, ctx: BackendContext) -> object:
    level = "high" if spec.active_high else "low"
    return _gpiozero().GpiozeroPhotoEye(spec.pin, level, ctx.pin_factory, ctx.clock)


def _gpiozero_gate(spec: IoSpec, ctx: BackendContext) -> object:
    return _gpiozero().GpiozeroDiverterGate(spec.name, spec.pin, spec.active_high, ctx.pin_factory)


def _gpiozero_input(spec: IoSpec, ctx: BackendContext) -> object:
    return _gpiozero().GpiozeroInput(
        spec.name, spec.pin, spec.active_high, ctx.pin_factory, ctx.clock
    )


def _gpiozero_output(spec: IoSpec, ctx: BackendContext) -> object:
    return _gpiozero().GpiozeroOutput(spec.name, spec.pin, spec.active_high, ctx.pin_factory)


def _gpiozero_encoder(section: EncoderSection, ctx: BackendContext) -> object:
    return _gpiozero().GpiozeroEncoder(
        section.pin_a, section.pin_b, section.mm_per_pulse, ctx.pin_factory, ctx.clock
    )


def _pyserial_scanner(section: ScannerSection, ctx: BackendContext) -> object:
    module = _import("edge.drivers.pyserial_scanner", "pyserial")
    return module.PySerialScanner(
        section.url,
        baudrate=section.baudrate,
        suffix=section.suffix,
        inter_byte_timeout_ms=section.inter_byte_timeout_ms,
        clock=ctx.clock,
        device_latency_ms=section.device_latency_ms,
        max_latency_ms=section.max_latency_ms,
        read_cadence_ms=section.read_cadence_ms,
        reader_priority=section.reader_priority,
    )


def _mfrc522_reader(section: RfidSection, ctx: BackendContext) -> object:
    module = _import("edge.drivers.mfrc522_reader", "mfrc522")
    return module.Mfrc522Reader(
        bus=section.spi_bus,
        device=section.spi_device,
        spi_speed_hz=section.spi_speed_hz,
        rst_pin=section.rst_pin,
        poll_interval_ms=section.poll_interval_ms,
        poll_deadline_ms=section.poll_deadline_ms,
        absence_misses=section.absence_misses,
        reinit_after_errors=section.reinit_after_errors,
        max_tags=section.max_tags,
        clock=ctx.clock,
    )


def _opencv_camera(section: CameraSection, ctx: BackendContext) -> object:
    module = _import("edge.drivers.opencv_camera", "opencv")
    return module.OpencvCamera(
        section.source,
        api=section.api,
        width=section.width,
        height=section.height,
        flush_frames=section.flush_frames,
        max_attempts=section.max_attempts,
        timestamps=section.timestamps,
        black_level=section.black_level,
        frozen_diff=section.frozen_diff,
        reopen_after_failures=section.reopen_after_failures,
        clock=ctx.clock,
    )


def _pyserial_scale(section: ScaleSection, ctx: BackendContext) -> object:
    module = _import("edge.drivers.pyserial_scale", "pyserial")
    return module.PySerialScale(
        section.url,
        baudrate=section.baudrate,
        bytesize=section.bytesize,
        parity=section.parity,
        stopbits=section.stopbits,
        checksum=section.checksum,
        inter_byte_timeout_ms=section.inter_byte_timeout_ms,
        stale_after_ms=section.stale_after_ms,
        clock=ctx.clock,
    )


def _modbus_link(ctx: BackendContext) -> Any:
    module = _import("edge.drivers.pymodbus_io", "modbus")
    section = ctx.config.modbus
    if section is None:  # the config's own check makes this unreachable
        raise BackendUnavailable("backend 'modbus' needs a [modbus] section")
    return ctx.shared("modbus", lambda: module.ModbusLink(section, ctx.clock))


def _modbus_gate(spec: IoSpec, ctx: BackendContext) -> object:
    module = _import("edge.drivers.pymodbus_io", "modbus")
    return module.ModbusDiverterGate(spec.name, spec.pin, spec.active_high, _modbus_link(ctx))


def _modbus_photo_eye(spec: IoSpec, ctx: BackendContext) -> object:
    module = _import("edge.drivers.pymodbus_io", "modbus")
    return module.ModbusPhotoEye(spec.pin, spec.active_high, _modbus_link(ctx))


def _modbus_input(spec: IoSpec, ctx: BackendContext) -> object:
    module = _import("edge.drivers.pymodbus_io", "modbus")
    return module.ModbusInput(spec.name, spec.pin, spec.active_high, _modbus_link(ctx))


register_backend("photo_eye", "gpiozero", _gpiozero_photo_eye)
register_backend("gate", "gpiozero", _gpiozero_gate)
register_backend("lane_input", "gpiozero", _gpiozero_input)
register_backend("output", "gpiozero", _gpiozero_output)
register_backend("encoder", "gpiozero", _gpiozero_encoder)
register_backend("scanner", "pyserial", _pyserial_scanner)
register_backend("rfid", "mfrc522", _mfrc522_reader)
register_backend("camera", "opencv", _opencv_camera)
register_backend("scale", "pyserial", _pyserial_scale)
register_backend("photo_eye", "modbus", _modbus_photo_eye)
register_backend("gate", "modbus", _modbus_gate)
register_backend("lane_input", "modbus", _modbus_input)
