"""``returns-edge``: the station's command line.

``returns-edge --config station.toml [--metrics-port N]`` runs the station daemon
(:class:`edge.daemon.StationDaemon`) until SIGTERM / SIGINT, telling systemd when it is
ready, alive (watchdog) and stopping; gates are de-energised before the process exits,
whatever the way out (signal, error, normal stop). ``returns-edge check-config
station.toml`` validates a config and prints a summary (exit 0) or the errors (exit 2).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from edge import sdnotify
from edge.config import ConfigError, StationConfig, load_config
from edge.daemon import StationDaemon
from edge.scheduler import tune_runtime

__all__ = ["check_config", "config_summary", "main"]

log = logging.getLogger(__name__)


def config_summary(config: StationConfig) -> str:
    """A human-readable summary of a valid station config (``check-config``)."""
    eye = config.photo_eye
    eye_at = f"GPIO{eye.pin}" if eye.backend == "gpiozero" else f"discrete input {eye.address}"
    lines = [
        f"station {config.station.id} at site {config.station.site} (config {config.config_hash})",
        f"  gpio: pin factory {config.gpio.pin_factory}",
        f"  photo_eye: {eye_at}, blocked={config.photo_eye.blocked_level}, "
        f"debounce {config.photo_eye.debounce_ms} ms",
        f"  scanner: {config.scanner.backend} on {config.scanner.url}, "
        f"{config.scanner.baudrate} bit/s, suffix {config.scanner.suffix}",
    ]
    if config.rfid is not None:
        r = config.rfid
        lines.append(
            f"  rfid: {r.backend} on SPI{r.spi_bus}.{r.spi_device}, RST GPIO{r.rst_pin}, "
            f"poll {r.poll_interval_ms} ms, deadline {r.poll_deadline_ms} ms"
        )
    else:
        lines.append("  rfid: none (barcode only)")
    if config.camera is not None:
        c = config.camera
        lines.append(f"  camera: {c.backend} {c.source} ({c.api}), delay {c.trigger_delay_ms} ms")
        v = config.vision
        scale = f"calibration {v.calibration}" if v.calibration else f"{v.mm_per_px} mm/px"
        where = (
            f"graded at {config.belt.camera_pos_mm} mm"
            if config.belt.camera_pos_mm is not None
            else "evidence only (no belt.camera_pos_mm)"
        )
        lines.append(f"  vision: {scale}, {where}, photos kept {v.retention_days} days")
    else:
        lines.append("  camera: none (graded without photo)")
    if config.encoder is not None:
        e = config.encoder
        lines.append(f"  encoder: GPIO{e.pin_a}/{e.pin_b}, {e.mm_per_pulse} mm/pulse")
    b = config.belt
    lines.append(
        f"  belt: {b.speed_mm_s} mm/s, scan at {b.scan_pos_mm} mm, end at {b.length_mm} mm"
    )
    for lane in config.lanes:
        keys = (
            ("confirm_pin", "full_pin")
            if lane.backend == "gpiozero"
            else ("confirm_input", "full_input")
        )
        where = "GPIO" if lane.backend == "gpiozero" else "discrete input "
        extra = "".join(
            f", {key} {where}{getattr(lane, key)}" for key in keys if getattr(lane, key) is not None
        )
        polarity = "active-high" if lane.active_high else "active-low"
        gate = f"GPIO{lane.gate_pin}" if lane.backend == "gpiozero" else f"coil {lane.gate_coil}"
        lines.append(
            f"  lane {lane.name}: {lane.disposition} at {lane.pos_mm} mm, "
            f"gate {gate} {polarity}{extra}"
        )
    lines.append(f"  lane quarantine: end of belt at {b.length_mm} mm (no gate)")
    lines.append(f"  pins: {len(config.gpio_pins())} GPIOs, none shared")
    if config.modbus is not None:
        m = config.modbus
        lines.append(
            f"  modbus: {m.host}:{m.port} unit {m.unit_id}, inputs polled every {m.poll_ms} ms"
        )
    if config.opcua is not None:
        lines.append(f"  opcua: {config.opcua.endpoint} (Basic256Sha256 SignAndEncrypt)")
    return "\n".join(lines)


def check_config(path: str) -> int:
    """``returns-edge check-config FILE``: print a summary (exit 0) or the errors (exit 2)."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"returns-edge: invalid config: {exc}", file=sys.stderr)
        return 2
    print(config_summary(config))
    return 0


def main(
    argv: list[str] | None = None,
    *,
    on_started: Callable[[StationDaemon], None] | None = None,
) -> int:
    """Console entry ``returns-edge --config station.toml``; returns the exit status.

    ``returns-edge check-config FILE`` validates a config instead (exit 0 or 2).
    ``on_started`` (tests) runs on the main thread once the daemon has started.
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["check-config"]:
        check = argparse.ArgumentParser(prog="returns-edge check-config")
        check.add_argument("file", help="station TOML file")
        return check_config(check.parse_args(argv[1:]).file)
    parser = argparse.ArgumentParser(prog="returns-edge", description=__doc__)
    parser.add_argument("--config", required=True, help="station TOML file")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="serve Prometheus /metrics here (0: off)"
    )
    parser.add_argument("--metrics-addr", default="127.0.0.1", help="metrics listen address")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"returns-edge: {exc}", file=sys.stderr)
        return 2
    daemon = StationDaemon(config)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        daemon.gates.release_all()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    watchdog_s = sdnotify.watchdog_interval_s()
    try:
        daemon.start()
        log.info("interpreter tuned for the gate timer: %s", tune_runtime())
        if args.metrics_port:
            daemon.metrics.serve(args.metrics_port, args.metrics_addr)
        sdnotify.notify("READY=1\nSTATUS=" + ",".join(daemon.devices.capabilities()))
        if on_started is not None:
            on_started(daemon)
        while not stop.wait(min(0.5, watchdog_s or 0.5)):
            daemon.update_stack_light()
            if watchdog_s is not None and daemon.alive():
                sdnotify.notify("WATCHDOG=1")  # a dead reactor or scheduler: systemd restarts
    finally:
        sdnotify.notify("STOPPING=1")
        daemon.metrics.close()
        daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
