"""An alarm or a belt stop reaches the gateway at once, not at the next status interval."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from edge.link import StationLink
from protocol import StationAlarm, StationHealth, StationStatus, Topics, decode

pytestmark = pytest.mark.broker


def test_request_status_publishes_now_whatever_the_interval(
    site: str,
    make_link: Callable[..., StationLink],
    make_probe: Callable[..., Any],
    wait: Callable[..., Any],
) -> None:
    health = StationHealth()
    probe = make_probe()
    probe.subscribe(Topics(site, "st1").status)
    # an hour between regular status messages: only the birth and our request can publish
    link = make_link(status_provider=lambda: health, status_interval_s=3600)
    link.start()

    def statuses() -> list[StationStatus]:
        return [decode(p, StationStatus) for p in probe.payloads(Topics(site, "st1").status)]

    wait(lambda: any(s.state == "online" for s in statuses()), what="birth")
    health = StationHealth(alarms={"jam": StationAlarm(kind="jam", parcel_id=7)})
    link.request_status()
    wait(lambda: statuses()[-1].health.alarms, what="status with the alarm")
    assert statuses()[-1].health.alarms == {"jam": StationAlarm(kind="jam", parcel_id=7)}
