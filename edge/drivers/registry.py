"""Backends chosen by name from the station config, never by silent fallback.

Each factory imports the backend module named in the config (``mfrc522``, ``opencv``,
``pyserial`` for the checkweigher) only when that backend is configured, so a station
without RFID or camera does not need their libraries. A backend whose library cannot be
imported is a failed device with that reason (the station runs degraded without it);
another backend is never substituted.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from edge.clock import monotonic_ms
from edge.config import CameraSection, RfidSection, ScaleSection
from edge.drivers.camera import Camera
from edge.drivers.rfid import TagReader
from edge.drivers.scale import Checkweigher

__all__ = ["BackendUnavailable", "make_camera", "make_scale", "make_tag_reader"]

_RFID_BACKENDS = {"mfrc522": ("edge.drivers.mfrc522_reader", "Mfrc522Reader")}
_CAMERA_BACKENDS = {"opencv": ("edge.drivers.opencv_camera", "OpencvCamera")}
_SCALE_BACKENDS = {"pyserial": ("edge.drivers.pyserial_scale", "PySerialScale")}


class BackendUnavailable(RuntimeError):
    """The configured backend's library is not installed or cannot load on this machine."""


def _load(table: dict[str, tuple[str, str]], name: str) -> Any:
    module_name, class_name = table[name]
    try:
        module = importlib.import_module(module_name)
    except (ImportError, RuntimeError) as exc:  # RPi.GPIO raises RuntimeError off a Pi
        raise BackendUnavailable(f"backend {name!r} cannot load: {exc}") from exc
    return getattr(module, class_name)


def make_tag_reader(section: RfidSection, clock: Callable[[], float] = monotonic_ms) -> TagReader:
    """The RFID reader of ``[rfid]``.

    Raises:
        BackendUnavailable: when the backend's library (e.g. ``mfrc522``) cannot load.
    """
    cls = _load(_RFID_BACKENDS, section.backend)
    reader: TagReader = cls(
        bus=section.spi_bus,
        device=section.spi_device,
        spi_speed_hz=section.spi_speed_hz,
        rst_pin=section.rst_pin,
        poll_interval_ms=section.poll_interval_ms,
        poll_deadline_ms=section.poll_deadline_ms,
        absence_misses=section.absence_misses,
        reinit_after_errors=section.reinit_after_errors,
        max_tags=section.max_tags,
        clock=clock,
    )
    return reader


def make_camera(section: CameraSection, clock: Callable[[], float] = monotonic_ms) -> Camera:
    """The camera of ``[camera]``.

    Raises:
        BackendUnavailable: when the backend's library (e.g. ``cv2``) cannot load.
    """
    cls = _load(_CAMERA_BACKENDS, section.backend)
    camera: Camera = cls(
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
        clock=clock,
    )
    return camera


def make_scale(section: ScaleSection, clock: Callable[[], float] = monotonic_ms) -> Checkweigher:
    """The checkweigher of ``[scale]``.

    Raises:
        BackendUnavailable: when the backend's library (``serial``) cannot load.
    """
    cls = _load(_SCALE_BACKENDS, section.backend)
    scale: Checkweigher = cls(
        section.url,
        baudrate=section.baudrate,
        bytesize=section.bytesize,
        parity=section.parity,
        stopbits=section.stopbits,
        checksum=section.checksum,
        inter_byte_timeout_ms=section.inter_byte_timeout_ms,
        stale_after_ms=section.stale_after_ms,
        clock=clock,
    )
    return scale
