"""Run the benchmarks: ``python -m benchmarks [NAME ...]``."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from dataclasses import asdict
from pathlib import Path

import benchmarks
from benchmarks import Figure


def main(argv: list[str]) -> int:
    """Run every ``bench_*`` module (or those named), print and save the figures."""
    names = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    wanted = [n for n in names if not argv or any(a in n for a in argv)]
    results: dict[str, list[dict[str, object]]] = {}
    print(f"{'benchmark':<48} {'value':>12} {'unit':<10} {'baseline':>12}  ratio  baseline is")
    for name in wanted:
        module = importlib.import_module(f"benchmarks.{name}")
        figures: list[Figure] = module.run()
        results[name] = [{**asdict(f), "ratio": f.ratio} for f in figures]
        for f in figures:
            print(
                f"{f.name:<48} {f.value:>12.3f} {f.unit:<10} {f.baseline:>12.3f} "
                f"{f.ratio:>6.2f}  {f.baseline_name}"
            )
    out = Path("reports") / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
