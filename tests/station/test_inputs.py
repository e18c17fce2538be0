"""The reactor's inputs: every kind is handled by the daemon's one match, none is lost."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from edge.daemon import StationDaemon
from edge.drivers.camera import Photo
from edge.drivers.framing import ScanFrame
from edge.drivers.rfid import TagRead, TagReadFailed
from edge.drivers.scale import Weighing
from edge.sorter.model import Alarm, OrphanRead
from edge.sorter.policy import default_policy
from edge.station.inputs import (
    ApplyPolicy,
    BeltHold,
    EncoderCount,
    EyeEdge,
    GateLate,
    Grade,
    LaneInput,
    PhotoGraded,
    RaiseAlarm,
    Resume,
    StationInput,
    Tick,
)
from edge.vision.worker import GradedPhoto
from simulator.testing import station_config

ONE_OF_EACH: list[object] = [
    EyeEdge(0.0, True),
    ScanFrame("RMA-1", None, 1.0, False),
    TagRead("DD17380A", 2.0, 1, 0x08),
    TagReadFailed("bad_bcc", 3.0),
    Photo(False, 4.0, reason="all_black", tag=1),
    Weighing(4.5, 4.6, 4.4, None, 0, "not_settled"),  # no [scale] here: an orphan read
    PhotoGraded(GradedPhoto(Photo(False, 4.0, reason="all_black", tag=1), None, None)),
    Grade(5.0, "A"),
    LaneInput(6.0, "restock", "confirm", True),
    EncoderCount(7.0, 3),  # the core refuses it (no encoder on this belt): a ValueError
    GateLate(7.5, 99, "restock", 41.0),  # a parcel not on the belt: only the alarm
    Resume(8.0),
    BeltHold(8.5, "pause", True),
    ApplyPolicy(default_policy(version="p2")),
    RaiseAlarm(Alarm("divert_unconfirmed", True, 9.0, "restock")),
    Tick(),
]


def test_one_of_each_kind_covers_the_union() -> None:
    assert {type(i) for i in ONE_OF_EACH} == set(typing.get_args(StationInput))


def test_every_kind_of_input_reaches_the_core(tmp_path: Path, scanner_pty: str) -> None:
    daemon = StationDaemon(station_config(tmp_path, scanner_pty))
    try:
        for item in ONE_OF_EACH:
            if isinstance(item, EncoderCount):
                with pytest.raises(ValueError, match="no encoder configured"):
                    daemon.feed(item)  # type: ignore[arg-type]
            else:
                daemon.feed(item)  # type: ignore[arg-type]
        assert daemon.core.counters["inducted"] == 1
        assert daemon.core.policy.version == "p2"
        assert daemon.core.holds == {"pause"}
        assert [type(e) for e in daemon.rfid_events] == [TagRead, TagReadFailed]
        assert [(e.name, e.active) for e in daemon.lane_input_events] == [("restock.confirm", True)]
        assert len(daemon.camera.photos) == 1
        assert daemon.core.counters["late_gates"] == 1
        weighing = Weighing(4.5, 4.6, 4.4, None, 0, "not_settled")
        assert OrphanRead("weight:not_settled", 4.6) in daemon.feed(weighing)
    finally:
        daemon.stop()


def test_a_lane_input_names_its_device() -> None:
    assert LaneInput(0.0, "restock", "full", True).name == "restock.full"
    with pytest.raises(AttributeError):
        LaneInput(0.0, "restock", "full", True).active = False  # type: ignore[misc]
