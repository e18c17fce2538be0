"""The shift report (issue 16 item 6): availability, throughput, quality; exact values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from gateway.db import Database
from gateway.services.events import ingest_event
from gateway.services.shifts import current_shift, shift_csv, shift_report, shift_window
from gateway.services.stations import upsert_station
from gateway.settings import Settings
from protocol import CoreStatus, ParcelEvent, StationHealth, StationStatus, Topics, encode

DAY = date(2026, 5, 4)


def at(hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 5, 4, hh, mm, tzinfo=UTC)


def settings(**kw: Any) -> Settings:
    return Settings(database_url="sqlite://", station_rate_per_hour=10, **kw)


def status(state: str = "online", running: bool = True, jammed: bool = False) -> StationStatus:
    health = StationHealth(belt_running=running, core=CoreStatus(jammed=jammed))
    return StationStatus(station="st1", state=state, health=health)


def test_a_shift_of_one_station_in_exact_figures(
    anydb: Database, make_event: Callable[..., ParcelEvent]
) -> None:
    timeline = [
        (at(5, 0), status()),  # before the shift: running when it starts at 06:00
        (at(7, 0), status(jammed=True, running=False)),
        (at(7, 15), status()),
        (at(8, 0), status()),  # no change: no new row
        (at(9, 0), status(running=False)),  # paused / E-stop
        (at(9, 30), status()),
        (at(12, 0), status(state="offline")),
        (at(13, 0), status()),
    ]
    with anydb.session() as s:
        for seen, st in timeline:
            upsert_station(s, "site1", st, seen_at=seen)
        events = [
            *(make_event(inducted_at=at(10, i)) for i in range(6)),
            make_event(inducted_at=at(10, 10), marks=("divert_unconfirmed",)),
            make_event(inducted_at=at(11), lane="quarantine", reason="no_read", diverted=False),
            make_event(inducted_at=at(11, 1), lane="quarantine", reason="no_read", diverted=False),
            make_event(inducted_at=at(11, 2), lane="quarantine", reason="unknown_rma"),
            make_event(inducted_at=at(5, 59)),  # the shift before
        ]
        for event in events:
            ingest_event(s, event)
        cfg = settings()
        window = shift_window(cfg, DAY, 0)
        assert (window.start, window.end) == (at(6), at(14))
        [row] = shift_report(s, cfg, window, now=at(15))
    assert row.elapsed_s == 8 * 3600
    # running 06-07, 07:15-09, 09:30-12, 13-14; jammed 07-07:15; stopped 09-09:30
    assert row.seconds == {
        "running": 22_500.0,
        "stopped": 1800.0,
        "jammed": 900.0,
        "offline": 3600.0,
    }
    assert row.availability_pct == 78.1
    assert (row.parcels, row.parcels_per_hour, row.rate_per_hour, row.throughput_pct) == (
        10,
        1.2,
        10,
        12.5,
    )
    assert (row.no_read_pct, row.unconfirmed_diverts, row.quarantine_pct) == (20.0, 1, 30.0)
    assert row.quarantine_by_reason == {"no_read": 20.0, "unknown_rma": 10.0}
    assert shift_csv([row]).splitlines() == [
        "shift,start,end,station,elapsed_s,running_s,stopped_s,jammed_s,offline_s,"
        "availability_pct,parcels,parcels_per_hour,rate_per_hour,throughput_pct,no_read_pct,"
        "unconfirmed_diverts,quarantine_pct,quarantine_by_reason",
        "06:00-14:00,2026-05-04T06:00:00+00:00,2026-05-04T14:00:00+00:00,st1,28800.0,22500.0,"
        "1800.0,900.0,3600.0,78.1,10,1.2,10,12.5,20.0,1,30.0,no_read=20.0;unknown_rma=10.0",
    ]


def test_a_running_shift_counts_up_to_now_and_a_night_shift_ends_next_day(
    anydb: Database,
) -> None:
    cfg = settings(shop_timezone="Europe/Paris")  # UTC+2 in May
    night = shift_window(cfg, DAY, 2)  # 22:00-06:00 local
    assert (night.start, night.end) == (at(20), datetime(2026, 5, 5, 4, tzinfo=UTC))
    assert current_shift(cfg, datetime(2026, 5, 5, 1, tzinfo=UTC)) == night
    assert current_shift(cfg, at(4)).label == "06:00-14:00"  # 06:00 local
    with anydb.session() as s:
        upsert_station(s, "site1", status(), seen_at=at(21))
        [row] = shift_report(s, cfg, night, now=at(22))
    assert row.elapsed_s == 7200.0
    assert (row.seconds["offline"], row.seconds["running"]) == (3600.0, 3600.0)
    assert row.availability_pct == 50.0


@pytest.mark.parametrize("shifts", [["06:00"], ["6-14"], ["06:00-06:00"], ["aa:bb-cc:dd"]])
def test_bad_shift_settings_are_refused(shifts: list[str]) -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        settings(shifts=shifts)


def test_the_report_over_http_and_on_the_page(
    client: Any, probe: Any, site: str, wait: Any
) -> None:
    probe.publish(
        Topics(site, "=st9").status, encode(StationStatus(station="=st9", state="online"))
    )
    wait(lambda: client.get("/api/v1/stations").json()["stations"], what="station known")
    body = client.get("/api/v1/reports/shift").json()
    assert body["shift"] in ("06:00-14:00", "14:00-22:00", "22:00-06:00")
    [row] = body["rows"]
    assert (row["station"], row["parcels"], row["rate_per_hour"]) == ("=st9", 0, 1800)
    csv = client.get("/api/v1/reports/shift", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[1].split(",")[3] == "'=st9"  # neutralised: no formula
    bad = client.get("/api/v1/reports/shift", params={"day": "2026-05-04", "shift": 5})
    assert bad.status_code == 422
    page = client.get("/partials/shift")
    assert page.status_code == 200 and 'data-shift-station="=st9"' in page.text
