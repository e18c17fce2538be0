"""End to end: Mosquitto, gateway and station as real processes on real sockets, driven by
the simulator's belt through the station's lowest hardware layer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli import main as sim_main
from simulator.harness import Run
from simulator.scenario import load_scenario

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.broker]


def test_smoke_scenario_sorts_every_parcel_and_gateway_records_every_event(tmp_path: Path) -> None:
    scenario = load_scenario(REPO / "simulator" / "scenarios" / "smoke.yaml")
    with Run(scenario, tmp_path) as run:
        report = run.execute()
        stations = run.http.get("/api/v1/stations").json()  # type: ignore[union-attr]
        page = run.http.get("/").text  # type: ignore[union-attr]
    by_label = {(r.label, r.actual_lane) for r in report.parcels}
    assert by_label == {("known", "restock"), ("unknown", "quarantine"), ("no_read", "quarantine")}
    assert report.lane_counts == {"restock": 5, "quarantine": 3}
    for r in report.parcels:
        assert r.actual_lane == r.expected_lane, r
        assert r.station_lane == r.actual_lane, r
        assert r.events == 1, r
    reasons = {r.label: r.reason for r in report.parcels}
    assert reasons == {"known": "matched", "unknown": "unknown_rma", "no_read": "no_read"}
    assert report.mis_sorts == 0 and report.events_lost == 0 and report.events_doubled == 0
    assert report.ok, report.failures
    items = stations["stations"]
    assert [s["id"] for s in items] == ["station1"]
    assert "station1" in page and "restock" in page


def test_cli_run_writes_json_and_exits_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(
        (REPO / "simulator" / "scenarios" / "smoke.yaml")
        .read_text()
        .replace("known: 5", "known: 2")
        .replace("unknown: 2", "unknown: 1")
        .replace("no_read: 1", "no_read: 0")
        .replace("{restock: 5, quarantine: 3}", "{restock: 2, quarantine: 1}")
    )
    status = sim_main(["run", str(scenario), "--json", str(out), "--workdir", str(tmp_path / "wd")])
    data = json.loads(out.read_text())
    assert status == 0
    assert data["ok"] is True and data["lane_counts"] == {"restock": 2, "quarantine": 1}
    # the status page's URL comes before the run, so it can be watched live, and again after
    lines = capsys.readouterr().out.splitlines()
    live = [i for i, line in enumerate(lines) if line.startswith("status page (live")]
    running = [i for i, line in enumerate(lines) if line.startswith("… running")]
    after = [line for line in lines if line.startswith("status page: http://127.0.0.1:")]
    assert len(live) == 1 and len(running) == 1 and live[0] < running[0], lines
    assert len(after) == 1 and lines[live[0]].endswith(after[0].removeprefix("status page: "))


def test_cli_run_fails_when_expectation_is_wrong(tmp_path: Path) -> None:
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text(
        (REPO / "simulator" / "scenarios" / "smoke.yaml")
        .read_text()
        .replace("known: 5", "known: 1")
        .replace("unknown: 2", "unknown: 0")
        .replace("no_read: 1", "no_read: 0")
        .replace("{restock: 5, quarantine: 3}", "{restock: 0, quarantine: 1}")
    )
    assert sim_main(["run", str(scenario), "--workdir", str(tmp_path / "wd")]) == 1


def test_cli_rejects_a_bad_scenario_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstation: {}\nparcels: {known: -1}\n")
    assert sim_main(["run", str(bad)]) == 2
    assert "parcels.known" in capsys.readouterr().out


def test_bad_station_section_is_a_clear_error_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (field trial): `speed_mm_s: fast` gave a traceback and left the broker
    and gateway running; now it is a 'bad scenario' with the key, and nothing starts."""
    import simulator.harness as harness

    started: list[str] = []
    monkeypatch.setattr(harness.MosquittoBroker, "start", lambda self: started.append("broker"))
    bad = tmp_path / "bad-station.yaml"
    bad.write_text(
        (REPO / "simulator" / "scenarios" / "smoke.yaml")
        .read_text()
        .replace("speed_mm_s: 1000", "speed_mm_s: fast")
    )
    assert sim_main(["run", str(bad), "--workdir", str(tmp_path / "wd")]) == 2
    out = capsys.readouterr().out
    assert "bad scenario" in out and "station.belt.speed_mm_s" in out
    assert started == []
