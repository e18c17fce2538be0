"""The daemon on mock pins: typed inputs reach the core, actions reach the station, gates are
de-energised on stop (C7), pushed policies survive a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import StationConfig
from edge.daemon import StationDaemon
from edge.drivers.framing import ScanFrame
from edge.sorter.model import Alarm, BeltCommand, Decision, Inducted, OrphanRead, Reason
from edge.station.inputs import EncoderCount, EyeEdge, Grade, LaneInput, Resume, Tick
from simulator.testing import ManualClock, announcement, station_config, wait_until

REPO = Path(__file__).resolve().parents[2]


def make_config(tmp_path: Path, scanner_pty: str) -> StationConfig:
    return station_config(tmp_path, scanner_pty)


@pytest.fixture
def daemon(tmp_path: Path, scanner_pty: str) -> Iterator[StationDaemon]:
    d = StationDaemon(make_config(tmp_path, scanner_pty))
    try:
        yield d
    finally:
        d.stop()


def test_stop_de_energises_every_gate_of_either_polarity(daemon: StationDaemon) -> None:
    pins = {n: daemon.devices.pin_factory.pin(p) for n, p in (("restock", 17), ("recycle", 22))}
    # off at start: active-high pin low, active-low pin high
    assert (pins["restock"].state, pins["recycle"].state) == (0, 1)
    daemon.start()
    daemon.devices.gates["restock"].energise()
    daemon.devices.gates["recycle"].energise()
    assert (pins["restock"].state, pins["recycle"].state) == (1, 0)
    daemon.stop()
    assert (pins["restock"].state, pins["recycle"].state) == (0, 1)


def test_typed_inputs_drive_the_core_and_its_actions_reach_the_station(
    tmp_path: Path, scanner_pty: str
) -> None:
    clock = ManualClock(0.0)
    daemon = StationDaemon(make_config(tmp_path, scanner_pty), clock)
    daemon.store.apply_announcement(announcement("RMA-000123"))
    try:
        actions = daemon.feed(EyeEdge(0.0, True)) + daemon.feed(EyeEdge(300.0, False))
        assert actions == [Inducted(1, 0.0)]  # accepted at the second edge, 300 ms later
        actions = daemon.feed(ScanFrame("RMA-000123", None, 550.0, False))
        clock.set(900.0)
        actions += daemon.feed(Tick())
        [decision] = [a for a in actions if isinstance(a, Decision)]
        assert (decision.lane.name, decision.reason, decision.reads) == (
            "restock",
            Reason.MATCHED,
            ("RMA-000123",),
        )
        assert daemon.feed(LaneInput(950.0, "recycle", "full", True)) == []
        assert daemon.core.status()["lanes_full"] == ["recycle"]
        assert [(e.name, e.active) for e in daemon.lane_input_events] == [("recycle.full", True)]
        # parcel 1 is decided: a grade for it now is an orphan
        assert daemon.feed(Grade(960.0, "A", 0.9, parcel_id=1)) == [OrphanRead("grade:A", 960.0)]
        assert daemon.feed(Resume(970.0)) == []  # no jam: nothing to resume
    finally:
        daemon.stop()


def test_a_bad_input_is_logged_and_the_reactor_goes_on(
    daemon: StationDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    daemon.start()
    daemon.submit(EncoderCount(10.0, 5))  # no [belt] encoder_mm_per_count: the core refuses
    daemon.submit(EyeEdge(daemon.clock(), True))
    wait_until(lambda: daemon.core.counters["inducted"] == 1, what="the next input handled")
    assert daemon.alive() is True
    assert "reactor failed on EncoderCount" in caplog.text


def test_jam_alarm_and_belt_stop_show_in_status(daemon: StationDaemon) -> None:
    daemon.execute(BeltCommand(False, 10.0, "jam"))
    daemon.execute(Alarm("jam", True, 10.0))
    status = daemon.status()
    assert status["belt_running"] is False
    assert status["alarms"] == {"jam": {"parcel_id": None, "lane": None}}
    daemon.execute(Alarm("jam", False, 20.0))
    daemon.execute(BeltCommand(True, 20.0, "resume"))
    assert daemon.status()["alarms"] == {} and daemon.status()["belt_running"] is True


def test_pushed_policy_is_validated_cached_and_used_after_a_restart(
    daemon: StationDaemon, tmp_path: Path, scanner_pty: str
) -> None:
    from edge.sorter.policy import default_policy, policy_to_mapping
    from protocol import ProtocolError
    from protocol.policy import DispositionPolicy

    daemon.start()
    wire = DispositionPolicy.model_validate(
        policy_to_mapping(default_policy(recalled_skus=("SKU-9",), version="site1-2"))
    )
    assert daemon.apply_policy(wire.model_dump_json().encode()) == "site1-2"
    wait_until(lambda: daemon.core.policy.version == "site1-2", what="policy applied")
    assert daemon.core.policy.rules[0].skus == ("SKU-9",)
    with pytest.raises(ProtocolError):
        daemon.apply_policy(b'{"kind": "policy", "version": ')
    unsafe = wire.model_dump()
    unsafe["rules"] = [{"disposition": "restock", "reason": "matched", "identity": "wrong_item"}]
    with pytest.raises(ValueError, match="may only quarantine"):
        daemon.apply_policy(DispositionPolicy.model_validate(unsafe).model_dump_json())
    daemon.stop()
    again = StationDaemon(make_config(tmp_path, scanner_pty))
    try:
        assert again.core.policy.version == "site1-2"
    finally:
        again.stop()


def test_a_gate_the_scheduler_reaches_too_late_is_not_fired_and_the_parcel_is_late_gate(
    tmp_path: Path, scanner_pty: str
) -> None:
    clock = ManualClock(0.0)
    daemon = StationDaemon(make_config(tmp_path, scanner_pty), clock)
    daemon.store.apply_announcement(announcement("RMA-000123"))
    gate = daemon.devices.pin_factory.pin(17)
    daemon.start()
    try:
        daemon.submit(EyeEdge(0.0, True))
        daemon.submit(EyeEdge(300.0, False))
        daemon.submit(ScanFrame("RMA-000123", None, 550.0, False))
        clock.set(900.0)
        wait_until(lambda: len(daemon.decisions) == 1, timeout_s=20.0)
        assert daemon.scheduler.pending() == 2  # restock opens at 1400 ms, margin 40 ms
        clock.set(1500.0)  # the station stalled: the open would come 100 ms late
        wait_until(lambda: "station_overloaded" in daemon.alarms, timeout_s=20.0)
        clock.set(10_000.0)
        wait_until(lambda: daemon.store.outbox_depth() == 1, timeout_s=20.0)
        [item] = daemon.store.outbox_pending()
        event = json.loads(item.payload)
        assert (event["lane"], event["reason"], event["diverted"]) == (
            "quarantine",
            "late_gate",
            False,
        )
        assert [s.state for s in gate.states] == [False]  # never energised
        assert daemon.scheduler.status()["refused_late"] == 1
        assert daemon.core.counters["late_gates"] == 1
    finally:
        daemon.stop()
