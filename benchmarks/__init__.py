"""Benchmarks (``make bench``): each figure printed beside a baseline measured in the same run.

Every module ``benchmarks/bench_*.py`` defines ``run() -> list[Figure]``. ``python -m
benchmarks [NAME ...]`` runs them (all, or those named), prints a table and writes
``reports/bench.json``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """One measured figure and its same-run baseline.

    Attributes:
        name: what was measured, e.g. ``"core decisions/s (1M RMA lines)"``.
        value: our figure.
        unit: its unit (``"ms"``, ``"1/s"``, ``"parcels/h"``).
        baseline_name: what the baseline is, e.g. ``"dict lookup"``.
        baseline: the baseline's figure, in the same unit.
        higher_is_better: True for rates, False for times.
    """

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        """Our figure divided by the baseline."""
        return self.value / self.baseline if self.baseline else float("inf")
