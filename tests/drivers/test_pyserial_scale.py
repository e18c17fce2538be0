"""PySerialScale with real pyserial over pseudo-terminals: frames, garbage, silence, unplug."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.config import ScaleSection
from edge.drivers.pyserial_scale import PySerialScale
from edge.drivers.registry import BackendContext, make_scale
from edge.drivers.scale import Checkweigher, Weighing, WeighingDetector, WeightReading
from simulator.hw.indicator import ToledoIndicator, toledo_frame
from simulator.testing import ManualClock, station_config, wait_until
from tests.drivers.serial_fakes import Pty
from tests.drivers.test_toledo_format import A_KG3, KG, MOTION, OUT, B, C, frame

STABLE_1234 = frame(A_KG3, B | KG, C, "001234")


class Sink:
    """Thread-safe on_reading sink."""

    def __init__(self) -> None:
        self.readings: list[WeightReading] = []
        self._lock = threading.Lock()

    def __call__(self, reading: WeightReading) -> None:
        with self._lock:
            self.readings.append(reading)

    def grams(self) -> list[float]:
        with self._lock:
            return [r.weight_g for r in self.readings]


class Indicator:
    """A weighing indicator streaming one frame every ``period_s`` into a pty (a thread)."""

    def __init__(self, pty: Pty, payload: bytes, period_s: float = 0.02) -> None:
        self._pty, self._payload, self._period_s = pty, payload, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                self._pty.write(self._payload)
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


@pytest.fixture
def ptys() -> Iterator[Callable[[], Pty]]:
    made: list[Pty] = []

    def make() -> Pty:
        made.append(Pty())
        return made[-1]

    yield make
    for pty in made:
        pty.close()


@pytest.fixture
def scales() -> Iterator[list[PySerialScale]]:
    """Scales appended here are stopped at teardown even if the test fails."""
    started: list[PySerialScale] = []
    yield started
    for scale in started:
        scale.stop()


def start_scale(scales: list[PySerialScale], url: str, **kwargs: Any) -> tuple[PySerialScale, Sink]:
    scale = PySerialScale(url, **kwargs)
    sink = Sink()
    scales.append(scale)
    scale.start(sink)
    # pyserial flushes the input buffer on open: write only once the port is open.
    wait_until(lambda: scale.status()["state"] == "ok", what="port open")
    return scale, sink


def test_implements_interface() -> None:
    assert isinstance(PySerialScale("loop://"), Checkweigher)


def test_every_frame_kind_over_a_pty(ptys: Callable[[], Pty], scales: list[PySerialScale]) -> None:
    pty = ptys()
    clock = ManualClock(1000.0)
    scale, sink = start_scale(scales, pty.path, clock=clock)
    pty.write(STABLE_1234)
    pty.write(frame(A_KG3, B | KG | MOTION, C, "000990"))
    pty.write(frame(A_KG3, B | KG | OUT, C, "999999"))
    pty.write(frame(0x20 | 0x08 | 4, B, C, "000250", tare=None))  # 2.50 lb, short form
    wait_until(lambda: len(sink.grams()) == 4, what="four readings")
    first, moving, over, pounds = sink.readings
    assert (first.weight_g, first.stable, first.load, first.t_ms) == (1234.0, True, "ok", 1000.0)
    assert (moving.weight_g, moving.stable) == (990.0, False)
    assert over.load == "overload"
    assert (pounds.unit, pounds.weight_g, pounds.tare_g) == ("lb", 1133.980925, None)
    status = scale.status()
    assert (status["state"], status["readings"], status["bad_frames"]) == ("ok", 4, 0)
    assert status["last_reading"] == {
        "weight_g": 1133.981,
        "unit": "lb",
        "stable": True,
        "net": False,
        "load": "ok",
        "age_ms": 0.0,
    }
    json.dumps(status)


def test_garbage_and_bad_frames_are_counted_and_never_delivered(
    ptys: Callable[[], Pty], scales: list[PySerialScale]
) -> None:
    pty = ptys()
    scale, sink = start_scale(scales, pty.path)
    bad_sum = STABLE_1234[:-1] + b"\x00"
    pty.write(b"\xffAT\r\n" + bad_sum + frame(A_KG3, B | KG, C, "00A234") + STABLE_1234[:9])
    pty.write(frame(A_KG3, B | KG, C | 5, "001234") + STABLE_1234)
    wait_until(lambda: sink.grams() == [1234.0], what="the one good frame")
    wait_until(lambda: scale.status()["bad_frames"] == 5, what="five bad frames")
    status = scale.status()
    counts = {k: status[k] for k in (
        "garbage_frames", "checksum_errors", "malformed_frames", "truncated_frames",
        "unsupported_frames", "stale_frames", "partial_drops",
    )}  # fmt: skip
    assert counts == {
        "garbage_frames": 1,
        "checksum_errors": 1,
        "malformed_frames": 1,
        "truncated_frames": 1,
        "unsupported_frames": 1,
        "stale_frames": 0,
        "partial_drops": 0,
    }
    assert status["last_bad"] == "unsupported_unit: unit code 5"
    assert status["state"] == "ok"


def test_silence_makes_the_scale_degraded_until_frames_come_back(
    ptys: Callable[[], Pty], scales: list[PySerialScale]
) -> None:
    pty = ptys()
    clock = ManualClock(1000.0)
    scale, sink = start_scale(scales, pty.path, clock=clock, stale_after_ms=1000)
    pty.write(STABLE_1234)
    wait_until(lambda: sink.grams() == [1234.0])
    clock.advance(1001)
    status = scale.status()
    assert status["state"] == "degraded"
    assert status["last_error"] == "no valid weight frame for over 1000 ms"
    pty.write(STABLE_1234)
    wait_until(lambda: len(sink.grams()) == 2)
    assert scale.status()["state"] == "ok"


def test_a_checksum_mismatch_stream_says_why_it_is_silent(
    ptys: Callable[[], Pty], scales: list[PySerialScale]
) -> None:
    # The indicator sends no checksum but the station expects one: every frame is bad.
    pty = ptys()
    clock = ManualClock(1000.0)
    scale, sink = start_scale(scales, pty.path, clock=clock)
    pty.write(frame(A_KG3, B | KG, C, "001234", checksum=False) * 3)
    wait_until(lambda: scale.status()["bad_frames"] >= 2, what="bad frames")
    clock.advance(1001)
    status = scale.status()
    assert sink.grams() == []
    assert status["state"] == "degraded"
    assert status["checksum_errors"] >= 1
    assert str(status["last_error"]).startswith(
        "no valid weight frame for over 1000 ms; last bad frame: "
    )


def test_unplug_and_replug_under_another_tty(
    tmp_path: Path, ptys: Callable[[], Pty], scales: list[PySerialScale]
) -> None:
    link = tmp_path / "usb-FTDI_Indicator-if00-port0"
    pty1 = ptys()
    link.symlink_to(pty1.path)
    scale, sink = start_scale(scales, str(link), reopen_backoff_s=(0.02, 0.2))
    pty1.write(STABLE_1234 + STABLE_1234[:12])
    wait_until(lambda: sink.grams() == [1234.0], what="first reading")
    wait_until(lambda: scale.status()["buffered_bytes"] == 12, what="partial frame buffered")
    pty1.close_master()  # unplug
    wait_until(lambda: scale.status()["state"] == "degraded", what="degraded")
    status = scale.status()
    assert "port lost" in str(status["last_error"])
    assert (status["partial_drops"], status["buffered_bytes"]) == (1, 0)
    pty1.close()

    pty2 = ptys()
    tmp = link.with_name(link.name + ".new")
    tmp.symlink_to(pty2.path)
    os.replace(tmp, link)
    wait_until(lambda: scale.status()["reopen_count"] == 1, what="reopened")
    pty2.write(STABLE_1234[12:] + frame(A_KG3, B | KG, C, "000500"))
    wait_until(lambda: len(sink.grams()) == 2, what="reading after replug")
    assert sink.grams() == [1234.0, 500.0]  # the cut frame was never completed
    status = scale.status()
    assert (status["state"], status["device"], status["garbage_frames"]) == ("ok", pty2.path, 1)


def test_self_test_waits_for_one_valid_frame(ptys: Callable[[], Pty]) -> None:
    pty = ptys()
    indicator = Indicator(pty, STABLE_1234)
    try:
        result = PySerialScale(pty.path, self_test_ms=2000).self_test()
    finally:
        indicator.stop()
    assert result == {"ok": True, "detail": "Toledo continuous: 1.234 kg gross, stable"}


def test_self_test_reports_silence_bad_frames_and_a_missing_port(
    tmp_path: Path, ptys: Callable[[], Pty]
) -> None:
    silent = ptys()
    assert PySerialScale(silent.path, self_test_ms=200).self_test() == {
        "ok": False,
        "detail": "no valid Toledo continuous frame in 200 ms",
    }
    noisy = ptys()
    indicator = Indicator(noisy, STABLE_1234[:-1] + b"\x00")  # a wrong checksum
    try:
        result = PySerialScale(noisy.path, self_test_ms=300).self_test()
    finally:
        indicator.stop()
    assert result["ok"] is False
    assert str(result["detail"]).startswith("no valid Toledo continuous frame in 300 ms (")
    assert "checksum" in str(result["detail"])
    missing = PySerialScale(str(tmp_path / "nothing"), self_test_ms=100).self_test()
    assert missing["ok"] is False
    assert str(missing["detail"]).startswith(f"cannot open {tmp_path / 'nothing'}:")


def test_self_test_of_a_running_scale_uses_its_readings(
    ptys: Callable[[], Pty], scales: list[PySerialScale]
) -> None:
    pty = ptys()
    clock = ManualClock(1000.0)
    scale, sink = start_scale(scales, pty.path, clock=clock)
    assert scale.self_test() == {
        "ok": False,
        "detail": "no valid weight frame for over 1000 ms",
    }
    pty.write(STABLE_1234)
    wait_until(lambda: sink.grams() == [1234.0])
    assert scale.self_test() == {"ok": True, "detail": "Toledo continuous: 1.234 kg gross, stable"}


def test_callback_errors_do_not_stop_the_reader(
    ptys: Callable[[], Pty], scales: list[PySerialScale]
) -> None:
    pty = ptys()
    got: list[float] = []

    def flaky(reading: WeightReading) -> None:
        got.append(reading.weight_g)
        if len(got) == 1:
            raise RuntimeError("consumer bug")

    scale = PySerialScale(pty.path)
    scales.append(scale)
    scale.start(flaky)
    wait_until(lambda: scale.status()["state"] == "ok")
    pty.write(STABLE_1234 * 2)
    wait_until(lambda: got == [1234.0, 1234.0])
    assert scale.status()["callback_errors"] == 1


def test_registry_builds_the_configured_backend(ptys: Callable[[], Pty], tmp_path: Path) -> None:
    pty = ptys()
    section = ScaleSection(url=pty.path, pos_mm=900, parity="E", bytesize=7, checksum=False)
    context = BackendContext(station_config(tmp_path, "loop://"))
    scale = make_scale(section, context)
    assert isinstance(scale, PySerialScale)
    status = scale.status()
    assert (status["state"], status["port"], status["checksum"]) == ("stopped", pty.path, False)


def test_the_simulator_indicator_drives_the_real_driver_and_detector() -> None:
    indicator = ToledoIndicator(period_s=0.01)
    detector = WeighingDetector(empty_g=20, settle_readings=3)
    weighings: list[Weighing] = []
    lock = threading.Lock()

    def on_reading(reading: WeightReading) -> None:
        with lock:
            weighings.extend(detector.feed(reading))

    scale = PySerialScale(indicator.path)
    scale.start(on_reading)
    try:
        indicator.start()
        wait_until(lambda: scale.status()["readings"] >= 3, what="empty platform readings")
        indicator.set_load(600.0, stable=False)  # riding on
        wait_until(lambda: detector.loaded, what="load seen")
        indicator.set_load(850.0)
        wait_until(lambda: len(weighings) == 1, what="a weighing")
        indicator.set_load(0.0)
        wait_until(lambda: not detector.loaded, what="platform empty")
    finally:
        scale.stop()
        indicator.close()
    [weighing] = weighings
    assert (weighing.weight_g, weighing.readings, weighing.problem) == (850.0, 3, None)
    assert weighing.t_on_ms <= weighing.t_ms < weighing.t_end_ms
    assert scale.status()["bad_frames"] in (0, 1)  # at most the frame cut at open


def test_indicator_frames_follow_the_format() -> None:
    assert toledo_frame(1234.0) == frame(A_KG3, B | KG, C, "001234")
    assert toledo_frame(-5.0, stable=False) == frame(A_KG3, B | KG | 0x02 | MOTION, C, "000005")
    assert toledo_frame(2_000_000.0) == frame(A_KG3, B | KG | OUT, C, "999999")
    assert toledo_frame(10.0, checksum=False) == frame(A_KG3, B | KG, C, "000010", checksum=False)
