"""``returns-sim``: run a scenario, or the demo, against the real edge code.

    returns-sim run SCENARIO.yaml [--json report.json] [--workdir DIR]
    returns-sim list
    returns-sim sweep SCENARIO.yaml [--length-mm 300]
    returns-sim demo [--exit] [--known 50] [--unknown 10]

Exit status: 0 when every parcel reached its expected lane and every station event reached
the gateway exactly once; 1 otherwise; 2 on a bad scenario or set-up failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import tempfile
import threading
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from simulator.harness import Report, Run, planned_lanes, station_config
from simulator.scenario import Scenario, ScenarioError, load_scenario
from simulator.sweep import per_hour, sweep

console = Console()
SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def print_report(report: Report) -> None:
    """Print per-parcel, per-lane, fault and timing tables, and any failures."""
    parcels = Table(title=f"Scenario {report.scenario}: parcels")
    cols = ("#", "label", "read", "photo", "grade", "expected", "actual", "station", "reason")
    for col in (*cols, "faults"):
        parcels.add_column(col)
    for r in report.parcels:
        style = "red" if r.mis_sorted else None
        parcels.add_row(
            str(r.index),
            r.label,
            r.read,
            r.photo,
            r.grade or "-",
            r.expected_lane,
            r.actual_lane or "-",
            r.station_lane or "-",
            r.reason or "-",
            ",".join(r.affected_by),
            style=style,
        )
    if len(report.parcels) <= 200:
        console.print(parcels)
    table = Table(title="parcels per lane")
    table.add_column("lane")
    table.add_column("expected", justify="right")
    table.add_column("actual", justify="right")
    for lane in sorted(set(report.lane_counts) | set(report.expected_lane_counts)):
        table.add_row(
            lane,
            str(report.expected_lane_counts.get(lane, 0)),
            str(report.lane_counts.get(lane, 0)),
        )
    console.print(table)
    if report.faults:
        faults = Table(title="faults (belt seconds)")
        for col in ("fault", "lane", "from", "to", "resync s", "detail"):
            faults.add_column(col)
        for f in report.faults:
            faults.add_row(
                f.kind,
                f.lane or "",
                f"{f.start_s:.2f}",
                "-" if f.end_s is None else f"{f.end_s:.2f}",
                "-" if f.resync_s is None else f"{f.resync_s:.2f}",
                f.detail,
            )
        console.print(faults)
    if report.quarantine_reasons:
        console.print(
            "quarantine reasons: "
            + ", ".join(f"{k} {v}" for k, v in sorted(report.quarantine_reasons.items()))
        )
    console.print(
        f"parcels {len(report.parcels)}, mis-sorts {report.mis_sorts}, "
        f"wrongly restocked {report.wrongly_restocked}, "
        f"events lost {report.events_lost}, doubled {report.events_doubled}, "
        f"unreported (station down) {report.unreported_station_down}, "
        f"removed by hand {report.removed_by_hand} "
        f"(station {report.station_events}, gateway {report.gateway_events}), "
        f"in sync {report.in_sync}"
    )
    console.print(
        f"{report.parcels_per_hour} parcels/h (mechanical limit "
        f"{report.mechanical_limit_per_hour}); decision ms {report.decision_ms}; "
        f"gate lateness ms {report.gate_lateness_ms}; {report.time_mode} x{report.rate:g}, "
        f"{report.duration_s} s"
    )
    for failure in report.failures:
        console.print(f"[red]FAIL[/red] {failure}")
    if report.ok:
        console.print("[green]OK[/green]")


def _run(scenario: Scenario, workdir: Path | None, json_path: Path | None, stay: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="returns-sim-") as tmp:
        wd = workdir or Path(tmp)
        run = Run(scenario, wd)
        try:
            run.start()
        except ValidationError as exc:
            run.stop()
            problems = "; ".join(
                f"station.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            console.print(f"[red]bad scenario:[/red] {problems}")
            return 2
        except Exception as exc:  # whatever failed, nothing is left running
            run.stop()
            console.print(f"[red]set-up failed:[/red] {exc}")
            return 2
        try:
            if run.gateway is not None:  # watch the parcels arrive while the run goes on
                console.print(f"status page (live during the run): {run.gateway.url}/")
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as progress:
                task = progress.add_task("parcels", total=scenario.parcels.total)
                report = run.execute(
                    on_progress=lambda msg: progress.console.print(f"… {msg}"),
                    on_parcel=lambda done, total: progress.update(task, completed=done),
                )
            print_report(report)
            if json_path is not None:
                json_path.write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
                console.print(f"report written to {json_path}")
            console.print(f"status page: {report.status_url}")
            if stay:
                console.print("running; press Ctrl+C to stop")
                done = threading.Event()
                signal.signal(signal.SIGTERM, lambda *_: done.set())
                with contextlib.suppress(KeyboardInterrupt):
                    done.wait()
            return 0 if report.ok else 1
        finally:
            run.stop()


def _sweep(scenario: Scenario, length_mm: float | None) -> int:
    cfg = station_config(scenario, Path("sweep"), 1883, "/dev/null").belt_config()
    length = length_mm if length_mm is not None else sum(scenario.parcels.length_mm) / 2
    result = sweep(cfg, length)
    table = Table(title=f"{scenario.name}: sweep, parcels of {length:.0f} mm")
    table.add_column("gap mm", justify="right")
    table.add_column("parcels/h", justify="right")
    table.add_column("mis-sorts", justify="right")
    for gap, bad in result.steps:
        table.add_row(f"{gap:.0f}", f"{per_hour(cfg, length, gap):.0f}", str(bad))
    console.print(table)
    console.print(
        f"highest rate with 0 mis-sorts: {result.best_per_hour:.0f} parcels/h "
        f"(gap {result.best_gap_mm:.0f} mm); mechanical limit "
        f"{result.mechanical_limit_per_hour:.0f} parcels/h (min gap {result.min_gap_mm:.0f} mm); "
        f"ratio {result.ratio:.2f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="returns-sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="WARNING")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run a scenario file")
    p_run.add_argument("scenario", type=Path)
    p_run.add_argument("--json", type=Path, help="write the report as JSON here")
    p_run.add_argument("--workdir", type=Path, help="keep databases and logs here")
    sub.add_parser("list", help="list the shipped scenario library")
    p_sweep = sub.add_parser(
        "sweep", help="highest arrival rate with zero mis-sorts for a scenario's belt"
    )
    p_sweep.add_argument("scenario", type=Path)
    p_sweep.add_argument("--length-mm", type=float, default=None)
    p_demo = sub.add_parser("demo", help="the whole station: 50 known and 10 unknown parcels")
    p_demo.add_argument("--exit", action="store_true", help="stop when the run is done")
    p_demo.add_argument("--known", type=int, default=50)
    p_demo.add_argument("--unknown", type=int, default=10)
    p_demo.add_argument("--json", type=Path)
    p_demo.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "list":
        for path in sorted(SCENARIOS.glob("*.yaml")):
            first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
            console.print(f"{path.relative_to(SCENARIOS.parent.parent)}: {first}")
        return 0
    if args.command == "sweep":
        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as exc:
            console.print(f"[red]bad scenario:[/red] {exc}")
            return 2
        return _sweep(scenario, args.length_mm)
    if args.command == "run":
        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as exc:
            console.print(f"[red]bad scenario:[/red] {exc}")
            return 2
        return _run(scenario, args.workdir, args.json, stay=False)
    scenario = load_scenario(SCENARIOS / "demo.yaml")
    mix = scenario.parcels.model_copy(update={"known": args.known, "unknown": args.unknown})
    scenario = scenario.model_copy(update={"parcels": mix})
    expect = scenario.expect.model_copy(update={"lanes": planned_lanes(scenario)})
    scenario = scenario.model_copy(update={"expect": expect})
    return _run(scenario, args.workdir, args.json, stay=not args.exit)


if __name__ == "__main__":
    sys.exit(main())
