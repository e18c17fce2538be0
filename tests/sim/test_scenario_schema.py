"""The scenario schema: every shipped file loads, mistakes are named, plans are exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from simulator.scenario import (
    ReadBehaviour,
    Scenario,
    ScenarioError,
    load_scenario,
    plan_parcels,
    plan_reads,
    plan_returns,
    return_gtin,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
BASE = """name: t
station:
  lanes: [{name: restock, disposition: restock, pos_mm: 1400, gate_pin: 17}]
parcels: {known: 4}
"""


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.total > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("faults: [{kind: broker_outage, at_s: 1}]", "broker_outage needs duration_s > 0"),
        ("faults: [{kind: lane_full, at_s: 1, duration_s: 1}]", "lane_full needs lane"),
        (
            "faults: [{kind: gate_stuck, at_s: 1, duration_s: 1, lane: nope}]",
            "no lane 'nope' in station.lanes",
        ),
        ("faults: [{kind: late_rma, at_s: 1, count: 5}]", "late_rma counts (5) exceed"),
        ("faults: [{kind: meteor, at_s: 1}]", "faults.0.kind"),
        ("faults: [{kind: jam, at_s: 1}]", "jam needs duration_s > 0"),
        ("faults: [{kind: clock_skew, at_s: 1}]", "clock_skew needs skew_s != 0"),
        (
            "faults: [{kind: clock_skew, at_s: 1, skew_s: 5, resume: operator}]",
            "resume: operator is for a jam only",
        ),
        ("time: {mode: realtime, rate: 3}", "use mode: accelerated"),
        ("time: {mode: accelerated}", "accelerated needs rate > 1"),
        ("reads: {no_read_rate: 0.6, garbled_rate: 0.6}", "must be <= 1"),
        ("reads: {dupes: 1}", "reads.dupes"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(BASE + extra + "\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert message in str(err.value)


def test_read_plan_has_exact_counts() -> None:
    reads = ReadBehaviour(
        no_read_rate=0.1,
        duplicate_rate=0.2,
        garbled_rate=0.1,
        rfid_rate=0.2,
        rfid_mismatch_rate=0.1,
    )
    plan = plan_reads(reads, 20, seed=11)
    counts = {r: plan.count(r) for r in set(plan)}
    assert counts == {
        "no_read": 2,
        "garbled": 2,
        "rfid": 4,
        "rfid_mismatch": 2,
        "duplicate": 4,
        "ok": 6,
    }
    assert plan == plan_reads(reads, 20, seed=11)


def test_arrival_rate_spaces_parcels_evenly() -> None:
    path = SCENARIOS / "smoke.yaml"
    mix = load_scenario(path).parcels.model_copy(update={"rate_per_h": 3600.0})
    parcels = plan_parcels(mix, 1000.0, [f"R{i}" for i in range(5)], "restock", "AB12")
    assert [p.induct_at_ms for p in parcels] == [500.0 + 1000.0 * i for i in range(8)]
    assert [p.expected_lane for p in parcels].count("restock") == 5


def test_sweep_finds_the_highest_rate_below_the_mechanical_limit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from simulator.cli import main as sim_main
    from simulator.harness import station_config
    from simulator.sweep import mis_sorts_at, sweep

    scenario = load_scenario(SCENARIOS / "demo.yaml")
    cfg = station_config(scenario, Path("x"), 1883, "/dev/null").belt_config()
    result = sweep(cfg, 300.0)
    assert result.min_gap_mm == 100.0  # (60 ms stroke + 40 ms margin) at 1 m/s
    assert result.mechanical_limit_per_hour == 9000.0
    # same-lane neighbours share a gate opening, so the core sorts at the mechanical limit
    assert result.best_gap_mm == 100.0 and result.best_per_hour == 9000.0
    assert result.steps[-1] == (95.0, mis_sorts_at(cfg, 300.0, 95.0))
    assert result.steps[-1][1] > 0
    assert all(bad == 0 for _, bad in result.steps[:-1])
    assert sim_main(["sweep", str(SCENARIOS / "demo.yaml"), "--length-mm", "300"]) == 0
    assert "9000 parcels/h (gap 100 mm)" in capsys.readouterr().out


def test_return_cases_lay_out_what_each_box_holds_shows_and_weighs() -> None:
    text = (SCENARIOS / "mixed-returns.yaml").read_text(encoding="utf-8")
    scenario = Scenario.model_validate(yaml.safe_load(text))
    assert scenario.returns is not None and scenario.total == 12
    parcels, planned = plan_returns(scenario.returns, scenario.parcels, 1000.0, "AB12", 1, 500.0)
    by_case = {p.case: p for p in reversed(parcels)}  # the first box of each case
    shoe, boot = return_gtin(1, 1), return_gtin(1, 2)
    assert by_case["complete"].scans == ("RMA-RAB120001", shoe, boot)
    assert (by_case["complete"].carries, by_case["complete"].weight_g) == ((1, 2), 2150.0)
    partial = by_case["partial"]
    assert (partial.scans[1:], partial.carries, partial.weight_g) == (
        (return_gtin(2, 1),),
        (1,),
        950.0,
    )
    assert by_case["label-only"].scans == ("RMA-RAB120003",)
    assert by_case["retail-aim"].scans[1] == "]E0" + return_gtin(4, 1)
    assert by_case["serial"].scans[1] == f"]C101{return_gtin(5, 1).zfill(14)}21S5L1"
    wrong = by_case["wrong-unit"]
    assert (wrong.scans[1][-5:], wrong.carries) == ("S6L1X", ())
    assert (by_case["empty-box"].carries, by_case["empty-box"].weight_g) == ((), 150.0)
    assert [r.lines[0]["serial"] for r in planned[4:6]] == ["S5L1", "S6L1"]
    # round robin over the cases; 12 m of empty belt after the sixth box
    assert [p.case for p in parcels[:7]] == [c.name for c in scenario.returns.cases]
    assert parcels[6].induct_at_ms - parcels[5].induct_at_ms == 1250.0 + 12000.0
