"""The sorter core: parcels tracked by belt position, reads associated, lanes decided.

Inputs are timestamped calls (``on_photo_eye``, ``on_barcode``); ``advance(t_ms)`` returns
the actions that became due. The shell calls ``advance`` after every input and again at
``next_wakeup_ms()``. Everything is deterministic in its inputs.

Timing model (belt speed ``v`` mm/s, lane gate at ``p`` mm, parcel length ``L`` mm, induct
at ``t0``): the leading edge reaches the gate at ``t0 + p/v``; the gate is energised from
that time minus stroke and margin until the trailing edge has passed (``t0 + (p+L)/v`` plus
margin). A parcel is decided once its trailing edge leaves the scan tunnel; if that is
after the latest time its gate could still open, it goes on to quarantine (fail safe).
"""

from __future__ import annotations

import itertools

from edge.sorter.debounce import Debouncer
from edge.sorter.model import (
    Action,
    BeltConfig,
    Decision,
    Disposition,
    GateCommand,
    LaneSpec,
    OrphanRead,
    ParcelExited,
    Reason,
    RmaDirectory,
    TrackedParcel,
    distinct,
)

_STATE_REASONS = {
    "cancelled": Reason.RMA_CANCELLED,
    "expired": Reason.RMA_EXPIRED,
    "received": Reason.RMA_ALREADY_RECEIVED,
}


