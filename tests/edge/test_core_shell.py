"""The shell executes the core's actions: gate holds, withdrawn gates, alarms, events."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.daemon import StationDaemon
from edge.sorter.model import (
    Alarm,
    BeltCommand,
)
from tests.edge.test_daemon import make_config


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[StationDaemon]:
    master, slave = os.openpty()
    d = StationDaemon(make_config(tmp_path, os.ttyname(slave)))
    try:
        yield d
    finally:
        d.stop()
        os.close(master)
        os.close(slave)


def test_jam_alarm_and_belt_stop_show_in_status(daemon: StationDaemon) -> None:
    daemon._handle(BeltCommand(False, 10.0, "jam"))
    daemon._handle(Alarm("jam", True, 10.0))
    status = daemon.status()
    assert status["belt_running"] is False
    assert status["alarms"] == {"jam": {"parcel_id": None, "lane": None}}
    daemon._handle(Alarm("jam", False, 20.0))
    daemon._handle(BeltCommand(True, 20.0, "resume"))
    assert daemon.status()["alarms"] == {} and daemon.status()["belt_running"] is True


def test_pushed_policy_is_validated_cached_and_used_after_a_restart(
    daemon: StationDaemon, tmp_path: Path
) -> None:
    from edge.sorter.policy import default_policy, policy_to_mapping
    from protocol import ProtocolError
    from protocol.policy import DispositionPolicy

    wire = DispositionPolicy.model_validate(
        policy_to_mapping(default_policy(recalled_skus=("SKU-9",), version="site1-2"))
    )
    assert daemon.apply_policy(wire.model_dump_json().encode()) == "site1-2"
    kind, _, policy = daemon._inputs.get_nowait()
    daemon._dispatch(kind, 0.0, policy)
    assert daemon.core.policy.version == "site1-2"
    assert daemon.core.policy.rules[0].skus == ("SKU-9",)
    with pytest.raises(ProtocolError):
        daemon.apply_policy(b'{"kind": "policy", "version": ')
    unsafe = wire.model_dump()
    unsafe["rules"] = [{"disposition": "restock", "reason": "matched", "identity": "wrong_item"}]
    with pytest.raises(ValueError, match="may only quarantine"):
        daemon.apply_policy(DispositionPolicy.model_validate(unsafe).model_dump_json())
    daemon.stop()
    master, slave = os.openpty()
    try:
        again = StationDaemon(make_config(tmp_path, os.ttyname(slave)))
        assert again.core.policy.version == "site1-2"
        again.stop()
    finally:
        os.close(master)
        os.close(slave)
