"""The real daemon stack on the lowest-layer fakes: gpiozero MockFactory pins, a pty for the
scanner, the MFRC522 emulator on the fake SPI bus, a video file for the camera (C7, C2, C9).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from edge.config import StationConfig
from edge.daemon import StationDaemon
from edge.drivers.rfid import TagRead
from edge.sorter.model import Reason
from simulator.hw.camera import write_video
from simulator.hw.mfrc522_emu import MFRC522Emulator, VirtualTag
from simulator.hw.pins import ENV_LOG, last_states, read_log
from simulator.testing import ManualClock, station_config_data, video_camera, wait_until
from tests.cases import field_case

REPO = Path(__file__).resolve().parents[2]


def events_in_outbox(daemon: StationDaemon) -> list[dict[str, Any]]:
    return [json.loads(item.payload) for item in daemon.store.outbox_pending()]


# -- C7: photo-eye bounce through the daemon --------------------------------------------------
def test_c7_bouncing_photo_eye_is_one_parcel_of_150_ms(
    tmp_path: Path, scanner_pty: str, chip: MFRC522Emulator
) -> None:
    case = field_case("C7_gpio")[0]
    clock = ManualClock()
    cfg = StationConfig.model_validate(
        station_config_data(
            tmp_path, scanner_pty, rfid={"backend": "mfrc522", "poll_deadline_ms": 50}
        )
    )
    daemon = StationDaemon(cfg, clock=clock)
    eye = daemon.devices.pin_factory.pin(4)
    daemon.start()
    try:
        # C2: a reader whose bus call never returns must not hold up the decision.
        chip.hang.set()
        for t_ms, level in case["photo_eye_edges_ms"]:
            clock.set(float(t_ms))
            eye.drive_high() if level == "blocked" else eye.drive_low()
        clock.set(10_000.0)
        wait_until(lambda: len(events_in_outbox(daemon)) == 1, timeout_s=20.0)
        assert daemon.core.counters["inducted"] == case["expect_parcels"] == 1
        (event,) = events_in_outbox(daemon)
        assert case["expect_length_ms_approx"] == 150
        assert event["length_mm"] == 150.0  # 150 ms at 1000 mm/s, bounce ignored
        assert (event["lane"], event["reason"]) == ("quarantine", Reason.NO_READ.value)
        assert daemon.status()["photo_eye"] == {
            "state": "ok",
            "blocked": False,
            "edges": 8,
            "timestamps": "clock",  # a manual clock: stamped as the callback runs
        }
    finally:
        chip.release.set()
        daemon.stop()


# -- devices, self-test and degraded running ------------------------------------------------
def test_rfid_and_camera_run_under_the_daemon_and_reads_reach_the_hook(
    tmp_path: Path, scanner_pty: str, chip: MFRC522Emulator
) -> None:
    video = write_video(tmp_path / "cam.avi", list(range(1, 40)))
    cfg = StationConfig.model_validate(
        station_config_data(
            tmp_path,
            scanner_pty,
            rfid={"backend": "mfrc522", "poll_interval_ms": 5},
            camera=video_camera(video),
        )
    )
    daemon = StationDaemon(cfg)
    status = daemon.status()
    assert status["devices"]["rfid"] == {
        "state": "ok",
        "backend": "mfrc522",
        "detail": "MFRC522 v2.0 (VersionReg 92h)",
    }
    assert status["devices"]["camera"]["state"] == "ok"
    daemon.start()
    try:
        chip.place(VirtualTag(bytes.fromhex("047DB1A2B3C4D5"), sak=0x00))
        wait_until(lambda: any(isinstance(e, TagRead) for e in daemon.rfid_events), timeout_s=20.0)
        eye = daemon.devices.pin_factory.pin(4)
        eye.drive_high()
        wait_until(lambda: len(daemon.camera.photos) == 1, timeout_s=20.0)
        wait_until(lambda: daemon.devices.scanner.status()["state"] == "ok", timeout_s=20.0)
        eye.drive_low()
        assert daemon.devices.capabilities() == [
            "induct",
            "barcode",
            "rfid",
            "camera",
            "lane:restock",
            "lane:recycle",
        ]
    finally:
        daemon.stop()
    reads = [e for e in daemon.rfid_events if isinstance(e, TagRead)]
    assert [(r.uid, r.episode) for r in reads] == [("047DB1A2B3C4D5", 1)]
    assert (daemon.camera.photos[0].ok, daemon.camera.photos[0].rejected) == (True, ())


def test_failed_devices_leave_the_station_degraded_and_never_divert_on_a_broken_gate(
    tmp_path: Path, scanner_pty: str
) -> None:
    data = station_config_data(
        tmp_path,
        scanner_pty,
        rfid={"backend": "mfrc522", "spi_bus": 1, "rst_pin": 5},  # nothing on SPI1
        camera={"backend": "opencv", "source": str(tmp_path / "no-camera.avi"), "api": "ffmpeg"},
        stack_light={"green_pin": 23, "amber_pin": 24, "red_pin": 12},
    )
    data["lanes"][0]["gate_pin"] = 40  # not on the 40-pin header: the gate cannot be driven
    data["photo_eye"]["pin"] = 41
    daemon = StationDaemon(StationConfig.model_validate(data))
    try:
        st = daemon.status()
        assert st["degraded"] is True
        assert st["devices"]["gate.restock"]["state"] == "failed"
        assert (
            st["devices"]["gate.restock"]["detail"] == "PinInvalidPin: 40 is not a valid pin name"
        )
        assert st["devices"]["rfid"]["state"] == "failed"
        assert "/dev/spidev1.0" in str(st["devices"]["rfid"]["detail"])
        assert st["devices"]["camera"]["state"] == "failed"
        assert st["devices"]["photo_eye"] == {
            "state": "failed",
            "backend": "gpiozero",
            "detail": "PinInvalidPin: 41 is not a valid pin name",
        }
        assert st["photo_eye"] is None
        assert daemon.devices.capabilities() == ["lane:recycle"]  # no induct: nothing will divert
        daemon.start()  # it still runs (status published, RMAs synced), visibly degraded
        assert daemon.alive() is True
        pin = daemon.devices.pin_factory.pin
        assert [pin(n).state for n in (23, 24, 12)] == [0, 0, 1]  # red: cannot sort
        assert list(daemon.devices.gates) == ["recycle"]
        assert [lane.name for lane in daemon.core.config.lanes] == ["recycle", "quarantine"]
    finally:
        daemon.stop()


def test_outputs_off_at_start_on_while_running_off_at_stop(
    tmp_path: Path, scanner_pty: str
) -> None:
    data = station_config_data(
        tmp_path,
        scanner_pty,
        belt_run={"pin": 23},
        stack_light={"green_pin": 5, "amber_pin": 6, "red_pin": 13},
        encoder={"pin_a": 20, "pin_b": 21, "mm_per_pulse": 2.5},
    )
    data["lanes"][0]["confirm_pin"] = 24
    data["lanes"][0]["full_pin"] = 12
    daemon = StationDaemon(StationConfig.model_validate(data))
    pin = daemon.devices.pin_factory.pin
    assert [pin(n).state for n in (23, 5, 6, 13)] == [0, 0, 0, 0]
    daemon.start()
    try:
        assert pin(23).state == 1  # belt runs
        wait_until(lambda: daemon.devices.scanner.status()["state"] == "ok", timeout_s=20.0)
        daemon.update_stack_light()  # the main loop does this every 0.5 s
        assert [pin(n).state for n in (5, 6, 13)] == [1, 0, 0]  # green: all devices ok
        assert daemon.alive() is True
        pin(24).drive_high()
        pin(12).drive_high()
        wait_until(lambda: len(daemon.lane_input_events) == 2, timeout_s=20.0)
        assert [(e.name, e.active) for e in daemon.lane_input_events] == [
            ("restock.confirm", True),
            ("restock.full", True),
        ]
        for _ in range(4):  # quadrature: A leads B, one detent forward each cycle
            pin(20).drive_low(), pin(21).drive_low(), pin(20).drive_high(), pin(21).drive_high()
        assert daemon.status()["encoder"] == {
            "state": "ok",
            "pulses": 4,
            "position_mm": 10.0,
            "timestamps": "mock",
        }
    finally:
        daemon.stop()
    assert [pin(n).state for n in (23, 5, 6, 13)] == [0, 0, 0, 0]


# -- C7: SIGTERM and crash in a real process ------------------------------------------------
def run_child(
    tmp_path: Path, mode: str, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], Path]:
    log_path = tmp_path / "pins.log"
    cfg = tmp_path / "station.toml"
    data = station_config_data(tmp_path, str(tmp_path / "no-scanner"))
    lines = [
        f'[station]\nid = "st1"\nsite = "s1"\ndata_dir = "{tmp_path / "data"}"',
        '[mqtt]\nport = 1\n[gpio]\npin_factory = "mock"\n[photo_eye]\npin = 4',
        f'[scanner]\nurl = "{data["scanner"]["url"]}"',
        "[belt]\nspeed_mm_s = 1000\nscan_pos_mm = 400\nlength_mm = 3000",
        '[[lanes]]\nname = "restock"\ndisposition = "restock"\npos_mm = 1500\ngate_pin = 17',
        '[[lanes]]\nname = "recycle"\ndisposition = "recycle"\npos_mm = 2300\ngate_pin = 22\n'
        "active_high = false",
    ]
    cfg.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "GPIOZERO_MOCK_PIN_CLASS": "recording", ENV_LOG: str(log_path)}
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.hw.station_child", str(cfg), mode],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the child energised its gates (or died)
    assert line.strip() == "ENERGISED", proc.stderr.read() if proc.stderr else line
    return proc, log_path


@pytest.mark.parametrize("mode", ["sigterm", "crash"])
def test_c7_gates_are_de_energised_before_the_process_exits(tmp_path: Path, mode: str) -> None:
    sock_dir = Path(tempfile.mkdtemp(prefix="rs-"))  # short: AF_UNIX paths are limited
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(sock_dir / "notify"))
    notify.settimeout(20)
    env = {"NOTIFY_SOCKET": str(sock_dir / "notify"), "WATCHDOG_USEC": "200000"}
    env.pop("WATCHDOG_PID", None)
    proc, log_path = run_child(tmp_path, "wait" if mode == "sigterm" else "crash", env)
    messages = [notify.recv(4096).decode()]
    assert messages[0].startswith("READY=1\nSTATUS=induct")
    if mode == "sigterm":
        messages.append(notify.recv(4096).decode())  # the main loop's watchdog keep-alive
        assert messages[1] == "WATCHDOG=1"
        assert last_states(log_path)["GPIO17"] == 1 and last_states(log_path)["GPIO22"] == 0
        proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    gates = [(n, lvl) for n, f, lvl in read_log(log_path) if n in ("GPIO17", "GPIO22")]
    # each gate: set up off, energised (17 high, 22 low: active-low), then off again
    assert gates[-2:] in ([("GPIO17", 0), ("GPIO22", 1)], [("GPIO22", 1), ("GPIO17", 0)])
    assert ("GPIO17", 1) in gates and ("GPIO22", 0) in gates
    assert last_states(log_path)["GPIO17"] == 0 and last_states(log_path)["GPIO22"] == 1
    messages.append(notify.recv(4096).decode())
    while messages[-1] == "WATCHDOG=1":
        messages.append(notify.recv(4096).decode())
    notify.close()
    assert messages[-1] == "STOPPING=1"
    if mode == "sigterm":
        assert proc.returncode == 0
    else:
        assert proc.returncode == 1
        assert "RuntimeError: injected crash with gates energised" in stderr


def test_spi_pins_and_shared_pins_are_rejected_by_name(tmp_path: Path, scanner_pty: str) -> None:
    data = station_config_data(tmp_path, scanner_pty, rfid={"backend": "mfrc522"})
    data["lanes"][0]["gate_pin"] = 10  # SPI0 MOSI
    with pytest.raises(
        ValueError,
        match=r"SPI0 of the RFID reader needs pins used by: "
        r"lanes\.restock\.gate_pin \(GPIO10\)",
    ):
        StationConfig.model_validate(data)
    data = station_config_data(tmp_path, scanner_pty, belt_run={"pin": 4})
    with pytest.raises(ValueError, match=r"GPIO4 is used twice: photo_eye\.pin and belt_run\.pin"):
        StationConfig.model_validate(data)


def test_backend_is_never_replaced_when_its_library_is_missing(tmp_path: Path) -> None:
    """Off a Pi, without the simulator's fakes, the mfrc522 backend cannot load: a failed
    device with that reason, no other backend substituted, the station still starts."""
    script = (
        "import json, sys\n"
        "from edge.config import StationConfig\n"
        "from edge.daemon import StationDaemon\n"
        "d = StationDaemon(StationConfig.model_validate(json.loads(sys.argv[1])))\n"
        "print(json.dumps(d.status()['devices']['rfid'])); d.stop()\n"
    )
    data = station_config_data(tmp_path, str(tmp_path / "no-scanner"), rfid={"backend": "mfrc522"})
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(data)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rfid = json.loads(out.strip().splitlines()[-1])
    if rfid["state"] == "ok":  # pragma: no cover - a machine with the Pi libraries
        pytest.skip("spidev and RPi.GPIO are installed here")
    assert rfid["backend"] == "mfrc522" and rfid["state"] == "failed"
    assert rfid["detail"].startswith("BackendUnavailable: backend 'mfrc522' cannot load: ")