class SorterCore:
    """Tracks parcels from the induct photo-eye to their lane.

    Args:
        config: belt geometry and timing.
        rmas: the station's RMA directory (the cache), queried at decision time.
    """

    def __init__(self, config: BeltConfig, rmas: RmaDirectory) -> None:
        self.config = config
        self.rmas = rmas
        self._eye = Debouncer(config.debounce_ms)
        self._ids = itertools.count(1)
        self._parcels: dict[int, TrackedParcel] = {}
        self._open: TrackedParcel | None = None  # parcel currently blocking the eye
        self.counters: dict[str, int] = {"inducted": 0, "orphan_reads": 0}
        self.lane_counts: dict[str, int] = {lane.name: 0 for lane in config.lanes}

    # -- inputs ---------------------------------------------------------------------
    def on_photo_eye(self, t_ms: float, blocked: bool) -> list[Action]:
        """Raw induct photo-eye level change at ``t_ms`` (True = beam blocked)."""
        for edge in self._eye.feed(t_ms, blocked):
            self._apply_eye_edge(edge.t_ms, edge.level)
        return self.advance(t_ms)

    def on_barcode(self, t_ms: float, code: str) -> list[Action]:
        """A label barcode read by the scan tunnel at ``t_ms`` (code without AIM prefix)."""
        actions = self.advance(t_ms)
        owner = self._owner_of_read(t_ms)
        if owner is None:
            self.counters["orphan_reads"] += 1
            actions.append(OrphanRead(code, t_ms))
        else:
            owner.reads.append(code)
        return actions

    # -- time -----------------------------------------------------------------------
    def advance(self, t_ms: float) -> list[Action]:
        """Return every action due by ``t_ms`` (decisions, gate commands, exits)."""
        for edge in self._eye.poll(t_ms):
            self._apply_eye_edge(edge.t_ms, edge.level)
        actions: list[Action] = []
        for parcel in sorted(self._parcels.values(), key=lambda p: p.inducted_at_ms):
            due = self._decision_due_ms(parcel)
            if parcel.decision is None and due is not None and t_ms >= due:
                actions.extend(self._decide(parcel, t_ms))
            if parcel.exit_at_ms is not None and t_ms >= parcel.exit_at_ms:
                actions.append(self._exit(parcel))
        return actions

    def next_wakeup_ms(self) -> float | None:
        """Earliest time (ms) at which ``advance`` has something to do, or None."""
        times = [self._eye.next_due_ms()]
        for parcel in self._parcels.values():
            times.append(parcel.exit_at_ms if parcel.decision else self._decision_due_ms(parcel))
        due = [t for t in times if t is not None]
        return min(due) if due else None

    def status(self) -> dict[str, object]:
        """JSON-able state: parcels on the belt, counters, per-lane counts."""
        return {
            "on_belt": len(self._parcels),
            "counters": dict(self.counters),
            "lanes": dict(self.lane_counts),
        }

    # -- internals ------------------------------------------------------------------
    def _apply_eye_edge(self, t_ms: float, blocked: bool) -> None:
        if blocked:
            parcel = TrackedParcel(next(self._ids), t_ms)
            self._parcels[parcel.parcel_id] = parcel
            self._open = parcel
            self.counters["inducted"] += 1
        elif self._open is not None:
            self._open.cleared_at_ms = t_ms
            self._open = None

    def _owner_of_read(self, t_ms: float) -> TrackedParcel | None:
        cfg = self.config
        candidates = []
        for parcel in self._parcels.values():
            if parcel.decision is not None:
                continue
            trail, lead = parcel.body_mm(cfg, t_ms)
            if trail - cfg.scan_tol_mm <= cfg.scan_pos_mm <= lead + cfg.scan_tol_mm:
                candidates.append(parcel)
        if not candidates:
            return None
        # Nearest body centre to the scan tunnel wins; ties are impossible on one belt.
        return min(candidates, key=lambda p: abs(sum(p.body_mm(cfg, t_ms)) / 2 - cfg.scan_pos_mm))

    def _decision_due_ms(self, parcel: TrackedParcel) -> float | None:
        length = parcel.length_mm(self.config)
        if length is None:
            return None
        cfg = self.config
        return parcel.inducted_at_ms + cfg.travel_ms(cfg.scan_pos_mm + cfg.scan_tol_mm + length)

    def _choose(self, parcel: TrackedParcel) -> tuple[Disposition, Reason, str | None]:
        reads = distinct(parcel.reads)
        if not reads:
            return Disposition.QUARANTINE, Reason.NO_READ, None
        if len(reads) > 1:
            return Disposition.QUARANTINE, Reason.CONFLICTING_READS, None
        rma = self.rmas.lookup_rma(reads[0])
        if rma is None:
            return Disposition.QUARANTINE, Reason.UNKNOWN_RMA, None
        state_reason = _STATE_REASONS.get(rma.state)
        if state_reason is not None:
            return Disposition.QUARANTINE, state_reason, rma.number
        return Disposition.RESTOCK, Reason.MATCHED, rma.number

    def _decide(self, parcel: TrackedParcel, t_ms: float) -> list[Action]:
        cfg = self.config
        length = parcel.length_mm(cfg) or 0.0
        disposition, reason, rma_number = self._choose(parcel)
        lane: LaneSpec | None = cfg.lane_for(disposition)
        if lane is None:
            lane, reason = cfg.end_lane, Reason.NO_LANE
        command: GateCommand | None = None
        gate = lane.gate
        if gate is not None:
            lead_at_gate = parcel.inducted_at_ms + cfg.travel_ms(lane.pos_mm)
            open_at = lead_at_gate - cfg.gate_stroke_ms - cfg.gate_margin_ms
            if t_ms > open_at:
                lane, reason = cfg.end_lane, Reason.LATE_DECISION
            else:
                close_at = lead_at_gate + cfg.travel_ms(length) + cfg.gate_margin_ms
                command = GateCommand(parcel.parcel_id, gate, open_at, close_at)
        if command is None:
            exit_at = parcel.inducted_at_ms + cfg.travel_ms(lane.pos_mm + length)
        else:
            exit_at = command.close_at_ms
        decision = Decision(
            parcel.parcel_id, lane, reason, rma_number, distinct(parcel.reads), t_ms
        )
        parcel.decision = decision
        parcel.exit_at_ms = exit_at
        return [decision] if command is None else [decision, command]

    def _exit(self, parcel: TrackedParcel) -> ParcelExited:
        assert parcel.decision is not None and parcel.exit_at_ms is not None
        del self._parcels[parcel.parcel_id]
        self.lane_counts[parcel.decision.lane.name] += 1
        return ParcelExited(
            parcel.decision,
            parcel.inducted_at_ms,
            parcel.length_mm(self.config) or 0.0,
            parcel.exit_at_ms,
        )
