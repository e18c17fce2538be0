"""The ``gate_test`` command on gpiozero mock pins: done only when the divert sensor confirms."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge.daemon import StationDaemon
from protocol import Command, CommandName, CommandReply, Topics, decode, encode
from simulator.testing import station_config, wait_until
from tests.gateway.conftest import MqttProbe

GATE_PIN, CONFIRM_PIN = 17, 23


def make_config(tmp_path: Path, scanner_url: str, *, site: str = "s1", port: int = 1) -> Any:
    return station_config(
        tmp_path,
        scanner_url,
        station={"id": "st1", "site": site, "data_dir": str(tmp_path)},
        mqtt={"host": "127.0.0.1", "port": port},  # port 1: the link keeps retrying
        belt={"speed_mm_s": 1000, "scan_pos_mm": 400, "length_mm": 3000, "confirm_timeout_ms": 150},
        lanes=[
            {
                "name": "restock",
                "disposition": "restock",
                "pos_mm": 1500,
                "gate_pin": GATE_PIN,
                "confirm_pin": CONFIRM_PIN,
            },
            {"name": "recycle", "disposition": "recycle", "pos_mm": 2300, "gate_pin": 22},
        ],
    )


@pytest.fixture
def station(
    tmp_path: Path, scanner_pty: str, started_daemon: Callable[..., StationDaemon]
) -> Callable[..., StationDaemon]:
    """Build (and at the end stop) daemons on mock pins with a pty for the scanner."""
    return lambda **kwargs: started_daemon(make_config(tmp_path, scanner_pty, **kwargs))


def command(**args: Any) -> Command:
    return Command(
        request_id=uuid.uuid4().hex,
        command=CommandName.GATE_TEST,
        issued_at=datetime.now(UTC),
        args=args,
    )


class Diverter:
    """A parcel-less divert: the confirm pin follows the gate pin after ``delay_s``."""

    def __init__(self, daemon: StationDaemon, delay_s: float = 0.03) -> None:
        self.gate = daemon.devices.pin_factory.pin(GATE_PIN)
        self.confirm = daemon.devices.pin_factory.pin(CONFIRM_PIN)
        self.delay_s = delay_s
        self.gate_was_high = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Diverter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.gate.state:
                self.gate_was_high = True
                time.sleep(self.delay_s)
                self.confirm.drive_high()
                while self.gate.state and not self._stop.is_set():
                    time.sleep(0.002)
                self.confirm.drive_low()
            time.sleep(0.002)


def test_confirmed_divert_is_done_and_the_gate_released(
    station: Callable[..., StationDaemon],
) -> None:
    daemon = station()
    with Diverter(daemon) as diverter:
        result = daemon.commands.gate_test(command(lane="restock", pulse_ms=200))
    assert diverter.gate_was_high
    assert result["lane"] == "restock"
    confirmed_after = result["confirmed_after_ms"]
    assert isinstance(confirmed_after, float) and 0 <= confirmed_after < 350
    assert daemon.devices.pin_factory.pin(GATE_PIN).state == 0
    assert daemon.gates.holds("restock") == frozenset()
    assert "divert_unconfirmed:restock" not in daemon.alarms


def test_unconfirmed_divert_fails_with_the_reason_and_the_gate_released(
    station: Callable[..., StationDaemon],
) -> None:
    daemon = station()
    gate_pin = daemon.devices.pin_factory.pin(GATE_PIN)
    seen_high = threading.Event()
    watcher = threading.Thread(
        target=lambda: (
            wait_until(lambda: gate_pin.state == 1, what="gate energised") and seen_high.set()
        ),
        daemon=True,
    )
    watcher.start()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"^divert not confirmed within 250 ms$"):
        daemon.commands.gate_test(command(lane="restock", pulse_ms=100))
    assert time.monotonic() - started >= 0.24
    watcher.join(2)
    assert seen_high.is_set()
    assert gate_pin.state == 0
    assert daemon.gates.holds("restock") == frozenset()
    wait_until(lambda: "divert_unconfirmed:restock" in daemon.alarms, what="alarm raised")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"lane": "recycle"}, "lane recycle has no divert-confirm sensor"),
        ({"lane": "nowhere"}, "unknown lane nowhere"),
        ({}, "gate_test needs a lane"),
        ({"lane": "restock", "pulse_ms": 10}, "pulse_ms must be 50..5000, not 10"),
    ],
)
def test_refused_commands_never_energise_a_gate(
    station: Callable[..., StationDaemon], args: dict[str, Any], reason: str
) -> None:
    daemon = station()
    with pytest.raises(ValueError) as refused:
        daemon.commands.gate_test(command(**args))
    assert str(refused.value) == reason
    assert daemon.devices.pin_factory.pin(GATE_PIN).state == 0
    assert daemon.devices.pin_factory.pin(22).state == 0


def test_refused_while_parcels_are_on_the_belt(station: Callable[..., StationDaemon]) -> None:
    daemon = station()
    daemon.devices.pin_factory.pin(4).drive_high()  # a parcel breaks the induct photo-eye
    wait_until(lambda: daemon.core.status()["on_belt"] == 1, what="parcel inducted")
    with (
        Diverter(daemon) as diverter,
        pytest.raises(ValueError, match="1 parcel\\(s\\) on the belt"),
    ):
        daemon.commands.gate_test(command(lane="restock"))
    assert not diverter.gate_was_high


def test_refused_while_a_gate_hold_is_active(station: Callable[..., StationDaemon]) -> None:
    daemon = station()
    daemon.gates.open(7, "restock")  # parcel 7 is being diverted
    with pytest.raises(ValueError, match="gate restock is held"):
        daemon.commands.gate_test(command(lane="restock"))
    assert daemon.gates.holds("restock") == frozenset({7})
    assert daemon.devices.pin_factory.pin(GATE_PIN).state == 1  # the divert goes on


def test_gate_test_through_the_broker_replies_accepted_then_done(
    station: Callable[..., StationDaemon], mqtt_broker: Any
) -> None:
    site = f"s{uuid.uuid4().hex[:10]}"
    daemon = station(site=site, port=mqtt_broker.port)
    topics = Topics(site, "st1")
    assert daemon.link.wait_connected(10)
    wait_until(lambda: daemon.link.counters["sync_requests"] >= 1, what="subscribed")
    gateway = MqttProbe(mqtt_broker.host, mqtt_broker.port, name="gw")
    try:
        gateway.subscribe(topics.command_reply)
        cmd = command(lane="restock", pulse_ms=150)
        with Diverter(daemon):
            gateway.publish(topics.command, encode(cmd))
            wait_until(lambda: len(gateway.payloads(topics.command_reply)) == 2, what="replies")
        accepted, done = (decode(p, CommandReply) for p in gateway.payloads(topics.command_reply))
        assert (accepted.request_id, accepted.state.value) == (cmd.request_id, "accepted")
        assert (done.request_id, done.state.value, done.detail) == (cmd.request_id, "done", "")
        assert done.result["lane"] == "restock"
        assert isinstance(done.result["confirmed_after_ms"], float)
        assert daemon.devices.pin_factory.pin(GATE_PIN).state == 0
    finally:
        gateway.close()
