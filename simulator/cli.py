"""``returns-sim``: run a scenario, or the demo, against the real edge code.

    returns-sim run SCENARIO.yaml [--json report.json] [--workdir DIR]
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

from rich.console import Console
from rich.table import Table

from simulator.harness import Report, Run
from simulator.scenario import Scenario, ScenarioError, load_scenario

console = Console()
SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def print_report(report: Report) -> None:
    """Print the per-lane summary and any failures as tables."""
    table = Table(title=f"Scenario {report.scenario}: parcels per lane")
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
    reasons: dict[str, int] = {}
    for r in report.parcels:
        if r.actual_lane == "quarantine":
            reasons[r.reason or "?"] = reasons.get(r.reason or "?", 0) + 1
    if reasons:
        console.print(
            "quarantine reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
        )
    console.print(
        f"parcels {len(report.parcels)}, mis-sorts {report.mis_sorts}, "
        f"events lost {report.events_lost}, doubled {report.events_doubled}, "
        f"{report.duration_s} s"
    )
    for failure in report.failures:
        console.print(f"[red]FAIL[/red] {failure}")
    if report.ok:
        console.print("[green]OK[/green]")


def _run(scenario: Scenario, workdir: Path | None, json_path: Path | None, stay: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="returns-sim-") as tmp:
        wd = workdir or Path(tmp)
        try:
            run = Run(scenario, wd)
            run.start()
        except (RuntimeError, TimeoutError, FileNotFoundError) as exc:
            console.print(f"[red]set-up failed:[/red] {exc}")
            return 2
        try:
            report = run.execute(on_progress=lambda msg: console.print(f"… {msg}"))
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
    if args.command == "run":
        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as exc:
            console.print(f"[red]bad scenario:[/red] {exc}")
            return 2
        return _run(scenario, args.workdir, args.json, stay=False)
    scenario = load_scenario(SCENARIOS / "demo.yaml")
    mix = scenario.parcels.model_copy(update={"known": args.known, "unknown": args.unknown})
    expect = scenario.expect.model_copy(
        update={
            "lanes": {
                k: v for k, v in {"restock": args.known, "quarantine": args.unknown}.items() if v
            }
        }
    )
    scenario = scenario.model_copy(update={"parcels": mix, "expect": expect})
    return _run(scenario, args.workdir, args.json, stay=not args.exit)


if __name__ == "__main__":
    sys.exit(main())
