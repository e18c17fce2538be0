"""What the reactor thread feeds the sorter core: typed, frozen, one class per kind of input.

Every input is a frozen dataclass; the reactor (:class:`edge.daemon.StationDaemon`) takes
them off one queue and hands each to the core with one ``match``. Driver events are inputs
as the drivers deliver them (:class:`~edge.drivers.framing.ScanFrame`,
:class:`~edge.drivers.rfid.TagRead`, :class:`~edge.drivers.rfid.TagReadFailed`,
:class:`~edge.drivers.camera.Photo`, and the checkweigher's
:class:`~edge.drivers.scale.Weighing` from its
:class:`~edge.drivers.scale.WeighingDetector`); the others are defined here. Times are the station's
monotonic ms (``t_ms``): when the thing happened, not when the reactor got to it.

Submitting (``StationDaemon.submit(input)``) is thread-safe: driver callbacks, the link's
command thread, the grader thread, the simulator and tests all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from edge.drivers.camera import Photo
from edge.drivers.framing import ScanFrame
from edge.drivers.rfid import TagRead, TagReadFailed
from edge.drivers.scale import Weighing
from edge.sorter.model import Alarm
from edge.sorter.policy import Policy

if TYPE_CHECKING:
    from edge.vision.worker import GradedPhoto

__all__ = [
    "ApplyPolicy",
    "BeltHold",
    "EncoderCount",
    "EyeEdge",
    "GateLate",
    "Grade",
    "LaneInput",
    "PhotoGraded",
    "RaiseAlarm",
    "Resume",
    "StationInput",
    "Tick",
]


@dataclass(frozen=True, slots=True)
class EyeEdge:
    """A raw level change of the induct photo-eye (the core debounces it).

    Attributes:
        t_ms: when the level changed.
        blocked: True when the beam is now blocked.
    """

    t_ms: float
    blocked: bool


@dataclass(frozen=True, slots=True)
class LaneInput:
    """A raw level change of a lane's divert-confirm or lane-full input, or of its gate's link.

    Attributes:
        t_ms: when the level changed.
        lane: the lane (``restock``).
        kind: ``confirm`` (a diverted parcel arrived), ``full`` (the lane is full) or
            ``fault`` (the gate cannot be driven: its PLC is lost).
        active: True when the input (or the fault) is now active.
    """

    t_ms: float
    lane: str
    kind: Literal["confirm", "full", "fault"]
    active: bool

    @property
    def name(self) -> str:
        """The input's device name, ``<lane>.<kind>``."""
        return f"{self.lane}.{self.kind}"


@dataclass(frozen=True, slots=True)
class EncoderCount:
    """A belt encoder sample: the cumulative ``count`` at ``t_ms``."""

    t_ms: float
    count: int


@dataclass(frozen=True, slots=True)
class Grade:
    """A condition grade for a parcel (a grader other than the station's camera).

    Attributes:
        t_ms: when the parcel was graded.
        grade: the grade (one of the policy's grades, else it counts as unknown).
        confidence: 0..1.
        parcel_id: the parcel graded, or None: the one at the camera position at ``t_ms``.
    """

    t_ms: float
    grade: str
    confidence: float = 1.0
    parcel_id: int | None = None


@dataclass(frozen=True, slots=True)
class PhotoGraded:
    """The grader thread's result for one photo (``result.photo.tag``: the parcel id)."""

    result: GradedPhoto


@dataclass(frozen=True, slots=True)
class GateLate:
    """The scheduler did not fire a parcel's gate: it was ``late_ms`` past the margin.

    Attributes:
        t_ms: when the firing was refused.
        parcel_id: the parcel whose gate stayed shut (it runs on to quarantine).
        lane: that gate's lane.
        late_ms: how late the firing would have been, ms.
    """

    t_ms: float
    parcel_id: int
    lane: str
    late_ms: float


@dataclass(frozen=True, slots=True)
class Resume:
    """The operator resumed the station after a jam, at ``t_ms``."""

    t_ms: float


@dataclass(frozen=True, slots=True)
class BeltHold:
    """The belt held (``active``) or released at ``t_ms`` for ``reason``.

    ``pause``: the operator's pause / run; ``estop``: the emergency-stop input engaged (its
    release is not a restart: a resume is needed, see ``SorterCore.on_resume``).
    """

    t_ms: float
    reason: Literal["pause", "estop"]
    active: bool


@dataclass(frozen=True, slots=True)
class ApplyPolicy:
    """Switch the core to a validated disposition policy (before the next input)."""

    policy: Policy


@dataclass(frozen=True, slots=True)
class RaiseAlarm:
    """An alarm raised outside the core (e.g. a gate test whose divert was not confirmed)."""

    alarm: Alarm


@dataclass(frozen=True, slots=True)
class Tick:
    """Nothing arrived: time passed (the reactor advances the core to now)."""


StationInput = (
    EyeEdge
    | ScanFrame
    | TagRead
    | TagReadFailed
    | Photo
    | Weighing
    | PhotoGraded
    | Grade
    | LaneInput
    | EncoderCount
    | GateLate
    | Resume
    | BeltHold
    | ApplyPolicy
    | RaiseAlarm
    | Tick
)
"""Everything the reactor takes."""
