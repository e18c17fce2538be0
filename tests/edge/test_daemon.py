"""The daemon on mock pins: typed inputs reach the core, actions reach the station, gates are
de-energised on stop (C7), pushed policies survive a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.config import StationConfig
from edge.daemon import StationDaemon
from edge.drivers.framing import ScanFrame
from edge.sorter.model import (
    Alarm,
    BeltCommand,
    Decision,
    Inducted,
    OrphanRead,
    ParcelExited,
    Reason,
)
from edge.station.inputs import ApplyPolicy, EncoderCount, EyeEdge, Grade, LaneInput, Resume, Tick
from protocol import ParcelEvent, RmaLine
from simulator.testing import (
    ManualClock,
    SteppableWall,
    announcement,
    label_trusting_policy,
    label_trusting_policy_payload,
    station_config,
    wait_until,
)

EAN = "4006381333931"  # the product's retail EAN-13: it verifies the RMA line's unit

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
    line = RmaLine(line_no=1, sku="SKU-1", quantity=1, gtin=EAN)
    daemon.store.apply_announcement(announcement("RMA-000123", line))
    try:
        actions = daemon.feed(EyeEdge(0.0, True)) + daemon.feed(EyeEdge(300.0, False))
        assert actions == [Inducted(1, 0.0)]  # accepted at the second edge, 300 ms later
        actions = daemon.feed(ScanFrame("RMA-000123", None, 550.0, False))
        actions += daemon.feed(ScanFrame(EAN, None, 551.0, False))
        clock.set(900.0)
        actions += daemon.feed(Tick())
        [decision] = [a for a in actions if isinstance(a, Decision)]
        assert (decision.lane.name, decision.reason, decision.reads) == (
            "restock",
            Reason.MATCHED,
            ("RMA-000123", "gs1:04006381333931/"),
        )
        assert [(u.evidence.value, u.verified) for u in decision.units] == [("gtin", True)]
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
    daemon.apply_policy(label_trusting_policy_payload())  # label-only parcels
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


def test_claimed_units_go_out_with_the_event_and_survive_a_restart(
    tmp_path: Path, scanner_pty: str
) -> None:
    line = RmaLine(line_no=1, sku="SKU-1", quantity=1, gtin=EAN)

    def one_parcel(daemon: StationDaemon, clock: ManualClock) -> Decision:
        actions = daemon.feed(EyeEdge(0.0, True)) + daemon.feed(EyeEdge(300.0, False))
        actions += daemon.feed(ScanFrame("RMA-000123", None, 550.0, False))
        actions += daemon.feed(ScanFrame(EAN, None, 551.0, False))
        for t in range(600, 4000, 50):
            clock.set(float(t))
            actions += daemon.feed(Tick())
        for action in actions:
            daemon.execute(action)  # the exit writes the event and its receipts
        [decision] = [a for a in actions if isinstance(a, Decision)]
        return decision

    clock = ManualClock(0.0)
    daemon = StationDaemon(make_config(tmp_path, scanner_pty), clock)
    daemon.store.apply_announcement(announcement("RMA-000123", line))
    try:
        first = one_parcel(daemon, clock)
        [item] = daemon.store.outbox_pending()
        event = json.loads(item.payload)
        assert [(u["unit"], u["evidence"], u["verified"]) for u in event["units"]] == [
            (1, "gtin", True)
        ]
        assert [c["code_class"] for c in event["codes"]] == ["rma_label", "retail"]
        assert daemon.store.claimed_units("RMA-000123") == {1: 1}
    finally:
        daemon.stop()
    assert first.reason is Reason.MATCHED
    clock = ManualClock(0.0)
    again = StationDaemon(make_config(tmp_path, scanner_pty), clock)  # a restart
    try:
        second = one_parcel(again, clock)
    finally:
        again.stop()
    assert (second.reason, second.units) == (Reason.QUANTITY_EXCEEDED, ())


def test_a_parcel_known_only_by_its_carrier_barcode_is_sorted_to_its_lane(
    tmp_path: Path, scanner_pty: str
) -> None:
    ups = "1Z999AA10123456784"
    clock = ManualClock(0.0)
    daemon = StationDaemon(make_config(tmp_path, scanner_pty), clock)
    daemon.store.apply_announcement(announcement("RMA-000123", tracking_number=ups))
    try:
        daemon.feed(ApplyPolicy(label_trusting_policy()))  # label-level identity is enough
        actions = daemon.feed(EyeEdge(0.0, True)) + daemon.feed(EyeEdge(300.0, False))
        actions += daemon.feed(ScanFrame(ups, None, 550.0, False))  # no RMA label read
        for t in range(600, 4000, 50):
            clock.set(float(t))
            actions += daemon.feed(Tick())
        for action in actions:
            daemon.execute(action)
        [decision] = [a for a in actions if isinstance(a, Decision)]
        assert (decision.lane.name, decision.reason, decision.rma_number) == (
            "restock",
            Reason.MATCHED,
            "RMA-000123",
        )
        [item] = daemon.store.outbox_pending()
        event = ParcelEvent.model_validate_json(item.payload)
        assert (event.rma_number, event.lane) == ("RMA-000123", "restock")
        assert event.barcode == f"tracking:{ups}"
        assert [(c.code_class.value, c.value) for c in event.codes] == [("tracking", ups)]
        assert [(u.unit, u.evidence.value, u.verified) for u in event.units] == [
            (1, "label", False)
        ]
        assert f"identified by carrier tracking number {ups}" in event.explanation
    finally:
        daemon.stop()


def induct_with_label(daemon: StationDaemon, code: str) -> float:
    """A 300 mm parcel at 1 m/s past the photo-eye (GPIO4), its label read in the scan
    tunnel (400 mm) as its centre passes; returns the induct time (station ms)."""
    eye = daemon.devices.pin_factory.pin(4)
    t0 = daemon.clock()
    eye.drive_high()
    wait_until(lambda: daemon.clock() >= t0 + 300, what="300 mm of parcel", poll_s=0.005)
    eye.drive_low()
    wait_until(lambda: daemon.clock() >= t0 + 550, what="parcel at the scanner", poll_s=0.005)
    daemon.submit(ScanFrame(code, None, daemon.clock(), False))
    return t0


def test_a_full_lane_overflows_into_its_overflow_lane_on_the_real_daemon(
    tmp_path: Path, scanner_pty: str
) -> None:
    lanes = [
        {"name": "restock", "disposition": "restock", "pos_mm": 1500, "gate_pin": 17,
         "full_pin": 23, "overflow": "restock2"},
        {"name": "restock2", "disposition": "restock", "pos_mm": 2000, "gate_pin": 22},
    ]  # fmt: skip
    daemon = StationDaemon(station_config(tmp_path, scanner_pty, lanes=lanes))
    daemon.store.apply_announcement(announcement("RMA-000123"))
    pins = daemon.devices.pin_factory
    try:
        daemon.apply_policy(label_trusting_policy_payload())  # label-only parcels
        daemon.start()
        pins.pin(23).drive_high()  # the restock lane is full
        wait_until(lambda: daemon.core.status()["lanes_full"] == ["restock"], what="lane full")
        induct_with_label(daemon, "RMA-000123")
        wait_until(lambda: len(daemon.decisions) == 1, what="the decision", timeout_s=5)
        [decision] = daemon.decisions
        assert (decision.lane.name, decision.reason) == ("restock2", Reason.MATCHED)
        assert "lane restock full: overflow lane restock2" in decision.explanation
        wait_until(lambda: pins.pin(22).state == 1, what="restock2's gate fires", timeout_s=5)
        assert pins.pin(17).state == 0  # never the full lane's gate
    finally:
        daemon.stop()


@pytest.mark.realtime  # parcels on a real-time belt: run one at a time (Makefile)
def test_an_ntp_step_mid_run_keeps_records_true_utc_and_gates_on_time(
    tmp_path: Path, scanner_pty: str
) -> None:
    wall = SteppableWall()
    wall.step(-3600)  # booted without a battery clock: an hour behind
    exits: list[tuple[ParcelEvent, ParcelExited]] = []
    daemon = StationDaemon(
        station_config(tmp_path, scanner_pty), on_event=lambda e, x: exits.append((e, x))
    )
    daemon.utc.set_wall(wall)
    for n in ("RMA-000001", "RMA-000002"):
        daemon.store.apply_announcement(announcement(n))
    try:
        daemon.apply_policy(label_trusting_policy_payload())  # label-only parcels
        daemon.start()
        induct_with_label(daemon, "RMA-000001")
        first_true_utc = datetime.now(UTC)
        wait_until(lambda: len(daemon.decisions) == 1, what="first decision", timeout_s=5)
        wall.step(+3600)  # NTP steps the clock while the first parcel is on the belt
        second = induct_with_label(daemon, "RMA-000002")
        second_true_utc = datetime.now(UTC)
        wait_until(lambda: len(exits) == 2, what="both parcels out", timeout_s=10)
        for (event, exited), true_utc in zip(exits, (first_true_utc, second_true_utc), strict=True):
            # the induct time in the record is the corrected UTC (not an hour behind)
            assert abs(event.inducted_at - true_utc) < timedelta(seconds=1)
            assert (exited.final_lane.name, exited.marks) == ("restock", ())
        # gates: timed on the monotonic clock, as if nothing happened
        [_, (_, exited2)] = exits
        assert exited2.inducted_at_ms == pytest.approx(second, abs=50)
        clock = daemon.status()["clock"]
        assert isinstance(clock, dict)
        assert (clock["steps"], round(float(clock["last_step_s"]))) == (1, 3600)
    finally:
        daemon.stop()
