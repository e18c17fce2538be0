"""Run the benchmarks: ``python -m benchmarks [NAME ...] [--json PATH]`` (``make bench``).

Every ``benchmarks/bench_*.py`` module (or those whose name contains one of the NAMEs)
runs in turn; each figure is printed beside the baseline measured in the same run and the
ratio ours / baseline, with whether that is better or worse (the ``higher_is_better`` of
the figure). A module that fails is reported and the run goes on; the exit status is 1
when any failed. The figures, the time each module took and the total go to the JSON file
(default ``reports/bench.json``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import sys
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import benchmarks
from benchmarks import Figure


def verdict(f: Figure) -> str:
    """``better`` / ``worse`` / ``same`` than the baseline, by the figure's direction."""
    if f.value == f.baseline:
        return "same"
    return "better" if (f.value > f.baseline) == f.higher_is_better else "worse"


def main(argv: list[str]) -> int:
    """Run every ``bench_*`` module (or those named), print and save the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help="run only modules whose name contains one")
    parser.add_argument("--json", type=Path, default=Path("reports") / "bench.json")
    args = parser.parse_args(argv)
    names = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    wanted = [n for n in names if not args.names or any(a in n for a in args.names)]
    results: dict[str, object] = {}
    failed: list[str] = []
    started = time.perf_counter()
    header = f"{'figure':<52} {'value':>12} {'unit':<10} {'baseline':>12} {'ratio':>8}  vs"
    print(header)
    print("-" * len(header))
    for name in wanted:
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            figures: list[Figure] = module.run()
        except Exception as exc:
            failed.append(name)
            traceback.print_exc()
            print(f"{name}: FAILED ({type(exc).__name__}: {exc})")
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        took = time.perf_counter() - t0
        results[name] = {
            "seconds": round(took, 2),
            "figures": [{**asdict(f), "ratio": f.ratio, "verdict": verdict(f)} for f in figures],
        }
        for f in figures:
            print(
                f"{f.name:<52} {f.value:>12.3f} {f.unit:<10} {f.baseline:>12.3f} "
                f"{f.ratio:>8.2f}  {verdict(f)} than {f.baseline_name}"
            )
        print(f"  ({name}: {took:.1f} s)")
    total = time.perf_counter() - started
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "total_seconds": round(total, 1),
        "failed": failed,
        "benchmarks": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"total {total:.1f} s; written {args.json}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
