"""The sorter core: parcels tracked by belt position, reads associated, lanes decided.

Inputs are timestamped calls (``on_photo_eye``, ``on_barcode``, ``on_rfid``, ``on_grade``,
``on_encoder``, ``on_divert_confirm``, ``on_lane_full``, ``on_resume``); each returns the
actions that became due, and ``advance(t_ms)`` returns those due by ``t_ms``. The shell
calls ``advance`` after every input and again at ``next_wakeup_ms()``. Everything is
deterministic in its inputs: no clock, no I/O, no randomness.

Tracking: the belt's travel (mm) is known at every time from the encoder or from the belt
speed (:class:`~edge.sorter.odometer.Odometer`). A parcel's window opens at induct (photo-eye
blocked, debounced) at belt position ``p0``; its body at time ``t`` spans
``[pos(t) - p0 - length, pos(t) - p0]`` mm downstream of the eye. A read at a station
(scan tunnel, RFID antenna, camera) at position ``s`` with tolerance ``tol`` belongs to the
parcel whose body covers ``s ± tol``; a read that two parcels could own is ambiguous, a
conflict for both.

Decision: once the trailing edge has left the last station (``s + tol``), with what is
known (a reader that never answered simply contributed nothing): identity
(:mod:`~edge.sorter.identify`), RMA state and quantity, then the disposition policy
(:mod:`~edge.sorter.policy`).

Timing (speed ``v``, gate at ``g`` mm, length ``L``): the gate opens at
``t(lead at g) - stroke - margin`` and closes at ``t(trail past g) + margin``. A decision
later than the open time is no decision (``late_decision``); a gate whose open window
would catch another parcel passing it is not fired (``gap_violation``): both parcels run
on to quarantine, the end of the belt.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from edge.sorter.debounce import Debouncer
from edge.sorter.identify import (
    Gs1Item,
    IdentityResult,
    WindowReads,
    identify,
    is_gs1,
    parse_gs1,
    split_aim,
)
from edge.sorter.model import (
    Action,
    Alarm,
    BadRead,
    BeltCommand,
    BeltConfig,
    Decision,
    GateCancel,
    GateCommand,
    Identity,
    LaneSpec,
    Mark,
    OrphanRead,
    ParcelExited,
    Reason,
    RmaDirectory,
    distinct,
)
from edge.sorter.odometer import Odometer
from edge.sorter.policy import Facts, Policy, decide, default_policy
from protocol.messages import canonical_uid

_EPS_MM = 1e-6  # positions compared with this slack: a wake-up computed by time_at is due


@dataclass
class _Parcel:
    """A parcel on the belt, from induct to exit (mutable core state)."""

    parcel_id: int
    inducted_at_ms: float
    induct_pos_mm: float
    length_mm: float | None = None
    labels: list[str] = field(default_factory=list)
    uids: list[str] = field(default_factory=list)
    items: list[Gs1Item] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    grades: list[str | None] = field(default_factory=list)
    decision: Decision | None = None
    command: GateCommand | None = None
    lane: LaneSpec | None = None  # where it physically goes (decision lane or end lane)
    confirmed: bool = False
    marks: list[Mark] = field(default_factory=list)
    ambiguous: int = 0
    sources: set[str] = field(default_factory=set)  # barcode readers that read it

    def body_mm(self, belt_pos_mm: float) -> tuple[float, float]:
        """(trailing, leading) edge, mm downstream of the eye, at belt travel ``belt_pos_mm``."""
        lead = belt_pos_mm - self.induct_pos_mm
        trail = 0.0 if self.length_mm is None else lead - self.length_mm
        return trail, lead


class SorterCore:
    """Tracks parcels from the induct photo-eye to their lane.

    Args:
        config: belt geometry and timing.
        rmas: the station's RMA directory (the cache), queried at decision time; when it
            also implements ``IdentifierDirectory``, tags and serials can name the RMA.
        policy: the disposition policy (default: :func:`~edge.sorter.policy.default_policy`).
    """

    def __init__(
        self, config: BeltConfig, rmas: RmaDirectory, policy: Policy | None = None
    ) -> None:
        self.config = config
        self.rmas = rmas
        self.policy = policy if policy is not None else default_policy()
        self.odometer = Odometer(config.speed_mm_s, config.encoder_mm_per_count)
        self._eye = Debouncer(config.debounce_ms)
        self._ids = itertools.count(1)
        self._parcels: dict[int, _Parcel] = {}
        self._open: _Parcel | None = None  # parcel currently blocking the eye
        self._blocked_since_ms: float | None = None
        self.jammed = False
        self._full: set[str] = set()
        self._received: dict[tuple[str, int], int] = {}
        self._due_pos = max(pos + tol for pos, tol in config.zones())
        speed = config.speed_mm_s
        self._pre_mm = (config.gate_stroke_ms + config.gate_margin_ms) * speed / 1000.0
        self._post_mm = (config.gate_margin_ms + config.gate_stroke_ms) * speed / 1000.0
        self.counters: dict[str, int] = {
            "inducted": 0,
            "orphan_reads": 0,
            "ambiguous_reads": 0,
            "bad_reads": 0,
            "jams": 0,
            "gap_violations": 0,
            "unexpected_confirms": 0,
            "divert_unconfirmed": 0,
        }
        self.lane_counts: dict[str, int] = {lane.name: 0 for lane in config.lanes}

    # -- inputs -------------------------------------------------------------------------
    def on_photo_eye(self, t_ms: float, blocked: bool) -> list[Action]:
        """Raw induct photo-eye level change at ``t_ms`` (True = beam blocked)."""
        actions = self.advance(t_ms)
        for edge in self._eye.feed(t_ms, blocked):
            self._apply_eye_edge(edge.t_ms, edge.level)
        return actions + self.advance(t_ms)

    def on_encoder(self, t_ms: float, count: int) -> list[Action]:
        """Belt encoder sample: cumulative ``count`` at ``t_ms``.

        Raises:
            ValueError: when the belt config has no ``encoder_mm_per_count``.
        """
        self.odometer.on_count(t_ms, count)
        return self.advance(t_ms)

    def on_barcode(
        self,
        t_ms: float,
        code: str,
        symbology: str | None = None,
        *,
        parcel_id: int | None = None,
        source: str = "scanner",
    ) -> list[Action]:
        """A barcode read at ``t_ms`` by the scan tunnel or, as a second reader, the camera.

        ``code`` is the data (an AIM prefix such as ``]C1`` at its start is split off as
        metadata); ``symbology`` is the AIM identifier the scanner reported, if any. GS1
        element strings (by symbology, leading FNC1 or content, see
        :func:`~edge.sorter.identify.is_gs1`) give item identifiers; any other code is an
        RMA label, keyed without its AIM prefix.

        ``source`` is ``"scanner"`` (associated by position at the scan tunnel) or
        ``"camera"`` (the label decoded from the parcel's photo: associated with
        ``parcel_id`` when given, else by position at the camera, like
        :meth:`on_grade`). A camera read is a read like the scanner's: the same code
        twice is one read, a different one is a conflict. It counts only while the parcel
        is undecided; later it is an orphan (a decision is never delayed for it). Camera
        reads are recorded as ``camera:<read>`` in the decision's reads.
        """
        if source not in ("scanner", "camera"):
            raise ValueError(f"unknown barcode source {source!r}")
        actions = self.advance(t_ms)
        item: Gs1Item | None = None
        _, data = split_aim(code, symbology)
        if is_gs1(code, symbology, self.rmas):
            try:
                item = parse_gs1(code, symbology)
            except ValueError as exc:
                self.counters["bad_reads"] += 1
                return [*actions, BadRead("barcode", code, t_ms, str(exc))]
        what = code if source == "scanner" else f"camera:{code}"
        cfg = self.config
        owner: _Parcel | None
        if source == "scanner":
            owner = self._claim(t_ms, cfg.scan_pos_mm, cfg.scan_tol_mm, what, actions)
        elif parcel_id is not None:
            owner = self._undecided(parcel_id, t_ms, what, actions)
        else:
            pos = cfg.camera_pos_mm if cfg.camera_pos_mm is not None else cfg.scan_pos_mm
            owner = self._claim(t_ms, pos, cfg.camera_tol_mm, what, actions)
        prefix = "" if source == "scanner" else "camera:"
        if owner is None:
            pass
        elif item is not None:
            owner.items.append(item)
            owner.reads.append(f"{prefix}gs1:{item.gtin or ''}/{item.serial or ''}")
        else:
            owner.labels.append(data)
            owner.reads.append(prefix + data)
        if owner is not None:
            owner.sources.add(source)
        return actions

    def on_rfid(self, t_ms: float, uid: str) -> list[Action]:
        """An RFID tag UID read at ``t_ms`` (any separator / case; 4, 7 or 10 bytes).

        Repeated reads of one tag, and a tag flickering in and out of the field, are one
        read of the parcel whose window it falls in. A UID that
        :func:`protocol.messages.canonical_uid` refuses (not 4, 7 or 10 bytes of hex, or a
        4-byte one that starts with the cascade tag ``88``: an incomplete 7-byte UID) is a
        bad read.
        """
        actions = self.advance(t_ms)
        try:
            canon = canonical_uid(uid)  # also refuses a cascade-tag-first 4-byte UID (C1)
        except ValueError as exc:
            self.counters["bad_reads"] += 1
            return [*actions, BadRead("rfid", uid, t_ms, str(exc))]
        cfg = self.config
        pos = cfg.rfid_pos_mm if cfg.rfid_pos_mm is not None else cfg.scan_pos_mm
        owner = self._claim(t_ms, pos, cfg.rfid_tol_mm, f"rfid:{canon}", actions)
        if owner is not None and canon not in owner.uids:
            owner.uids.append(canon)
            owner.reads.append(f"rfid:{canon}")
        return actions

    def on_grade(
        self,
        t_ms: float,
        grade: str,
        confidence: float = 1.0,
        parcel_id: int | None = None,
    ) -> list[Action]:
        """A condition grade from the camera/grader at ``t_ms``.

        Associated with ``parcel_id`` when given, else by position at the camera. A grade
        below the policy's ``min_grade_confidence``, or not one of its grades, counts as
        unknown; several grades for one parcel: the worst counts.
        """
        actions = self.advance(t_ms)
        cfg = self.config
        if parcel_id is not None:
            owner = self._undecided(parcel_id, t_ms, f"grade:{grade}", actions)
        else:
            pos = cfg.camera_pos_mm if cfg.camera_pos_mm is not None else cfg.scan_pos_mm
            owner = self._claim(t_ms, pos, cfg.camera_tol_mm, f"grade:{grade}", actions)
        if owner is not None:
            ok = grade in self.policy.grades and confidence >= self.policy.min_grade_confidence
            owner.grades.append(grade if ok else None)
        return actions

    def on_divert_confirm(self, t_ms: float, lane: str) -> list[Action]:
        """The divert-confirm sensor of ``lane`` saw a parcel arrive at ``t_ms``."""
        actions = self.advance(t_ms)
        for p in sorted(self._parcels.values(), key=lambda p: p.parcel_id):
            cmd = p.command
            if (
                cmd is not None
                and p.lane is not None
                and p.lane.name == lane
                and not p.confirmed
                and cmd.open_at_ms <= t_ms <= cmd.close_at_ms + self.config.confirm_timeout_ms
            ):
                p.confirmed = True
                return actions
        self.counters["unexpected_confirms"] += 1
        return actions

    def on_lane_full(self, t_ms: float, lane: str, full: bool) -> list[Action]:
        """The lane-full sensor of ``lane`` changed at ``t_ms`` (True = full).

        Parcels decided for a full lane go on to quarantine with reason ``lane_full``;
        those already sent there whose gate has not begun to open are withdrawn (marks
        ``gate_cancelled``, ``lane_full``).
        """
        actions = self.advance(t_ms)
        if not full:
            self._full.discard(lane)
            return actions
        self._full.add(lane)
        # Parcels already sent there whose gate has not begun to open run on instead.
        for p in sorted(self._parcels.values(), key=lambda p: p.parcel_id):
            if (
                p.command is not None
                and p.lane is not None
                and p.lane.name == lane
                and t_ms < p.command.open_at_ms
            ):
                actions += self._cancel(p, t_ms, self.config.end_lane)
                p.marks.append(Mark.LANE_FULL)
        return actions

    def on_resume(self, t_ms: float) -> list[Action]:
        """The operator resumed the station after a jam: belt runs, jam alarm cleared."""
        actions = self.advance(t_ms)
        if not self.jammed:
            return actions
        self.jammed = False
        self.odometer.set_running(t_ms, True)
        if self._blocked_since_ms is not None:
            self._blocked_since_ms = t_ms  # still blocked: the jam timer starts again
        return [*actions, BeltCommand(True, t_ms, "resume"), Alarm("jam", False, t_ms)]

    # -- time ---------------------------------------------------------------------------
    def advance(self, t_ms: float) -> list[Action]:
        """Return every action due by ``t_ms`` (decisions, gate commands, exits, alarms)."""
        actions: list[Action] = []
        for edge in self._eye.poll(t_ms):
            self._apply_eye_edge(edge.t_ms, edge.level)
        if (
            not self.jammed
            and self._blocked_since_ms is not None
            and t_ms >= self._blocked_since_ms + self.config.jam_ms
        ):
            actions += self._jam(self._blocked_since_ms + self.config.jam_ms)
        pos = self.odometer.position_mm(t_ms)
        for parcel in sorted(self._parcels.values(), key=lambda p: p.parcel_id):
            if (
                parcel.decision is None
                and parcel.length_mm is not None
                and pos + _EPS_MM >= parcel.induct_pos_mm + self._due_pos + parcel.length_mm
            ):
                actions.extend(self._decide(parcel, t_ms))
            if parcel.decision is not None and self._exit_due(parcel, t_ms, pos):
                actions.extend(self._exit(parcel, t_ms))
        return actions

    def next_wakeup_ms(self) -> float | None:
        """Earliest time (ms) at which ``advance`` has something to do, or None."""
        times = [self._eye.next_due_ms()]
        if not self.jammed and self._blocked_since_ms is not None:
            times.append(self._blocked_since_ms + self.config.jam_ms)
        for p in self._parcels.values():
            if p.decision is None:
                if p.length_mm is not None:
                    target = p.induct_pos_mm + self._due_pos + p.length_mm
                    times.append(self.odometer.time_at(target, p.inducted_at_ms))
            else:
                times.append(self._exit_time(p))
        due = [t for t in times if t is not None]
        return min(due) if due else None

    def status(self) -> dict[str, object]:
        """JSON-able state: parcels on the belt, counters, per-lane counts, jam, full lanes."""
        return {
            "on_belt": len(self._parcels),
            "counters": dict(self.counters),
            "lanes": dict(self.lane_counts),
            "jammed": self.jammed,
            "lanes_full": sorted(self._full),
            "policy_version": self.policy.version,
        }

    def received_count(self, rma_number: str, line_index: int) -> int:
        """Items of this RMA line identified on this station since start."""
        return self._received.get((rma_number, line_index), 0)

    # -- tracking -----------------------------------------------------------------------
    def _apply_eye_edge(self, t_ms: float, blocked: bool) -> None:
        if blocked:
            parcel = _Parcel(next(self._ids), t_ms, self.odometer.position_mm(t_ms))
            self._parcels[parcel.parcel_id] = parcel
            self._open = parcel
            self._blocked_since_ms = t_ms
            self.counters["inducted"] += 1
        else:
            self._blocked_since_ms = None
            if self._open is not None:
                self._open.length_mm = self.odometer.position_mm(t_ms) - self._open.induct_pos_mm
                self._open = None

    def _undecided(
        self, parcel_id: int, t_ms: float, what: str, actions: list[Action]
    ) -> _Parcel | None:
        """Parcel ``parcel_id`` if it is still undecided, else None and an orphan read."""
        owner = self._parcels.get(parcel_id)
        if owner is None or owner.decision is not None:
            self.counters["orphan_reads"] += 1
            actions.append(OrphanRead(what, t_ms))
            return None
        return owner

    def _claim(
        self, t_ms: float, zone_mm: float, tol_mm: float, what: str, actions: list[Action]
    ) -> _Parcel | None:
        """The one undecided parcel whose body ± ``tol_mm`` covers the station at ``t_ms``.

        None read: an orphan. Two or more: the read is ambiguous (the parcels are too
        close for this station's tolerance): it is recorded on each of them and counts as
        a conflict for each, never as an identity or grade of either.
        """
        pos = self.odometer.position_mm(t_ms)
        candidates = []
        for parcel in sorted(self._parcels.values(), key=lambda p: p.parcel_id):
            if parcel.decision is not None:
                continue
            trail, lead = parcel.body_mm(pos)
            if trail - tol_mm <= zone_mm <= lead + tol_mm:
                candidates.append(parcel)
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            self.counters["orphan_reads"] += 1
            actions.append(OrphanRead(what, t_ms))
            return None
        self.counters["ambiguous_reads"] += 1
        for parcel in candidates:
            parcel.ambiguous += 1
            parcel.reads.append(f"ambiguous:{what}")
            if what.startswith("grade:"):
                parcel.grades.append(None)
        return None

    def _jam(self, t_ms: float) -> list[Action]:
        self.jammed = True
        self.counters["jams"] += 1
        self.odometer.set_running(t_ms, False)
        actions: list[Action] = [BeltCommand(False, t_ms, "jam"), Alarm("jam", True, t_ms)]
        end = self.config.end_lane
        for p in sorted(self._parcels.values(), key=lambda p: p.parcel_id):
            if p.command is not None and t_ms < p.command.close_at_ms:
                actions += self._cancel(p, t_ms, end)
        return actions

    def _cancel(self, p: _Parcel, t_ms: float, end: LaneSpec) -> list[Action]:
        assert p.command is not None
        cancel = GateCancel(p.parcel_id, p.command.gate, t_ms)
        p.command = None
        p.lane = end
        p.marks.append(Mark.GATE_CANCELLED)
        return [cancel]

    # -- deciding -----------------------------------------------------------------------
    def _facts(self, parcel: _Parcel) -> tuple[IdentityResult, Facts, int | None]:
        reads = WindowReads(
            labels=distinct(parcel.labels),
            uids=distinct(parcel.uids),
            items=tuple(parcel.items),
            ambiguous=parcel.ambiguous,
        )
        ident = identify(reads, self.rmas)
        rma = ident.rma
        line_index: int | None = None
        failure: Reason | None = None
        if ident.identity is Identity.MATCHED and rma is not None:
            free = [
                i for i in ident.lines if self.received_count(rma.number, i) < rma.lines[i].quantity
            ]
            if free:
                line_index = free[0]
            else:
                failure = Reason.QUANTITY_EXCEEDED
        shown = line_index if line_index is not None else (ident.lines[0] if ident.lines else None)
        line = rma.lines[shown] if rma is not None and shown is not None else None
        if self.config.camera_pos_mm is None and not parcel.grades:
            assumed = self.policy.assume_grade_without_camera
            grade = assumed if ident.identity is Identity.MATCHED else None
            source = "assumed" if grade is not None else "none"
        elif parcel.grades:
            known = [g for g in parcel.grades if g is not None]
            worst = max(known, key=self.policy.grades.index) if known else None
            grade = None if None in parcel.grades else worst
            source = "camera"
        else:
            grade, source = None, "none"
        facts = Facts(
            identity=ident.identity,
            rma_state=rma.state if rma is not None else "",
            grade=grade,
            grade_source=source,
            sku=line.sku if line else None,
            category=line.category if line else None,
            rma_reason=rma.reason if rma is not None else None,
            failure=failure,
        )
        return ident, facts, line_index

    def _decide(self, parcel: _Parcel, t_ms: float) -> list[Action]:
        cfg = self.config
        length = parcel.length_mm or 0.0
        ident, facts, line_index = self._facts(parcel)
        outcome = decide(self.policy, facts)
        reason = outcome.reason
        why = [ident.detail, outcome.explanation]
        if "camera" in parcel.sources:
            why.insert(0, "label read by " + " and ".join(sorted(parcel.sources)))
        lane: LaneSpec | None = cfg.lane_for(outcome.disposition)
        if lane is None:
            lane, reason = cfg.end_lane, Reason.NO_LANE
            why.append(f"no {outcome.disposition} lane")
        elif lane.name in self._full:
            lane, reason = cfg.end_lane, Reason.LANE_FULL
            why.append("lane full")
        command: GateCommand | None = None
        actions: list[Action] = []
        gate = lane.gate
        if gate is not None:
            lead_pos = parcel.induct_pos_mm + lane.pos_mm
            t_lead = self.odometer.time_at(lead_pos, t_ms)
            t_trail = self.odometer.time_at(lead_pos + length, t_ms)
            if t_lead is None or t_trail is None:
                lane, reason = cfg.end_lane, Reason.BELT_STOPPED
                why.append("belt stopped")
            elif t_ms > t_lead - cfg.gate_stroke_ms - cfg.gate_margin_ms:
                lane, reason = cfg.end_lane, Reason.LATE_DECISION
                late = t_ms - (t_lead - cfg.gate_stroke_ms - cfg.gate_margin_ms)
                why.append(f"decided {late:.0f} ms after the gate's latest open time")
            elif self._gate_blocked(parcel, lane):
                lane, reason = cfg.end_lane, Reason.GAP_VIOLATION
                self.counters["gap_violations"] += 1
                why.append("another parcel too close to divert apart")
            else:
                command = GateCommand(
                    parcel.parcel_id,
                    gate,
                    t_lead - cfg.gate_stroke_ms - cfg.gate_margin_ms,
                    t_trail + cfg.gate_margin_ms,
                    lead_pos - self._pre_mm,
                    lead_pos + length + cfg.gate_margin_ms * cfg.speed_mm_s / 1000.0,
                )
        # The parcel passes every gate upstream of its lane: gates opened for others
        # that would catch it are withdrawn (both parcels run on to quarantine).
        caught = self._caught_by(parcel, lane)
        if caught:
            if command is not None:
                command = None
                lane, reason = cfg.end_lane, Reason.GAP_VIOLATION
                why.append("another parcel too close to divert apart")
            self.counters["gap_violations"] += 1
            while caught:
                for other in caught:
                    actions += self._cancel(other, t_ms, cfg.end_lane)
                again = {
                    q.parcel_id: q for p in (parcel, *caught) for q in self._caught_by(p, lane)
                }
                caught = [again[k] for k in sorted(again)]
        if rma_ok(facts) and line_index is not None and ident.rma is not None:
            key = (ident.rma.number, line_index)
            self._received[key] = self._received.get(key, 0) + 1
        decision = Decision(
            parcel.parcel_id,
            lane,
            reason,
            ident.rma.number if ident.rma is not None else None,
            distinct(parcel.reads),
            t_ms,
            policy_version=self.policy.version,
            inputs=(*facts.as_inputs(), ("rule", str(outcome.rule)), *self._source_input(parcel)),
            explanation=f"{lane.name}: {reason.value}; " + "; ".join(w for w in why if w),
        )
        parcel.decision = decision
        parcel.command = command
        parcel.lane = lane
        actions.insert(0, decision)
        if command is not None:
            actions.append(command)
        return actions

    @staticmethod
    def _source_input(parcel: _Parcel) -> tuple[tuple[str, str], ...]:
        """``barcode_source`` input when the camera read the label (scanner-only: none)."""
        if "camera" not in parcel.sources:
            return ()
        return (("barcode_source", "+".join(sorted(parcel.sources))),)

    def _occupancy(self, p: _Parcel, gate_pos: float) -> tuple[float, float]:
        """Belt travel (mm) during which ``p`` is at the gate at ``gate_pos``."""
        start = p.induct_pos_mm + gate_pos
        return start, (start + p.length_mm if p.length_mm is not None else float("inf"))

    def _passes(self, p: _Parcel, gate_pos: float) -> bool:
        """True when ``p`` will run past the gate at ``gate_pos`` (not diverted before)."""
        lane = p.lane
        if lane is None:
            return True  # undecided: assume it runs past (fail safe)
        return lane.gate is None or lane.pos_mm > gate_pos

    def _window(self, p: _Parcel, gate_pos: float) -> tuple[float, float]:
        start, end = self._occupancy(p, gate_pos)
        return start - self._pre_mm, end + self._post_mm

    def _gate_blocked(self, parcel: _Parcel, lane: LaneSpec) -> bool:
        w0, w1 = self._window(parcel, lane.pos_mm)
        for q in self._parcels.values():
            if q is parcel:
                continue
            if q.lane is not None and q.lane.name == lane.name and q.command is not None:
                continue  # diverted by the same gate: the windows merge (see GateCommand)
            if not self._passes(q, lane.pos_mm):
                continue
            o0, o1 = self._occupancy(q, lane.pos_mm)
            if o0 < w1 and w0 < o1:
                return True
        return False

    def _caught_by(self, parcel: _Parcel, lane: LaneSpec) -> list[_Parcel]:
        """Other parcels whose pending gate command would catch ``parcel`` on its way."""
        out = []
        for q in sorted(self._parcels.values(), key=lambda p: p.parcel_id):
            if q is parcel or q.command is None or q.lane is None:
                continue
            gate_pos = q.lane.pos_mm
            if lane.gate is not None and lane.pos_mm <= gate_pos:
                continue  # diverted before (or at its own gate, checked at decision)
            o0, o1 = self._occupancy(parcel, gate_pos)
            w0, w1 = self._window(q, gate_pos)
            if o0 < w1 and w0 < o1:
                out.append(q)
        return out

    # -- exits --------------------------------------------------------------------------
    def _exit_time(self, p: _Parcel) -> float | None:
        assert p.lane is not None
        if p.command is not None:
            extra = self.config.confirm_timeout_ms if p.lane.confirm else 0.0
            return p.command.close_at_ms + extra
        target = p.induct_pos_mm + p.lane.pos_mm + (p.length_mm or 0.0)
        return self.odometer.time_at(target, p.inducted_at_ms)

    def _exit_due(self, p: _Parcel, t_ms: float, pos: float) -> bool:
        assert p.lane is not None
        if p.command is not None:
            exit_at = self._exit_time(p)
            return exit_at is not None and t_ms >= exit_at
        return pos + _EPS_MM >= p.induct_pos_mm + p.lane.pos_mm + (p.length_mm or 0.0)

    def _exit(self, p: _Parcel, t_ms: float) -> list[Action]:
        assert p.decision is not None and p.lane is not None
        del self._parcels[p.parcel_id]
        actions: list[Action] = []
        if p.command is not None and p.lane.confirm and not p.confirmed:
            p.marks.append(Mark.DIVERT_UNCONFIRMED)
            self.counters["divert_unconfirmed"] += 1
            actions.append(Alarm("divert_unconfirmed", True, t_ms, p.lane.name, p.parcel_id))
        self.lane_counts[p.lane.name] += 1
        exit_at = self._exit_time(p)
        actions.insert(
            0,
            ParcelExited(
                p.decision,
                p.inducted_at_ms,
                p.length_mm or 0.0,
                exit_at if exit_at is not None else t_ms,
                tuple(p.marks),
                None if p.lane == p.decision.lane else p.lane,
            ),
        )
        return actions


def rma_ok(facts: Facts) -> bool:
    """True when the facts identify an item of an authorized RMA line (counts as received)."""
    return facts.identity is Identity.MATCHED and facts.rma_state == "authorized"
