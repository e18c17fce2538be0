"""The checkweigher on the scan path of the real daemon: the simulator's Toledo indicator in a
pty drives the real pyserial backend, the weighing detector feeds the reactor, the core checks
the weight against the RMA line's catalogue weight (an empty box goes to quarantine)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.config import StationConfig
from edge.daemon import StationDaemon
from edge.drivers.framing import ScanFrame
from protocol import RmaLine
from simulator.hw.indicator import ToledoIndicator
from simulator.testing import ManualClock, announcement, station_config_data, wait_until

EAN_SHOE = "4006381333931"
EAN_MUG = "9780201310054"


@pytest.fixture
def indicator() -> Iterator[ToledoIndicator]:
    ind = ToledoIndicator(period_s=0.01)
    ind.start()
    yield ind
    ind.close()


def events(daemon: StationDaemon) -> list[dict[str, Any]]:
    return [json.loads(item.payload) for item in daemon.store.outbox_pending()]


def weigh_parcel(
    daemon: StationDaemon,
    clock: ManualClock,
    indicator: ToledoIndicator,
    t0: float,
    codes: tuple[str, ...],
    grams: float,
    weighed: int,
) -> None:
    """One 300 mm parcel inducted at ``t0``, its codes read, weighed ``grams`` on the platform."""
    eye = daemon.devices.pin_factory.pin(4)
    clock.set(t0)
    eye.drive_high()
    clock.set(t0 + 300.0)
    eye.drive_low()
    for k, code in enumerate(codes):
        daemon.submit(ScanFrame(code, None, t0 + 550.0 + k, False))
    clock.set(t0 + 800.0)  # the parcel spans 500..800 mm: wholly on the 500..900 mm platform
    indicator.set_load(grams)
    wait_until(lambda: daemon.core.counters["weighings"] == weighed, timeout_s=20.0)
    indicator.set_load(0.0)
    clock.set(t0 + 1300.0)  # decided once its trailing edge left the platform (1250 ms)
    wait_until(lambda: len(daemon.decisions) == weighed, timeout_s=20.0)


def test_weighings_from_the_indicator_decide_an_empty_box_through_the_daemon(
    tmp_path: Path, scanner_pty: str, indicator: ToledoIndicator
) -> None:
    clock = ManualClock()
    scale = {"url": indicator.path, "pos_mm": 700, "platform_mm": 400, "tol_mm": 50}
    cfg = StationConfig.model_validate(station_config_data(tmp_path, scanner_pty, scale=scale))
    daemon = StationDaemon(cfg, clock=clock)
    shoe = RmaLine(line_no=1, sku="SHOE", quantity=1, gtin=EAN_SHOE, weight_g=800)
    mug = RmaLine(line_no=1, sku="MUG", quantity=1, gtin=EAN_MUG, weight_g=900)
    daemon.store.apply_announcement(announcement("RMA-000123", shoe))
    daemon.store.apply_announcement(announcement("RMA-000124", mug, revision=2))
    assert daemon.status()["devices"]["scale"]["state"] == "ok"  # type: ignore[index]
    daemon.start()
    try:
        assert "scale" in daemon.devices.capabilities()
        weigh_parcel(daemon, clock, indicator, 0.0, ("RMA-000123", EAN_SHOE), 1100.0, 1)
        clock.set(10_000.0)
        wait_until(lambda: len(events(daemon)) == 1, timeout_s=20.0)
        weigh_parcel(daemon, clock, indicator, 20_000.0, ("RMA-000124", EAN_MUG), 240.0, 2)
        clock.set(30_000.0)
        wait_until(lambda: len(events(daemon)) == 2, timeout_s=20.0)
        first, second = events(daemon)
    finally:
        daemon.stop()
    assert (first["lane"], first["reason"]) == ("restock", "matched")
    assert (second["lane"], second["reason"]) == ("quarantine", "weight_mismatch")
    decided = {d.rma_number: d for d in daemon.decisions}
    assert dict(decided["RMA-000123"].inputs)["weight_check"] == "ok"
    assert dict(decided["RMA-000124"].inputs)["weight_check"] == "empty_box"
    assert "weight:1100g" in decided["RMA-000123"].reads
    assert "empty box: 240 g for 1 x MUG" in decided["RMA-000124"].explanation
