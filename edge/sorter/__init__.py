"""Sorter core: pure tracking, identification, disposition and gate timing.

No I/O, no threads, no wall clock: every entry point takes the time (``t_ms``, monotonic
milliseconds) as an argument and returns what the shell must do.
"""

from edge.sorter.core import SorterCore
from edge.sorter.model import (
    Action,
    BeltConfig,
    Decision,
    Disposition,
    GateCommand,
    LaneSpec,
    ParcelExited,
    Reason,
    RmaDirectory,
    RmaRecord,
)

__all__ = [
    "Action",
    "BeltConfig",
    "Decision",
    "Disposition",
    "GateCommand",
    "LaneSpec",
    "ParcelExited",
    "Reason",
    "RmaDirectory",
    "RmaRecord",
    "SorterCore",
]
