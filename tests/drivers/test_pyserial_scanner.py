"""PySerialScanner with real pyserial over pseudo-terminals: C3, C5 and unplug/replug."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.drivers.framing import ScanFrame
from edge.drivers.pyserial_scanner import PySerialScanner
from edge.drivers.scanner import BarcodeScanner
from simulator.testing import ManualClock, wait_until
from tests.cases import field_case
from tests.drivers.serial_fakes import Pty


class Collector:
    """Thread-safe on_scan sink."""

    def __init__(self) -> None:
        self.frames: list[ScanFrame] = []
        self._lock = threading.Lock()

    def __call__(self, frame: ScanFrame) -> None:
        with self._lock:
            self.frames.append(frame)

    def codes(self) -> list[str]:
        with self._lock:
            return [f.code for f in self.frames]


@pytest.fixture
def pty_factory() -> Iterator[Callable[[], Pty]]:
    made: list[Pty] = []

    def make() -> Pty:
        pty = Pty()
        made.append(pty)
        return pty

    yield make
    for pty in made:
        pty.close()


@pytest.fixture
def scanners() -> Iterator[list[PySerialScanner]]:
    """Scanners appended here are stopped at teardown even if the test fails."""
    started: list[PySerialScanner] = []
    yield started
    for scanner in started:
        scanner.stop()


def start_scanner(
    scanners: list[PySerialScanner], url: str, **kwargs: Any
) -> tuple[PySerialScanner, Collector]:
    scanner = PySerialScanner(url, **kwargs)
    sink = Collector()
    scanners.append(scanner)
    scanner.start(sink)
    # pyserial flushes the input buffer on open: write only once the port is open.
    wait_until(lambda: scanner.status()["state"] == "ok", what="port open")
    return scanner, sink


def let_silence_pass(scanner: PySerialScanner, clock: ManualClock, silence_ms: float) -> None:
    """Wait until the reader buffered the fragment, then advance the clock past it."""
    wait_until(lambda: scanner.status()["buffered_bytes"] != 0, what="fragment buffered")
    before = scanner.status()["stale_drops"]
    clock.advance(silence_ms)
    wait_until(lambda: scanner.status()["stale_drops"] != before, what="stale drop")


def feed_case(pty: Pty, scanner: PySerialScanner, clock: ManualClock, chunks: list[Any]) -> None:
    for chunk in chunks:
        if isinstance(chunk, dict):
            let_silence_pass(scanner, clock, float(chunk["silence_ms"]))
        else:
            pty.write(bytes.fromhex(chunk))
            clock.advance(10.0)


def _case_params() -> list[tuple[str, int]]:
    keys = ("C3_framing", "C5_noise")
    return [(key, i) for key in keys for i in range(len(field_case(key)))]


def test_implements_interface() -> None:
    assert isinstance(PySerialScanner("loop://"), BarcodeScanner)


@pytest.mark.parametrize(("case_key", "index"), _case_params())
def test_field_cases_over_pty(
    case_key: str, index: int, pty_factory: Callable[[], Pty], scanners: list[PySerialScanner]
) -> None:
    case = field_case(case_key)[index]
    pty = pty_factory()
    clock = ManualClock(1000.0)
    scanner, sink = start_scanner(scanners, pty.path, clock=clock)
    feed_case(pty, scanner, clock, case["chunks_hex"])
    pty.write(b"END\r")  # sentinel: everything before it has been framed
    expected = [*case["expect_codes"], "END"]
    wait_until(lambda: sink.codes() == expected, what=f"codes {expected}")
    for never in case.get("never_emit", []):
        assert never not in sink.codes()
    status = scanner.status()
    assert status["codes_read"] == len(expected)
    assert status["state"] == "ok"
    json.dumps(status)


def test_c3_stale_fragment_with_real_clock(
    pty_factory: Callable[[], Pty], scanners: list[PySerialScanner]
) -> None:
    pty = pty_factory()
    scanner, sink = start_scanner(scanners, pty.path, inter_byte_timeout_ms=40)
    pty.write(b"ABC")
    wait_until(lambda: scanner.status()["stale_drops"] == 1, what="stale drop")
    pty.write(b"DEF\r")
    wait_until(lambda: sink.codes() == ["DEF"], what="DEF")
    assert scanner.status()["buffered_bytes"] == 0


def test_c5_counts_noise_and_probe(
    pty_factory: Callable[[], Pty], scanners: list[PySerialScanner]
) -> None:
    pty = pty_factory()
    scanner, sink = start_scanner(scanners, pty.path)
    pty.write(bytes.fromhex("FF0041540D"))
    pty.write(b"\x00RMA-000124\r")
    wait_until(lambda: sink.codes() == ["RMA-000124"], what="code")
    assert sink.frames[0].had_noise
    status = scanner.status()
    assert status["ignored_frames"] == 1
    assert status["noise_frames"] == 2  # the probe's FF 00 and the NUL before the code


def test_garbled_read_is_dropped_and_counted(
    pty_factory: Callable[[], Pty], scanners: list[PySerialScanner]
) -> None:
    pty = pty_factory()
    scanner, sink = start_scanner(scanners, pty.path)
    pty.write(b"RMA-000\xb123\r")
    pty.write(b"RMA-000125\r")
    wait_until(lambda: sink.codes() == ["RMA-000125"], what="code")
    wait_until(lambda: scanner.status()["garbled_drops"] == 1, what="garbled count")
    assert sink.codes() == ["RMA-000125"]
    assert scanner.status()["noise_frames"] == 1


def test_gs1_scan_keeps_gs_and_splits_aim(
    pty_factory: Callable[[], Pty], scanners: list[PySerialScanner]
) -> None:
    scan = bytes.fromhex(field_case("C4_gs1")[0]["scan_hex"])
    pty = pty_factory()
    _, sink = start_scanner(scanners, pty.path)
    pty.write(scan)
    wait_until(lambda: len(sink.codes()) == 1, what="GS1 scan")
    assert sink.frames[0].symbology == "]C1"
    assert sink.frames[0].code == "01095011010209171725123110ABC123\x1d21SN0001"


def test_callback_exception_does_not_kill_reader(
    pty_factory: Callable[[], Pty], scanners: list[PySerialScanner]
) -> None:
    pty = pty_factory()
    got: list[str] = []

    def flaky(frame: ScanFrame) -> None:
        got.append(frame.code)
        if frame.code == "BOOM":
            raise RuntimeError("consumer bug")

    scanner = PySerialScanner(pty.path)
    scanners.append(scanner)
    scanner.start(flaky)
    wait_until(lambda: scanner.status()["state"] == "ok", what="port open")
    pty.write(b"BOOM\rRMA-000125\r")
    wait_until(lambda: got == ["BOOM", "RMA-000125"], what="both codes")
    assert scanner.status()["callback_errors"] == 1
    assert scanner.status()["state"] == "ok"


def test_status_lifecycle_and_prompt_stop(
    pty_factory: Callable[[], Pty], scanners: list[PySerialScanner]
) -> None:
    pty = pty_factory()
    scanner = PySerialScanner(pty.path)
    assert scanner.status()["state"] == "stopped"
    scanner, _ = start_scanner(scanners, pty.path)
    status = scanner.status()
    assert status["port"] == pty.path
    assert status["device"] == os.path.realpath(pty.path)
    assert status["reopen_count"] == 0
    assert status["last_error"] is None
    json.dumps(status)
    started = time.monotonic()
    scanner.stop()
    assert time.monotonic() - started < 1.0
    assert scanner.status()["state"] == "stopped"
    scanner.stop()  # idempotent


def test_loop_url_opens() -> None:
    scanner = PySerialScanner("loop://")
    scanner.start(lambda frame: None)
    try:
        wait_until(lambda: scanner.status()["state"] == "ok", what="loop:// open")
        assert scanner.status()["device"] is None
    finally:
        scanner.stop()


def test_missing_device_degraded_until_it_appears(
    tmp_path: Path, pty_factory: Callable[[], Pty], scanners: list[PySerialScanner]
) -> None:
    link = tmp_path / "usb-Scanner-if00"
    scanner = PySerialScanner(str(link), reopen_backoff_s=(0.01, 0.05))
    scanners.append(scanner)
    sink = Collector()
    scanner.start(sink)
    wait_until(lambda: scanner.status()["open_failures"] not in (0, 1), what="open retries")
    status = scanner.status()
    assert status["state"] == "degraded"
    assert "open failed" in str(status["last_error"])
    pty = pty_factory()
    link.symlink_to(pty.path)
    wait_until(lambda: scanner.status()["state"] == "ok", what="port open")
    assert scanner.status()["reopen_count"] == 0  # first successful open
    pty.write(b"RMA-000126\r")
    wait_until(lambda: sink.codes() == ["RMA-000126"], what="code")


def _repoint(link: Path, target: str) -> None:
    tmp = link.with_name(link.name + ".new")
    tmp.symlink_to(target)
    os.replace(tmp, link)


def test_unplug_and_replug_under_another_tty(
    tmp_path: Path, pty_factory: Callable[[], Pty], scanners: list[PySerialScanner]
) -> None:
    link = tmp_path / "usb-Scanner_SN123-if00"  # the /dev/serial/by-id stand-in
    pty1 = pty_factory()
    link.symlink_to(pty1.path)
    scanner, sink = start_scanner(scanners, str(link), reopen_backoff_s=(0.02, 0.2))
    assert scanner.status()["device"] == pty1.path

    pty1.write(b"RMA-000001\rRMA-PART")
    wait_until(lambda: sink.codes() == ["RMA-000001"], what="first code")
    wait_until(lambda: scanner.status()["buffered_bytes"] == 8, what="partial buffered")

    pty1.close_master()  # unplug
    wait_until(lambda: scanner.status()["state"] == "degraded", what="degraded")
    status = scanner.status()
    assert "port lost" in str(status["last_error"])
    assert status["partial_drops"] == 1
    assert status["buffered_bytes"] == 0
    pty1.close()

    pty2 = pty_factory()  # replug: may get another /dev/pts number
    _repoint(link, pty2.path)
    wait_until(lambda: scanner.status()["state"] == "ok", what="reopened")
    status = scanner.status()
    assert status["reopen_count"] == 1
    assert status["device"] == pty2.path

    pty2.write(b"TIAL\rRMA-000002\r")
    wait_until(lambda: len(sink.codes()) == 3, what="codes after replug")
    assert sink.codes() == ["RMA-000001", "TIAL", "RMA-000002"]
    assert "RMA-PARTTIAL" not in sink.codes()
    status = scanner.status()
    assert status["codes_read"] == 3
    assert status["state"] == "ok"
    assert status["reopen_count"] == 1
    json.dumps(status)
