"""The station's devices: built through the driver registry, self-tested, closed; health.

Every device comes from :mod:`edge.drivers.registry` by the backend its config section
names and is seen only through the interfaces of :mod:`edge.drivers` (gpiozero's split
between devices and pin factories, one level up: the shell never names a backend class).
A device that cannot be built or fails its self-test is recorded as ``failed`` in
:attr:`DeviceBank.health` and the station runs without it (degraded, visible in the
status); a gate that fails is never used, so its lane is left out of the core's belt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from edge.clock import monotonic_ms
from edge.config import StationConfig
from edge.drivers import registry
from edge.drivers.camera import Camera
from edge.drivers.gpio import BeltEncoder, BinaryInput, BinaryOutput, DiverterGate, PhotoEye
from edge.drivers.registry import BackendContext, IoSpec
from edge.drivers.rfid import TagReader
from edge.drivers.scale import Checkweigher, Weighing, WeighingDetector, WeightReading
from edge.drivers.scanner import BarcodeScanner
from edge.sorter.model import BeltConfig

__all__ = ["DeviceBank", "DeviceHealth"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DeviceHealth:
    """Start-up self-test result of one device.

    Attributes:
        state: ``ok``, ``failed`` (not usable; the station runs without it).
        backend: the configured backend name (``mfrc522``, ``gpiozero``, ...).
        detail: what was checked, or why it failed.
    """

    state: str
    backend: str
    detail: str

    def as_dict(self) -> dict[str, object]:
        """JSON-able form."""
        return {"state": self.state, "backend": self.backend, "detail": self.detail}


class DeviceBank:
    """Every device of one station, built and self-tested from its config.

    Args:
        config: the validated station config.
        clock: the monotonic ms time source every device stamps with.

    Attributes:
        health: self-test result by device name (``photo_eye``, ``gate.<lane>``,
            ``<lane>.confirm``, ``<lane>.full``, ``reset``, ``estop``, ``encoder``,
            ``belt_run``, ``stack_light.<colour>``, ``rfid``, ``camera``, ``scale``, and
            ``grader`` when built).
        context: what the backends were built with (the gpiozero pin factory of
            ``[gpio]``: ``context.pin_factory``, also :attr:`pin_factory`).
        photo_eye: the induct photo-eye, or None when it failed (nothing is inducted).
        gates: the gates that passed their self-test, by lane.
        lane_inputs: divert-confirm and lane-full inputs by name (``<lane>.confirm``).
        controls: the operator's ``reset`` button and ``estop`` input ([controls]), by name.
        encoder: the belt encoder, or None.
        outputs: belt-run and stack-light outputs by name.
        scanner: the label scanner (always built: a port that is not there yet is the
            scanner's own ``degraded`` state).
        rfid: the RFID reader, or None; usable only while ``health["rfid"]`` is ok.
        camera: the camera, or None; usable only while ``health["camera"]`` is ok.
        scale: the checkweigher of ``[scale]``, or None; kept when its self-test failed
            (it reopens its port by itself: an indicator switched on later is used).

    Raises:
        ValueError, ImportError: when the ``[gpio]`` pin factory cannot be made.
    """

    def __init__(self, config: StationConfig, clock: Callable[[], float] = monotonic_ms) -> None:
        self.config = config
        self.health: dict[str, DeviceHealth] = {}
        self.pin_factory = registry.make_pin_factory(config.gpio.pin_factory)
        self.context = BackendContext(config, clock, self.pin_factory)
        ctx = self.context
        self.gates: dict[str, DiverterGate] = {}
        for lane in config.lanes:
            self._add_gate(
                IoSpec(lane.name, lane.backend, lane.gate_address, lane.active_high, lane)
            )
        eye = config.photo_eye
        eye_spec = IoSpec("photo_eye", eye.backend, eye.address, eye.blocked_level == "high", eye)
        # Without its induct photo-eye the station sees no parcel: nothing is tracked, no
        # gate fires, everything runs on to quarantine. It still starts, visibly degraded.
        self.photo_eye: PhotoEye | None = self._tested(
            "photo_eye", eye.backend, lambda: registry.make_photo_eye(eye_spec, ctx)
        )
        self.lane_inputs: dict[str, BinaryInput] = {}
        for lane in config.lanes:
            for kind, pin in (("confirm", lane.confirm_address), ("full", lane.full_address)):
                if pin is not None:
                    spec = IoSpec(f"{lane.name}.{kind}", lane.backend, pin, True, lane)
                    self._add(self.lane_inputs, spec, registry.make_input)
        self.controls: dict[str, BinaryInput] = {}  # "reset", "estop" ([controls])
        if config.controls is not None:
            ctl = config.controls
            for kind, pin, high in (
                ("reset", ctl.reset_pin, ctl.reset_active_high),
                ("estop", ctl.estop_pin, ctl.estop_active_high),
            ):
                if pin is not None:
                    spec = IoSpec(kind, ctl.backend, pin, high, ctl)
                    self._add(self.controls, spec, registry.make_input)
        self.encoder: BeltEncoder | None = None
        if config.encoder is not None:
            enc = config.encoder
            self.encoder = self.try_build(
                "encoder", enc.backend, lambda: registry.make_encoder(enc, ctx)
            )
        self.outputs: dict[str, BinaryOutput] = {}
        if config.belt_run is not None:
            run = config.belt_run
            spec = IoSpec("belt_run", run.backend, run.pin, run.active_high, run)
            self._add(self.outputs, spec, registry.make_output)
        if config.stack_light is not None:
            sl = config.stack_light
            for colour, pin in (
                ("green", sl.green_pin),
                ("amber", sl.amber_pin),
                ("red", sl.red_pin),
            ):
                if pin is not None:
                    spec = IoSpec(f"stack_light.{colour}", sl.backend, pin, sl.active_high, sl)
                    self._add(self.outputs, spec, registry.make_output)
        self.rfid: TagReader | None = None
        if config.rfid is not None:
            rfid = config.rfid
            self.rfid = self._tested(
                "rfid", rfid.backend, lambda: registry.make_tag_reader(rfid, ctx)
            )
        self.camera: Camera | None = None
        if config.camera is not None:
            cam = config.camera
            self.camera = self._tested(
                "camera", cam.backend, lambda: registry.make_camera(cam, ctx)
            )
        self.scale: Checkweigher | None = None
        if config.scale is not None:
            sc = config.scale
            self.scale = self._tested("scale", sc.backend, lambda: registry.make_scale(sc, ctx))
        self.scanner: BarcodeScanner = registry.make_scanner(config.scanner, ctx)

    # -- building -----------------------------------------------------------------------------
    def try_build(self, name: str, backend: str, build: Callable[[], T]) -> T | None:
        """Build a device; on any failure record it as failed and return None."""
        try:
            device = build()
        except Exception as exc:
            self.health[name] = DeviceHealth("failed", backend, f"{type(exc).__name__}: {exc}")
            log.error("device %s (%s) failed to start: %s", name, backend, exc)
            return None
        self.health[name] = DeviceHealth("ok", backend, "started")
        return device

    def record_self_test(self, name: str, backend: str, result: dict[str, object]) -> bool:
        """Record a device's self-test result (``{"ok", "detail"}``); True when ok."""
        ok = bool(result.get("ok"))
        self.health[name] = DeviceHealth(
            "ok" if ok else "failed", backend, str(result.get("detail", ""))
        )
        if not ok:
            log.error("device %s (%s) failed its self-test: %s", name, backend, result)
        return ok

    def _tested(self, name: str, backend: str, build: Callable[[], Any]) -> Any:
        """Build a device and run its self-test (kept even when failed: it shows why)."""
        device = self.try_build(name, backend, build)
        if device is not None:
            self.record_self_test(name, backend, device.self_test())
        return device

    def _add_gate(self, spec: IoSpec) -> None:
        name = f"gate.{spec.name}"
        gate = self.try_build(name, spec.backend, lambda: registry.make_gate(spec, self.context))
        if gate is None:
            return
        if self.record_self_test(name, spec.backend, gate.self_test()):
            self.gates[spec.name] = gate
        else:
            gate.close()  # never divert on a broken gate

    def _add(
        self,
        into: dict[str, Any],
        spec: IoSpec,
        make: Callable[[IoSpec, BackendContext], object],
    ) -> None:
        device = self.try_build(spec.name, spec.backend, lambda: make(spec, self.context))
        if device is not None:
            into[spec.name] = device

    # -- state --------------------------------------------------------------------------------
    def usable(self, name: str) -> bool:
        """True when device ``name`` was built and passed its self-test."""
        health = self.health.get(name)
        return health is not None and health.state == "ok"

    def broken_lanes(self) -> frozenset[str]:
        """Lanes whose gate is not usable (the core must never decide for them)."""
        return frozenset(lane.name for lane in self.config.lanes if lane.name not in self.gates)

    def belt_config(self) -> BeltConfig:
        """The core's belt: without the lanes of broken gates, by encoder while it works."""
        return self.config.belt_config(self.broken_lanes(), encoder=self.encoder is not None)

    def capabilities(self) -> list[str]:
        """What the station can do now: ``induct``, ``barcode``, ``rfid``, ``camera``, lanes."""
        caps = []
        if self.usable("photo_eye"):
            caps.append("induct")
        if self.scanner.status().get("state") == "ok":
            caps.append("barcode")
        caps += [name for name in ("rfid", "camera", "scale") if self.usable(name)]
        caps += [f"lane:{name}" for name in self.gates]
        return caps

    # -- outputs ------------------------------------------------------------------------------
    def set_output(self, name: str, on: bool) -> None:
        """Switch output ``name`` (``belt_run``, ``stack_light.red``) when the station has it."""
        out = self.outputs.get(name)
        if out is not None:
            out.set(on)

    def set_stack_light(self, *, fatal: bool, degraded: bool) -> None:
        """Red: cannot sort (``fatal``). Amber: sorting, degraded. Green: sorting, all ok."""
        self.set_output("stack_light.green", not fatal and not degraded)
        self.set_output("stack_light.amber", not fatal and degraded)
        self.set_output("stack_light.red", fatal)

    # -- shutting down ------------------------------------------------------------------------
    def start_scale(self, on_weighing: Callable[[Weighing], None]) -> None:
        """Start the checkweigher's reader, when there is one (even after a failed test).

        Its readings go through a :class:`~edge.drivers.scale.WeighingDetector` (``[scale]``
        ``empty_g`` and ``settle_readings``) on the reader thread; each weighing it finds is
        handed to ``on_weighing`` (the station's ``submit``: it must not block).
        """
        scale, section = self.scale, self.config.scale
        if scale is None or section is None:
            return
        detector = WeighingDetector(section.empty_g, section.settle_readings)

        def on_reading(reading: WeightReading) -> None:  # the scale's reader thread only
            for weighing in detector.feed(reading):
                on_weighing(weighing)

        scale.start(on_reading)

    def stop_readers(self) -> None:
        """Stop the reader threads (scanner, RFID, camera, scale) and release their devices."""
        self.scanner.stop()
        if self.scale is not None:
            self.scale.stop()
        if self.rfid is not None:
            self.rfid.stop()
        if self.camera is not None:
            self.camera.stop()

    def close(self) -> None:
        """Release every pin: gates de-energised first, then inputs, encoder, outputs, eye."""
        for gate in self.gates.values():
            gate.close()
        for device in (*self.lane_inputs.values(), *self.controls.values()):
            device.close()
        if self.encoder is not None:
            self.encoder.close()
        for out in self.outputs.values():
            out.close()
        if self.photo_eye is not None:
            self.photo_eye.close()
