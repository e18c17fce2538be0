"""The parcel event: what the station reports when a parcel has left the belt. Pure.

:func:`build_parcel_event` turns the core's :class:`~edge.sorter.model.ParcelExited` (the
decision, the way out) and the parcel's graded photo, if any, into the wire message
:class:`protocol.ParcelEvent`. No clock is read and no id is made here: the caller gives
the event id and the mapping from monotonic to UTC time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from edge.sorter.model import ParcelExited
from protocol import ParcelEvent, PhotoRef

if TYPE_CHECKING:
    from edge.vision.worker import GradedPhoto

__all__ = ["build_parcel_event", "photo_fields"]

EXPLANATION_MAX = 1000
GRADE_EXPLANATION_MAX = 500


def build_parcel_event(
    exited: ParcelExited,
    station_id: str,
    to_utc: Callable[[float], datetime],
    graded: GradedPhoto | None,
    *,
    event_id: str,
) -> ParcelEvent:
    """The event for a parcel that left the belt.

    Args:
        exited: the core's exit action (decision, final lane, marks, length).
        station_id: this station's id.
        to_utc: UTC time of a monotonic ms time (the induct time is reported in UTC).
        graded: the parcel's graded photo, or None (no camera, or no photo came).
        event_id: the event's unique id (the gateway ingests each id once).

    Returns:
        The event (schema version 2): the lane it ended in (``diverted`` when that lane
        has a gate), the decision's reason, reads, RMA, policy version and explanation
        (at most 1000 characters), marks, the RMA units it claimed with their evidence
        (``units``), every classified read (``codes``), whether the lane's sensor
        confirmed the divert (``divert_confirmed``: None without a sensor or a divert),
        and the photo evidence and grade (:func:`photo_fields`).
    """
    d = exited.decision
    lane = exited.final_lane
    return ParcelEvent(
        event_id=event_id,
        station=station_id,
        parcel_id=d.parcel_id,
        inducted_at=to_utc(exited.inducted_at_ms),
        length_mm=round(exited.length_mm, 1),
        barcode=d.reads[0] if d.reads else None,
        rma_number=d.rma_number,
        lane=lane.name,
        disposition=lane.disposition.value,
        reason=d.reason.value,
        diverted=lane.gate is not None,
        marks=tuple(m.value for m in exited.marks),
        policy_version=d.policy_version or None,
        explanation=d.explanation[:EXPLANATION_MAX] or None,
        units=exited.units,
        codes=d.codes,
        divert_confirmed=exited.divert_confirmed if lane.gate is not None else None,
        **photo_fields(graded),
    )


def photo_fields(graded: GradedPhoto | None) -> dict[str, Any]:
    """The event's photo evidence and camera grade.

    A stored photo gives ``photo`` (hash, time, size); a graded one ``grade``,
    ``grade_confidence`` and ``grade_explanation`` (at most 500 characters); an invalid
    photo (field case C9) ``grade="no_photo"`` with the reason. None: no fields.
    """
    if graded is None:
        return {}
    fields: dict[str, Any] = {}
    if graded.file is not None:
        f = graded.file
        fields["photo"] = PhotoRef(sha256=f.sha256, taken_at=f.taken_at, size=f.size)
    if graded.grading is not None:
        g = graded.grading
        fields.update(
            grade=g.grade,
            grade_confidence=g.confidence,
            grade_explanation=g.explanation[:GRADE_EXPLANATION_MAX],
        )
    elif not graded.photo.ok:
        fields.update(
            grade="no_photo",
            grade_explanation=f"no valid photo: {graded.photo.reason}"[:GRADE_EXPLANATION_MAX],
        )
    return fields
