"""Physical controls and the belt commands through the real daemon on gpiozero mock pins.

E-stop (a normally-closed loop: engaged while its pin reads low) drops every gate and the
belt-run output at once and holds the belt until the E-stop is released *and* the reset
button (or a ``resume`` command) is pressed; the stack light follows. A jam is resumed by
the reset button or the ``resume`` command; ``pause`` / ``run`` hold and release the belt.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge.daemon import StationDaemon
from protocol import Command, CommandName
from simulator.testing import station_config, wait_until

EYE, GATE, BELT, GREEN, RED, RESET, ESTOP = 4, 17, 5, 6, 13, 19, 26


@pytest.fixture
def station(
    tmp_path: Path, scanner_pty: str, started_daemon: Callable[..., StationDaemon]
) -> Callable[..., StationDaemon]:
    """``station(estop_closed=True, **belt)``: a started daemon with E-stop, reset, lights."""

    def build(*, estop_closed: bool = True, **belt: Any) -> StationDaemon:
        config = station_config(
            tmp_path,
            scanner_pty,
            belt={"speed_mm_s": 1000, "scan_pos_mm": 400, "length_mm": 3000, **belt},
            belt_run={"pin": BELT},
            stack_light={"green_pin": GREEN, "red_pin": RED},
            controls={"reset_pin": RESET, "estop_pin": ESTOP},
        )

        def close_the_loop(daemon: StationDaemon) -> None:
            if estop_closed:
                daemon.devices.pin_factory.pin(ESTOP).drive_high()

        return started_daemon(config, close_the_loop)

    return build


def pin(daemon: StationDaemon, number: int) -> int:
    return int(daemon.devices.pin_factory.pin(number).state)


def command(name: CommandName) -> Command:
    return Command(request_id=uuid.uuid4().hex, command=name, issued_at=datetime.now(UTC))


def press_reset(daemon: StationDaemon) -> None:
    button = daemon.devices.pin_factory.pin(RESET)
    button.drive_high()
    button.drive_low()


def test_estop_drops_gates_and_belt_at_once_and_needs_release_and_reset(
    station: Callable[..., StationDaemon],
) -> None:
    daemon = station()
    wait_until(lambda: pin(daemon, GREEN) == 1, what="green light")
    assert (pin(daemon, BELT), pin(daemon, RED)) == (1, 0)
    daemon.gates.open(99, "restock")  # a divert in progress
    assert pin(daemon, GATE) == 1

    daemon.devices.pin_factory.pin(ESTOP).drive_low()  # the mushroom is pressed
    # at once, on the input's own thread: no gate, no belt
    assert (pin(daemon, GATE), pin(daemon, BELT)) == (0, 0)
    wait_until(lambda: pin(daemon, RED) == 1, what="red light")
    status = daemon.status()
    assert status["estop_engaged"] is True
    assert status["belt_holds"] == ["estop"]
    assert status["belt_running"] is False
    assert "estop" in status["alarms"]  # type: ignore[operator]
    assert pin(daemon, GREEN) == 0
    daemon.gates.open(100, "restock")  # a late firing never energises a gate
    assert pin(daemon, GATE) == 0

    with pytest.raises(ValueError, match="emergency stop engaged"):
        daemon.commands.resume(command(CommandName.RESUME))
    with pytest.raises(ValueError, match="emergency stop engaged"):
        daemon.commands.run(command(CommandName.RUN))
    press_reset(daemon)  # refused while engaged
    assert daemon.status()["resets"] == 1
    daemon.devices.pin_factory.pin(ESTOP).drive_high()  # released: still stopped
    wait_until(lambda: daemon.status()["estop_engaged"] is False, what="released")
    assert (pin(daemon, BELT), pin(daemon, RED)) == (0, 1)

    press_reset(daemon)
    wait_until(lambda: pin(daemon, BELT) == 1, what="belt runs after reset")
    wait_until(lambda: pin(daemon, GREEN) == 1, what="green light again")
    status = daemon.status()
    assert (status["belt_holds"], status["belt_running"], status["resets"]) == ([], True, 2)
    assert "estop" not in status["alarms"]  # type: ignore[operator]
    daemon.gates.open(101, "restock")
    assert pin(daemon, GATE) == 1
    daemon.gates.close(101, "restock")


def test_an_estop_open_at_start_holds_the_belt(station: Callable[..., StationDaemon]) -> None:
    daemon = station(estop_closed=False)  # loop open (or a cut wire)
    wait_until(lambda: pin(daemon, RED) == 1, what="red light")
    assert pin(daemon, BELT) == 0
    assert daemon.status()["belt_holds"] == ["estop"]


def test_a_jam_is_resumed_by_the_reset_button(station: Callable[..., StationDaemon]) -> None:
    daemon = station(jam_ms=100)
    eye = daemon.devices.pin_factory.pin(EYE)
    eye.drive_high()  # a parcel sticks at the induct eye
    wait_until(lambda: pin(daemon, BELT) == 0, what="belt stopped by the jam")
    assert daemon.status()["belt_holds"] == ["jam"]
    assert "jam" in daemon.status()["alarms"]  # type: ignore[operator]
    eye.drive_low()  # taken off
    press_reset(daemon)
    wait_until(lambda: pin(daemon, BELT) == 1, what="belt runs after reset")
    assert daemon.status()["belt_holds"] == []
    assert "jam" not in daemon.status()["alarms"]  # type: ignore[operator]


def test_pause_and_run_commands_hold_and_release_the_belt(
    station: Callable[..., StationDaemon],
) -> None:
    daemon = station()
    assert daemon.commands.pause(command(CommandName.PAUSE)) == {"belt": "paused"}
    wait_until(lambda: pin(daemon, BELT) == 0, what="paused")
    assert daemon.status()["belt_holds"] == ["pause"]
    assert daemon.commands.resume(command(CommandName.RESUME)) == {"resumed": True}
    wait_until(lambda: daemon._inputs.empty(), what="resume taken by the reactor")
    assert daemon.status()["belt_holds"] == ["pause"]
    assert daemon.commands.run(command(CommandName.RUN)) == {"belt": "run"}
    wait_until(lambda: pin(daemon, BELT) == 1, what="running")
    assert daemon.status()["belt_holds"] == []


def test_reload_policy_without_a_cached_policy_is_refused(
    station: Callable[..., StationDaemon],
) -> None:
    daemon = station()
    with pytest.raises(ValueError, match="no valid disposition policy cached"):
        daemon.commands.reload_policy(command(CommandName.RELOAD_POLICY))
