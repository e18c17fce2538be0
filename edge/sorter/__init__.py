"""Sorter core: pure tracking, identification, disposition and gate timing.

No I/O, no threads, no wall clock: every entry point takes the time (``t_ms``, monotonic
milliseconds) as an argument and returns what the shell must do. Modules: ``odometer``
(belt position from encoder or speed), ``debounce`` (photo-eye), ``identify`` (labels,
GS1, tags against RMA lines), ``policy`` (the versioned disposition table), ``core``
(tracking windows, decisions, gate timing, faults).
"""

from edge.sorter.core import SorterCore
from edge.sorter.model import (
    Action,
    Alarm,
    BadRead,
    BeltCommand,
    BeltConfig,
    Decision,
    Disposition,
    GateCancel,
    GateCommand,
    Identity,
    Inducted,
    LaneSpec,
    Mark,
    OrphanRead,
    ParcelExited,
    Reason,
    RmaDirectory,
    RmaRecord,
)
from edge.sorter.policy import Policy, Rule, default_policy

__all__ = [
    "Action",
    "Alarm",
    "BadRead",
    "BeltCommand",
    "BeltConfig",
    "Decision",
    "Disposition",
    "GateCancel",
    "GateCommand",
    "Identity",
    "Inducted",
    "LaneSpec",
    "Mark",
    "OrphanRead",
    "ParcelExited",
    "Policy",
    "Reason",
    "RmaDirectory",
    "RmaRecord",
    "Rule",
    "SorterCore",
    "default_policy",
]
