"""The sorter core: parcels tracked by belt position, reads associated, lanes decided.

Inputs are timestamped calls (``on_photo_eye``, ``on_barcode``, ``on_rfid``, ``on_grade``,
``on_weighing``, ``on_footprint``, ``on_encoder``, ``on_divert_confirm``,
``on_lane_full``, ``on_gate_fault``, ``on_resume``); each returns the
actions that became due (``Inducted``, ``Decision``, ``GateCommand``, ``GateCancel``,
``ParcelExited``, ``BeltCommand``, ``Alarm``, ``OrphanRead``, ``BadRead``), and
``advance(t_ms)`` returns those due by ``t_ms``. The shell
calls ``advance`` after every input and again at ``next_wakeup_ms()``. Everything is
deterministic in its inputs: no clock, no I/O, no randomness.

Tracking: the belt's travel (mm) is known at every time from the encoder or from the belt
speed (:class:`~edge.sorter.odometer.Odometer`). A parcel's window opens at induct (photo-eye
blocked, debounced) at belt position ``p0``; its body at time ``t`` spans
``[pos(t) - p0 - length, pos(t) - p0]`` mm downstream of the eye. A read at a station
(scan tunnel, RFID antenna, camera) at position ``s`` with tolerance ``tol`` belongs to the
parcel whose body covers ``s ± tol``; a read that two parcels could own is ambiguous, a
conflict for both.

Read timing: a reader cannot say exactly when it saw a code; it says that it saw it within
``[t_ms - latency_ms, t_ms]`` (``latency_ms``: the uncertainty its driver measured, ms).
The read belongs to a parcel only when the belt travel over that whole interval keeps
``s`` within that one parcel's body ``± tol`` (and no other's): an interval that covers
two parcels, or a gap and a parcel, is ambiguous (reason ``ambiguous_read`` for every
undecided parcel it could belong to), never evidence. Parcels already decided or gone
still count as possible owners (a read stamped late after its parcel left is never given
to the next one). A read its driver knows to be late (``late``: delivered later than the
reader's healthy bound) is never evidence for anyone: it is ambiguous for every undecided
parcel of its interval, counted (``late_reads``) and raises ``station_overloaded``.
A camera's reads (label, grade, footprint) come by parcel id, from the photo its trigger
took; given the frame's capture time (``seen_ms``), the photo counts only when that
parcel was alone at the camera then: a capture the camera worker made late (it shows the
next parcel) is ambiguous for the parcel it was meant for.

Decision: once the trailing edge has left the last station (``s + tol``), with what is
known (a reader that never answered simply contributed nothing): every read classified
(:mod:`protocol.codes`), identity and the evidence per RMA line
(:mod:`~edge.sorter.identify`), RMA state, the units the parcel claims, the physical
check of those units against the catalogue (:mod:`~edge.sorter.physical`: the
checkweigher's weighing and the camera's footprint; out of tolerance: quarantine
``weight_mismatch`` / ``size_mismatch``, a definite finding that comes before a mere lack
of proof), the verification table for the units it did not verify, then the disposition
policy (:mod:`~edge.sorter.policy`).

Inspection lane: a parcel the verification table inspects goes to the policy's
``inspection_lane`` when the belt has that lane (gated, disposition quarantine), timed like
any divert; else, like every other quarantined parcel, to the end of the belt.

Physical check: on a station with a checkweigher (``BeltConfig.scale_pos_mm``) or for a
parcel the camera measured, the claimed units (grouped per RMA line) are checked with the
policy's :class:`~edge.sorter.physical.PhysicalCheck`; the verdict goes into the
decision's inputs (``physical``, ``weight_check``, ``size_check``) and explanation. A
check that cannot be made (no weighing, no catalogue weight) is ``unknown`` and decides
nothing.

Claim rule (which RMA units a parcel claims, ``Decision.units``): each line the parcel
showed item evidence for (serial, tag, GTIN) claims one unit with that evidence: one read
identifier proves one unit, never one of another line. When the RMA's label was read,
the parcel also claims, as unverified ``label`` evidence, the next outstanding unit of
every other line that has one: the label stands for the RMA, so a lead sees every line
the box is said to hold (a box holding less is inspected by the verification table, and
the gateway credits only verified units), but never more than one unit per line, so the
claim errs on the side of claiming too little (a second box with the same label claims
the next units; the lead receives anything else). A parcel named by its items alone (no
label read) claims only the units it showed. An item read for a line with nothing
outstanding is ``quantity_exceeded`` (the same unit a second time); so is a parcel with
nothing left to claim. At most ``MAX_UNITS_PER_EVENT`` units per parcel.

Outstanding units of a line = quantity - (units the gateway has received, from any
station and any source, ``received_quantity``) - (this station's own claims the gateway
has not counted yet: own claims - ``received_here``, all of them when the gateway does
not say). Own claims are the highest unit this station recorded in its store
(``ReceiptBook``) or, for claims not yet persisted, in the core's memory: a claim is
visible to the next decision at once, also within one ``advance`` call, and a new core
over the same store starts from the persisted receipts. Units are numbered per station:
a claim takes the next number after both its own and the gateway's count of its
receipts, so a restart never claims one unit twice.

Timing (speed ``v``, gate at ``g`` mm, length ``L``): the gate opens at
``t(lead at g) - stroke - margin`` and closes at ``t(trail past g) + margin``. A decision
later than the open time is no decision (``late_decision``); a gate whose open window
would catch another parcel passing it is not fired (``gap_violation``): both parcels run
on to quarantine, the end of the belt. A gate the shell could not fire within the margin
(``on_gate_late``: the station is overloaded) is not fired late into the parcel or its
neighbour: the parcel runs on to quarantine (``late_gate``).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field, replace

from edge.sorter.debounce import Debouncer
from edge.sorter.identify import (
    Gs1Item,
    IdentityResult,
    WindowReads,
    identify,
    item_of,
)
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
    ReceiptBook,
    RmaDirectory,
    RmaRecord,
    distinct,
)
from edge.sorter.odometer import Odometer
from edge.sorter.physical import Claim, Footprint, PhysicalVerdict, WeightMeasure, check_parcel
from edge.sorter.policy import (
    Facts,
    Outcome,
    Policy,
    UnitFacts,
    Verification,
    decide,
    default_policy,
    verify,
)
from protocol.codes import DEFAULT_CLASSIFIER, Classified, CodeClassifier
from protocol.messages import (
    EVIDENCE_ORDER,
    MAX_READS_PER_EVENT,
    MAX_UNITS_PER_EVENT,
    CodeClass,
    CodeRead,
    Evidence,
    UnitReceipt,
    canonical_uid,
)

_LABELS = (CodeClass.RMA_LABEL,)
_OTHERS = (CodeClass.SSCC, CodeClass.TRACKING)

OVERLOAD_CLEAR_MS = 60_000.0
"""The ``station_overloaded`` alarm clears this long after the last late gate, ms."""
PASSED_KEPT = 32
"""Parcels gone from the belt kept as possible owners of late-stamped reads."""
RETIME_MS = 1.0
"""With an encoder, a pending gate time that moved more than this (ms) is re-issued."""
_EPS_MM = 1e-6  # positions compared with this slack: a wake-up computed by time_at is due


@dataclass
class _Parcel:
    """A parcel on the belt, from induct to exit (mutable core state)."""

    parcel_id: int
    inducted_at_ms: float
    induct_pos_mm: float
    length_mm: float | None = None
    labels: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    garbled: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    tracking: list[str] = field(default_factory=list)
    uids: list[str] = field(default_factory=list)
    items: list[Gs1Item] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    codes: dict[tuple[str, str, str], CodeRead] = field(default_factory=dict)
    grades: list[str | None] = field(default_factory=list)
    decision: Decision | None = None
    command: GateCommand | None = None
    lane: LaneSpec | None = None  # where it physically goes (decision lane or end lane)
    confirmed: bool = False
    marks: list[Mark] = field(default_factory=list)
    ambiguous: int = 0
    late: int = 0  # of the ambiguous reads, those their reader delivered late
    sources: set[str] = field(default_factory=set)  # barcode readers that read it
    weighings: list[WeightMeasure] = field(default_factory=list)
    weigh_problems: list[str] = field(default_factory=list)
    footprint_mm: tuple[float, float] | None = None

    def add_code(self, code: CodeRead) -> None:
        """Record a classified read once (by class, value and reader)."""
        key = (code.code_class.value, code.value, code.source)
        if key not in self.codes and len(self.codes) < MAX_READS_PER_EVENT:
            self.codes[key] = code

    def body_mm(self, belt_pos_mm: float) -> tuple[float, float]:
        """(trailing, leading) edge, mm downstream of the eye, at belt travel ``belt_pos_mm``."""
        lead = belt_pos_mm - self.induct_pos_mm
        trail = 0.0 if self.length_mm is None else lead - self.length_mm
        return trail, lead


def _covers(
    induct_pos_mm: float, length_mm: float | None, zone_mm: float, tol_mm: float
) -> tuple[float, float]:
    """Belt travel (mm) over which a parcel's body ± ``tol_mm`` covers ``zone_mm``.

    The parcel inducted at belt travel ``induct_pos_mm``; unknown length (still at the
    eye): no end.
    """
    start = induct_pos_mm + zone_mm - tol_mm
    end = float("inf") if length_mm is None else induct_pos_mm + zone_mm + length_mm + tol_mm
    return start, end


def _near(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= RETIME_MS


class SorterCore:
    """Tracks parcels from the induct photo-eye to their lane.

    Args:
        config: belt geometry and timing.
        rmas: the station's RMA directory (the cache), queried at decision time; when it
            also implements ``IdentifierDirectory``, tags and serials can name the RMA;
            when it implements ``ReceiptBook``, claims start from its durable receipts.
        policy: the disposition policy (default: :func:`~edge.sorter.policy.default_policy`).
        classifier: the code classifier (a site's tracking rules; default: the built-in
            one, :data:`protocol.codes.DEFAULT_CLASSIFIER`).
    """

    def __init__(
        self,
        config: BeltConfig,
        rmas: RmaDirectory,
        policy: Policy | None = None,
        classifier: CodeClassifier | None = None,
    ) -> None:
        self.config = config
        self.rmas = rmas
        self.policy = policy if policy is not None else default_policy()
        self.classifier = classifier if classifier is not None else DEFAULT_CLASSIFIER
        self.odometer = Odometer(config.speed_mm_s, config.encoder_mm_per_count)
        self._eye = Debouncer(config.debounce_ms)
        self._ids = itertools.count(1)
        self._parcels: dict[int, _Parcel] = {}
        self._open: _Parcel | None = None  # parcel currently blocking the eye
        self._blocked_since_ms: float | None = None
        self.holds: set[str] = set()
        """Why the belt is stopped (``jam``, ``pause``, ``estop``); it runs when empty."""
        self._full: set[str] = set()
        self._faulted: set[str] = set()  # lanes whose gate cannot be driven now
        # Claims not (yet) in the receipt book: (RMA, line number) -> highest unit claimed.
        self._claims: dict[tuple[str, int], int] = {}
        self._due_pos = max(pos + tol for pos, tol in config.zones())
        speed = config.speed_mm_s
        self._pre_mm = (config.gate_stroke_ms + config.gate_margin_ms) * speed / 1000.0
        self._post_mm = (config.gate_margin_ms + config.gate_stroke_ms) * speed / 1000.0
        self.counters: dict[str, int] = {
            "inducted": 0,
            "orphan_reads": 0,
            "ambiguous_reads": 0,
            "late_reads": 0,
            "bad_reads": 0,
            "jams": 0,
            "gap_violations": 0,
            "unexpected_confirms": 0,
            "divert_unconfirmed": 0,
            "late_gates": 0,
            "weighings": 0,
        }
        self._overloaded_until_ms: float | None = None
        # (induct position, length) of parcels gone: still possible owners of a late read
        self._passed: deque[tuple[float, float | None]] = deque(maxlen=PASSED_KEPT)
        self.lane_counts: dict[str, int] = {lane.name: 0 for lane in config.lanes}

    # -- inputs -------------------------------------------------------------------------
    def on_photo_eye(self, t_ms: float, blocked: bool) -> list[Action]:
        """Raw induct photo-eye level change at ``t_ms`` (True = beam blocked).

        A parcel is inducted when the blocked level is accepted (debounced): an
        :class:`~edge.sorter.model.Inducted` action with its id, from this call or from
        the ``advance`` at the debounce's due time.
        """
        actions = self.advance(t_ms)
        for edge in self._eye.feed(t_ms, blocked):
            actions += self._apply_eye_edge(edge.t_ms, edge.level)
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
        latency_ms: float = 0.0,
        late: bool = False,
        seen_ms: float | None = None,
    ) -> list[Action]:
        """A barcode read at ``t_ms`` by the scan tunnel or, as a second reader, the camera.

        ``latency_ms`` (>= 0): the read was observed within ``[t_ms - latency_ms, t_ms]``;
        ``late``: its reader knows it was delivered later than its healthy bound (never
        evidence). See "Read timing" in the module doc. ``seen_ms``: for a camera read
        by ``parcel_id``, when its photo was captured (the frame's time; None: not
        checked): a photo captured while that parcel was not alone at the camera (a late
        capture shows the next one) is evidence for nobody (``ambiguous_read``).

        ``code`` is the data (an AIM prefix such as ``]C1`` at its start is split off as
        metadata); ``symbology`` is the AIM identifier the scanner reported, if any. The
        code classifier (:mod:`protocol.codes`) names the read: an RMA label (a number the
        directory knows, or ours with a valid check character), a product (GS1 element
        string, retail EAN / UPC / ITF-14: item identifiers, never a second label), an
        SSCC or tracking number (reported, no evidence), a garbled read (also a
        :class:`BadRead`), or unknown (it may be the label of an RMA nobody announced).

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
        c = self.classifier.classify(code, symbology, self._known)
        if c.code_class is CodeClass.GARBLED:
            self.counters["bad_reads"] += 1
            actions.append(BadRead("barcode", code, t_ms, c.detail or "garbled"))
        prefix = "" if source == "scanner" else "camera:"
        what = prefix + _read_key(c)
        cfg = self.config
        owner: _Parcel | None
        if source == "scanner":
            owner = self._claim(
                t_ms, cfg.scan_pos_mm, cfg.scan_tol_mm, what, actions, latency_ms, late
            )
        elif parcel_id is not None:
            owner = self._photo_of(parcel_id, t_ms, seen_ms, latency_ms, what, actions)
        else:
            pos = cfg.camera_pos_mm if cfg.camera_pos_mm is not None else cfg.scan_pos_mm
            owner = self._claim(t_ms, pos, cfg.camera_tol_mm, what, actions, latency_ms, late)
        if owner is None:
            return actions
        cls = c.code_class
        if cls in _LABELS:
            owner.labels.append(c.value)
            owner.sources.add(source)
        elif cls is CodeClass.UNKNOWN:
            owner.texts.append(c.value)
            owner.sources.add(source)
        elif c.is_item:
            owner.items.append(item_of(c))
        elif cls is CodeClass.GARBLED:
            owner.garbled.append(c.value)
        elif cls in _OTHERS:
            owner.others.append(c.value)
            if cls is CodeClass.TRACKING:
                owner.tracking.append(c.value)
        owner.reads.append(what)
        owner.add_code(c.code_read("scanner" if source == "scanner" else "camera"))
        return actions

    def _known(self, number: str) -> bool:
        return self.rmas.lookup_rma(number) is not None

    def on_rfid(
        self, t_ms: float, uid: str, *, latency_ms: float = 0.0, late: bool = False
    ) -> list[Action]:
        """An RFID tag UID read at ``t_ms`` (any separator / case; 4, 7 or 10 bytes).

        ``latency_ms`` / ``late``: the read's timing, as for :meth:`on_barcode` (the
        poll that saw the tag ran within ``[t_ms - latency_ms, t_ms]``).

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
        owner = self._claim(t_ms, pos, cfg.rfid_tol_mm, f"rfid:{canon}", actions, latency_ms, late)
        if owner is not None and canon not in owner.uids:
            owner.uids.append(canon)
            owner.reads.append(f"rfid:{canon}")
            owner.add_code(CodeRead(code_class=CodeClass.TAG, value=canon, source="rfid"))
        return actions

    def on_grade(
        self,
        t_ms: float,
        grade: str,
        confidence: float = 1.0,
        parcel_id: int | None = None,
        seen_ms: float | None = None,
    ) -> list[Action]:
        """A condition grade from the camera/grader at ``t_ms``.

        Associated with ``parcel_id`` when given (``seen_ms``: the photo's capture time,
        checked as in :meth:`on_barcode`), else by position at the camera. A grade
        below the policy's ``min_grade_confidence``, or not one of its grades, counts as
        unknown; several grades for one parcel: the worst counts.
        """
        actions = self.advance(t_ms)
        cfg = self.config
        if parcel_id is not None:
            owner = self._photo_of(parcel_id, t_ms, seen_ms, 0.0, f"grade:{grade}", actions)
        else:
            pos = cfg.camera_pos_mm if cfg.camera_pos_mm is not None else cfg.scan_pos_mm
            owner = self._claim(t_ms, pos, cfg.camera_tol_mm, f"grade:{grade}", actions)
        if owner is not None:
            ok = grade in self.policy.grades and confidence >= self.policy.min_grade_confidence
            owner.grades.append(grade if ok else None)
        return actions

    def on_weighing(
        self,
        t_ms: float,
        t_end_ms: float,
        weight_g: float | None,
        problem: str | None = None,
    ) -> list[Action]:
        """A checkweigher weighing: a plateau from ``t_ms`` to ``t_end_ms`` (ms), grams.

        ``weight_g`` is None when the load could not be weighed (``problem``: e.g.
        ``not_settled``, ``overload``). The weighing belongs to the one undecided parcel
        whose body lay wholly on the platform (``BeltConfig.platform_mm`` within
        ``scale_tol_mm``) from ``t_ms`` to ``t_end_ms``, its length known. When another
        parcel touched the platform meanwhile, the weight is both parcels' and is
        unusable (counted as an ambiguous read; the check stays ``unknown``). No owner:
        an orphan read. Several usable weighings of one parcel: the last counts.
        """
        actions = self.advance(max(t_ms, t_end_ms))
        what = "weight:" + (f"{weight_g:.0f}g" if weight_g is not None else problem or "none")
        platform = self.config.platform_mm()
        if platform is None:
            self.counters["orphan_reads"] += 1
            return [*actions, OrphanRead(what, t_end_ms)]
        start, end = platform
        tol = self.config.scale_tol_mm
        pos0, pos1 = self.odometer.position_mm(t_ms), self.odometer.position_mm(t_end_ms)
        wholly, touching = [], 0
        for parcel in sorted(self._parcels.values(), key=lambda p: p.parcel_id):
            trail0, _ = parcel.body_mm(pos0)
            _, lead1 = parcel.body_mm(pos1)
            if trail0 < end and lead1 > start:
                touching += 1
            if (
                parcel.decision is None
                and parcel.length_mm is not None
                and trail0 >= start - tol
                and lead1 <= end + tol
            ):
                wholly.append(parcel)
        if len(wholly) != 1:
            self.counters["orphan_reads"] += 1
            return [*actions, OrphanRead(what, t_end_ms)]
        owner = wholly[0]
        self.counters["weighings"] += 1
        if touching > 1:
            self.counters["ambiguous_reads"] += 1
            owner.reads.append(f"ambiguous:{what}")
            owner.weigh_problems.append("another parcel on the platform")
        elif weight_g is None:
            owner.reads.append(what)
            owner.weigh_problems.append(problem or "no weight")
        else:
            owner.reads.append(what)
            owner.weighings.append(WeightMeasure(weight_g))
        return actions

    def on_footprint(
        self,
        t_ms: float,
        length_mm: float,
        width_mm: float,
        parcel_id: int,
        seen_ms: float | None = None,
    ) -> list[Action]:
        """The camera's footprint of parcel ``parcel_id`` (mm, sides in any order).

        ``seen_ms``: the photo's capture time, checked as in :meth:`on_barcode` (a photo
        of another parcel measures nothing of this one).

        Checked at decision against the catalogue dimensions of the units the parcel
        claims (policy ``physical.size_check``, tolerance ``grading.footprint_tol_mm``
        plus the line's ``size_tol_mm``). After the decision it is an orphan.

        Raises:
            ValueError: a side that is not a positive finite number of mm.
        """
        if not all(0 < v < float("inf") for v in (length_mm, width_mm)):
            raise ValueError(f"footprint sides must be positive mm, got {length_mm}, {width_mm}")
        actions = self.advance(t_ms)
        what = f"footprint:{length_mm:.0f}x{width_mm:.0f}"
        owner = self._photo_of(parcel_id, t_ms, seen_ms, 0.0, what, actions)
        if owner is not None:
            owner.footprint_mm = (length_mm, width_mm)
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
        return actions + self._withdraw(lane, t_ms, Mark.LANE_FULL, before_close=False)

    def on_gate_fault(self, t_ms: float, lane: str, fault: bool) -> list[Action]:
        """``lane``'s gate could not be driven from ``t_ms`` (True) or can again (False).

        A gate behind a link that failed (a PLC or remote I/O coupler off the network)
        cannot be trusted to divert or to release. While faulted, parcels decided for the
        lane go on to quarantine with reason ``gate_fault``, and every parcel already sent
        there whose gate has not closed yet is withdrawn (marks ``gate_cancelled``,
        ``gate_fault``): the coupler's watchdog drops its outputs, so it runs on. Raises
        (and on recovery clears) the ``gate_fault`` alarm of the lane.
        """
        actions = self.advance(t_ms)
        if not fault:
            if lane not in self._faulted:
                return actions
            self._faulted.discard(lane)
            return [*actions, Alarm("gate_fault", False, t_ms, lane=lane)]
        if lane in self._faulted:
            return actions
        self._faulted.add(lane)
        actions += self._withdraw(lane, t_ms, Mark.GATE_FAULT, before_close=True)
        return [*actions, Alarm("gate_fault", True, t_ms, lane=lane)]

    def _withdraw(self, lane: str, t_ms: float, mark: Mark, *, before_close: bool) -> list[Action]:
        """Withdraw to quarantine, marked ``mark``, the parcels sent to ``lane``.

        Those whose gate has not begun to open by ``t_ms``, or (``before_close``) has not
        closed yet.
        """
        actions: list[Action] = []
        for p in sorted(self._parcels.values(), key=lambda p: p.parcel_id):
            cmd = p.command
            if cmd is None or p.lane is None or p.lane.name != lane:
                continue
            if t_ms < (cmd.close_at_ms if before_close else cmd.open_at_ms):
                actions += self._cancel(p, t_ms, self.config.end_lane)
                p.marks.append(mark)
        return actions

    @property
    def jammed(self) -> bool:
        """True while the belt is stopped by a jam at the induct eye (until resumed)."""
        return "jam" in self.holds

    def on_resume(self, t_ms: float) -> list[Action]:
        """The operator resumed the station after a jam or an E-stop (reset button, command).

        Clears the ``jam`` and ``estop`` holds and their alarms; the belt runs unless the
        operator paused it. The caller refuses a resume while the E-stop is still engaged.
        """
        actions = self.advance(t_ms)
        for reason in ("jam", "estop"):
            if reason in self.holds:
                actions += [*self.release(t_ms, reason), Alarm(reason, False, t_ms)]
        return actions

    def hold(self, t_ms: float, reason: str) -> list[Action]:
        """Stop the belt at ``t_ms`` for ``reason`` (``jam``, ``pause``, ``estop``).

        The first hold stops the odometer (tracked parcels keep their belt position) and
        withdraws every divert not yet finished (those parcels run on to quarantine: a gate
        timed for a moving belt must not fire on a stopped one). Idempotent per reason.
        """
        raised = [Alarm("estop", True, t_ms)] if reason == "estop" else []
        return self.advance(t_ms) + self._hold(t_ms, reason, *raised)

    def release(self, t_ms: float, reason: str) -> list[Action]:
        """Lift the ``reason`` hold at ``t_ms``; the belt runs when no hold is left."""
        actions = self.advance(t_ms)
        if reason not in self.holds:
            return actions
        self.holds.discard(reason)
        if self.holds:
            return actions
        self.odometer.set_running(t_ms, True)
        if self._blocked_since_ms is not None:
            self._blocked_since_ms = t_ms  # still blocked: the jam timer starts again
        return [*actions, BeltCommand(True, t_ms, "resume" if reason == "jam" else reason)]

    def on_gate_late(self, t_ms: float, parcel_id: int, late_ms: float) -> list[Action]:
        """The shell did not fire ``parcel_id``'s gate at ``t_ms``: ``late_ms`` ms late.

        That is past the gate margin: fired, it would have hit the parcel or its
        neighbour. The parcel runs on to quarantine with reason ``late_gate`` (its decision is
        replaced); gates downstream that would catch it on its way are withdrawn; the
        ``station_overloaded`` alarm is raised, and cleared :data:`OVERLOAD_CLEAR_MS` after
        the last late gate. An unknown parcel or one without a gate command only raises it.
        """
        actions = self.advance(t_ms)
        self.counters["late_gates"] += 1
        actions += self._overloaded(t_ms, parcel_id)
        p = self._parcels.get(parcel_id)
        if p is None or p.command is None or p.decision is None:
            return actions
        end = self.config.end_lane
        actions.append(GateCancel(p.parcel_id, p.command.gate, t_ms))
        p.command, p.lane = None, end
        p.decision = replace(
            p.decision,
            lane=end,
            reason=Reason.LATE_GATE,
            explanation=f"{end.name}: {Reason.LATE_GATE.value}; gate would have opened "
            f"{late_ms:.0f} ms late (margin {self.config.gate_margin_ms:.0f} ms); "
            f"was {p.decision.explanation}"[:1000],
        )
        for other in self._caught_by(p, end):
            actions += self._cancel(other, t_ms, end)
        return actions

    # -- time ---------------------------------------------------------------------------
    def advance(self, t_ms: float) -> list[Action]:
        """Return every action due by ``t_ms`` (decisions, gate commands, exits, alarms)."""
        actions: list[Action] = []
        if self._overloaded_until_ms is not None and t_ms >= self._overloaded_until_ms:
            actions.append(Alarm("station_overloaded", False, self._overloaded_until_ms))
            self._overloaded_until_ms = None
        for edge in self._eye.poll(t_ms):
            actions += self._apply_eye_edge(edge.t_ms, edge.level)
        if (
            not self.holds
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
        if self.odometer.mm_per_count is not None:
            actions += self._retime(t_ms)
        return actions

    def _retime(self, t_ms: float) -> list[Action]:
        """With an encoder: each pending gate command follows the belt's measured speed.

        Its open and close times are re-computed from the parcel's positions (lead at the
        gate less stroke and margin; trail past it plus margin) on the current odometer; a
        command whose times moved more than :data:`RETIME_MS` is re-issued (same parcel:
        it replaces the earlier one). An open already due is kept; a time the belt will
        not reach while it stands is ``inf`` (not scheduled until the belt moves again).
        """
        cfg, out = self.config, list[Action]()
        lead_ms = cfg.gate_stroke_ms + cfg.gate_margin_ms
        for p in sorted(self._parcels.values(), key=lambda p: p.parcel_id):
            cmd = p.command
            if cmd is None or p.lane is None or t_ms >= cmd.close_at_ms:
                continue
            lead_pos = p.induct_pos_mm + p.lane.pos_mm
            t_lead = self.odometer.time_at(lead_pos, t_ms)
            t_trail = self.odometer.time_at(lead_pos + (p.length_mm or 0.0), t_ms)
            open_at = cmd.open_at_ms
            if t_ms < open_at:
                open_at = float("inf") if t_lead is None else t_lead - lead_ms
            close_at = float("inf") if t_trail is None else t_trail + cfg.gate_margin_ms
            if _near(open_at, cmd.open_at_ms) and _near(close_at, cmd.close_at_ms):
                continue
            p.command = replace(cmd, open_at_ms=open_at, close_at_ms=close_at)
            out.append(p.command)
        return out

    def next_wakeup_ms(self) -> float | None:
        """Earliest time (ms) at which ``advance`` has something to do, or None."""
        times = [self._eye.next_due_ms(), self._overloaded_until_ms]
        if not self.holds and self._blocked_since_ms is not None:
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
            "holds": sorted(self.holds),
            "lanes_full": sorted(self._full),
            "lanes_faulted": sorted(self._faulted),
            "policy_version": self.policy.version,
        }

    def units_claimed(self, rma_number: str, line_no: int) -> int:
        """Highest unit of this RMA line this station claimed (receipt book and memory)."""
        book = self.rmas.claimed_units(rma_number) if isinstance(self.rmas, ReceiptBook) else {}
        return max(book.get(line_no, 0), self._claims.get((rma_number, line_no), 0))

    # -- tracking -----------------------------------------------------------------------
    def _apply_eye_edge(self, t_ms: float, blocked: bool) -> list[Action]:
        """An accepted eye edge at ``t_ms``: a new parcel (``Inducted``) or its length."""
        if blocked:
            parcel = _Parcel(next(self._ids), t_ms, self.odometer.position_mm(t_ms))
            self._parcels[parcel.parcel_id] = parcel
            self._open = parcel
            self._blocked_since_ms = t_ms
            self.counters["inducted"] += 1
            return [Inducted(parcel.parcel_id, t_ms)]
        self._blocked_since_ms = None
        if self._open is not None:
            self._open.length_mm = self.odometer.position_mm(t_ms) - self._open.induct_pos_mm
            self._open = None
        return []

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

    def _photo_of(
        self,
        parcel_id: int,
        t_ms: float,
        seen_ms: float | None,
        latency_ms: float,
        what: str,
        actions: list[Action],
    ) -> _Parcel | None:
        """Parcel ``parcel_id`` for a read from its triggered photo, if the photo shows it.

        Undecided, else an orphan (:meth:`_undecided`). With ``seen_ms`` (the capture
        time) and a camera position, the capture interval ``[seen_ms - latency_ms,
        seen_ms]`` must map to this parcel alone at the camera (:meth:`_claim`'s rule);
        otherwise the read is ambiguous for it (a conflict, a grade unknown) and None.
        """
        owner = self._undecided(parcel_id, t_ms, what, actions)
        cam = self.config.camera_pos_mm
        if owner is None or seen_ms is None or cam is None:
            return owner
        tol = self.config.camera_tol_mm
        near, inside, gone = self._candidates(seen_ms, cam, tol, latency_ms)
        if gone == 0 and near == [owner] and inside == near:
            return owner
        self.counters["ambiguous_reads"] += 1
        owner.ambiguous += 1
        owner.reads.append(f"ambiguous:{what}")
        if what.startswith("grade:"):
            owner.grades.append(None)
        return None

    def _candidates(
        self, t_ms: float, zone_mm: float, tol_mm: float, latency_ms: float
    ) -> tuple[list[_Parcel], list[_Parcel], int]:
        """Who could own a read at ``zone_mm ± tol_mm`` seen in ``[t - latency, t]``.

        ``(near, inside, gone)``: tracked parcels whose zone interval meets the read's
        belt travel, those of them that hold it whole, and how many parcels gone from
        the belt meet it.
        """
        x1 = self.odometer.position_mm(t_ms)
        x0 = self.odometer.position_mm(t_ms - max(0.0, latency_ms)) if latency_ms > 0 else x1
        x0, x1 = min(x0, x1), max(x0, x1)
        near: list[_Parcel] = []
        inside: list[_Parcel] = []
        for parcel in sorted(self._parcels.values(), key=lambda p: p.parcel_id):
            c0, c1 = _covers(parcel.induct_pos_mm, parcel.length_mm, zone_mm, tol_mm)
            if c0 <= x1 + _EPS_MM and x0 - _EPS_MM <= c1:
                near.append(parcel)
                if c0 <= x0 + _EPS_MM and x1 - _EPS_MM <= c1:
                    inside.append(parcel)
        gone = 0
        for p0, length in self._passed:
            c0, c1 = _covers(p0, length, zone_mm, tol_mm)
            if c0 <= x1 + _EPS_MM and x0 - _EPS_MM <= c1:
                gone += 1
        return near, inside, gone

    def _claim(
        self,
        t_ms: float,
        zone_mm: float,
        tol_mm: float,
        what: str,
        actions: list[Action],
        latency_ms: float = 0.0,
        late: bool = False,
    ) -> _Parcel | None:
        """The one undecided parcel that owns a read at the station ``zone_mm ± tol_mm``.

        The read was observed within ``[t_ms - latency_ms, t_ms]``: over that whole
        interval the station must lie within one parcel's body ± ``tol_mm`` and no other
        parcel's (decided and gone ones included). No parcel: an orphan. Two or more, a
        gap and a parcel, or a ``late`` read: the read is ambiguous: recorded on each
        undecided parcel it could belong to, a conflict for each (reason
        ``ambiguous_read``), never an identity or grade of either. Only decided or gone
        parcels: an orphan.
        """
        near, inside, gone = self._candidates(t_ms, zone_mm, tol_mm, latency_ms)
        if late:
            self.counters["late_reads"] += 1
            actions += self._overloaded(t_ms, None)
        if not late and gone == 0 and len(near) == 1 and inside == near:
            owner = near[0]
            if owner.decision is None:
                return owner
        open_ = [p for p in near if p.decision is None]
        if not open_:
            self.counters["orphan_reads"] += 1
            actions.append(OrphanRead(("late:" if late else "") + what, t_ms))
            return None
        self.counters["ambiguous_reads"] += 1
        for parcel in open_:
            parcel.ambiguous += 1
            if late:
                parcel.late += 1
            parcel.reads.append(("late:" if late else "ambiguous:") + what)
            if what.startswith("grade:"):
                parcel.grades.append(None)
        return None

    def _overloaded(self, t_ms: float, parcel_id: int | None) -> list[Action]:
        """Raise ``station_overloaded`` (once) and keep it up until OVERLOAD_CLEAR_MS on."""
        raised = self._overloaded_until_ms is None
        self._overloaded_until_ms = t_ms + OVERLOAD_CLEAR_MS
        return [Alarm("station_overloaded", True, t_ms, None, parcel_id)] if raised else []

    def _jam(self, t_ms: float) -> list[Action]:
        self.counters["jams"] += 1
        return self._hold(t_ms, "jam", Alarm("jam", True, t_ms))

    def _hold(self, t_ms: float, reason: str, *raised: Alarm) -> list[Action]:
        """Add the ``reason`` hold; the first stops the belt and withdraws unfinished diverts."""
        if reason in self.holds:
            return []
        first = not self.holds
        self.holds.add(reason)
        if not first:
            return [*raised]
        self.odometer.set_running(t_ms, False)
        actions: list[Action] = [BeltCommand(False, t_ms, reason), *raised]
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
    def _claim_units(
        self, ident: IdentityResult, rma: RmaRecord
    ) -> tuple[tuple[UnitReceipt, ...], str | None]:
        """(units the parcel claims, why it claims none / is a second receipt: or None).

        The claim rule of the module doc; nothing is recorded here (see :meth:`_decide`).
        """
        book = self.rmas.claimed_units(rma.number) if isinstance(self.rmas, ReceiptBook) else {}
        outstanding: list[int] = []
        next_unit: list[int] = []
        for i, line in enumerate(rma.lines):
            key = (rma.number, line.number(i))
            persisted = book.get(key[1], 0)
            if key in self._claims and persisted >= self._claims[key]:
                del self._claims[key]  # the book has every claim memory held
            own = max(persisted, self._claims.get(key, 0))
            here = line.received_here or 0
            taken = line.received_quantity + max(0, own - here)
            outstanding.append(max(0, line.quantity - taken))
            next_unit.append(max(own, here) + 1)
        units: list[UnitReceipt] = []

        def take(i: int, evidence: Evidence, verified: bool, identifier: str | None) -> None:
            line = rma.lines[i]
            units.append(
                UnitReceipt(
                    line_no=line.number(i),
                    sku=line.sku,
                    unit=next_unit[i],
                    evidence=evidence,
                    verified=verified,
                    identifier=identifier,
                )
            )
            next_unit[i] += 1
            outstanding[i] -= 1

        for ev in ident.evidence:
            if outstanding[ev.index] <= 0:
                no = rma.lines[ev.index].number(ev.index)
                return (), f"line {no} has nothing outstanding: its unit was received already"
            take(ev.index, ev.evidence, ev.verified, ev.identifier)
        if ident.by_label:
            shown = {ev.index for ev in ident.evidence}
            for i in range(len(rma.lines)):
                if i not in shown and outstanding[i] > 0 and len(units) < MAX_UNITS_PER_EVENT:
                    take(i, Evidence.LABEL, False, None)
        if not units:
            return (), f"nothing outstanding on {rma.number}"
        rank = {e: k for k, e in enumerate(EVIDENCE_ORDER)}
        units.sort(key=lambda u: (not u.verified, rank[u.evidence], u.line_no, u.unit))
        return tuple(units), None

    def _verification(self, rma: RmaRecord, units: tuple[UnitReceipt, ...]) -> Verification:
        by_no = {line.number(i): line for i, line in enumerate(rma.lines)}
        facts = []
        for u in units:
            line = by_no[u.line_no]
            facts.append(
                UnitFacts(
                    line_no=u.line_no,
                    sku=line.sku,
                    category=line.category,
                    unit_value_cents=line.unit_value_cents,
                    declares_identifier=line.declares_identifier,
                    declares_serial=line.serial is not None,
                    declares_tag=line.rfid_uid is not None,
                    verified=u.verified,
                )
            )
        return verify(self.policy, facts)

    def _physical(
        self, parcel: _Parcel, rma: RmaRecord, units: tuple[UnitReceipt, ...]
    ) -> PhysicalVerdict | None:
        """The physical check of the claimed units, or None when nothing could check them."""
        if self.config.scale_pos_mm is None and parcel.footprint_mm is None:
            return None
        by_no = {line.number(i): line for i, line in enumerate(rma.lines)}
        counts: dict[int, int] = {}
        for u in units:
            counts[u.line_no] = counts.get(u.line_no, 0) + 1
        claims = [Claim(by_no[no], n) for no, n in sorted(counts.items())]
        fp = parcel.footprint_mm
        footprint = None
        if fp is not None:
            footprint = Footprint(fp[0], fp[1], self.policy.grading.footprint_tol_mm)
        weight = parcel.weighings[-1] if parcel.weighings else None
        return check_parcel(claims, self.policy.physical, weight=weight, footprint=footprint)

    def _facts(
        self, parcel: _Parcel
    ) -> tuple[
        IdentityResult,
        Facts,
        tuple[UnitReceipt, ...],
        Verification | None,
        PhysicalVerdict | None,
        str,
    ]:
        reads = WindowReads(
            labels=distinct(parcel.labels),
            uids=distinct(parcel.uids),
            items=tuple(dict.fromkeys(parcel.items)),
            ambiguous=parcel.ambiguous,
            late=parcel.late,
            texts=distinct(parcel.texts),
            garbled=distinct(parcel.garbled),
            others=distinct(parcel.others),
            tracking=distinct(parcel.tracking),
        )
        ident = identify(reads, self.rmas)
        rma = ident.rma
        failure: Reason | None = None
        units: tuple[UnitReceipt, ...] = ()
        verification: Verification | None = None
        physical: PhysicalVerdict | None = None
        claim_note = ""
        if ident.identity is Identity.MATCHED and rma is not None and rma.state == "authorized":
            units, why_none = self._claim_units(ident, rma)
            if why_none is not None:
                failure, claim_note = Reason.QUANTITY_EXCEEDED, why_none
            else:
                physical = self._physical(parcel, rma, units)
                verification = self._verification(rma, units)
                failure = (physical.reason if physical is not None else None) or (
                    verification.reason
                )
        line = None
        if rma is not None and units:
            line = next(ln for i, ln in enumerate(rma.lines) if ln.number(i) == units[0].line_no)
        elif rma is not None and ident.lines:
            line = rma.lines[ident.lines[0]]
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
            verification=verification.status if verification is not None else "",
        )
        return ident, facts, units, verification, physical, claim_note

    def _overflow(self, lane: LaneSpec) -> LaneSpec | None:
        """The first lane of ``lane``'s overflow chain that is not full, or None."""
        seen = {lane.name}
        name = lane.overflow
        while name is not None and name not in seen:
            seen.add(name)
            nxt = self.config.lane_named(name)
            if nxt is None or nxt.gate is None:
                return None
            if nxt.name not in self._full:
                return nxt
            name = nxt.overflow
        return None

    def _decide(self, parcel: _Parcel, t_ms: float) -> list[Action]:
        cfg = self.config
        length = parcel.length_mm or 0.0
        ident, facts, units, verification, physical, claim_note = self._facts(parcel)
        outcome = self._outcome(facts, ident.rma, units)
        reason = outcome.reason
        why = [ident.detail, claim_note]
        if physical is not None:
            problems = "; ".join(dict.fromkeys(parcel.weigh_problems))
            why.append(physical.explanation + (f" (weighing: {problems})" if problems else ""))
        if verification is not None:
            why.append(verification.explanation)
        why.append(outcome.explanation)
        if "camera" in parcel.sources:
            why.insert(0, "label read by " + " and ".join(sorted(parcel.sources)))
        lane: LaneSpec | None = cfg.lane_for(outcome.disposition)
        inspected = (
            verification is not None
            and verification.reason is not None
            and facts.failure is verification.reason
            and outcome.disposition is Disposition.QUARANTINE
        )
        bench = self._inspection_lane() if inspected else None
        if bench is not None:
            lane = bench
            why.append(f"to the inspection lane {bench.name}")
        if lane is None:
            lane, reason = cfg.end_lane, Reason.NO_LANE
            why.append(f"no {outcome.disposition} lane")
        elif lane.name in self._faulted:
            lane, reason = cfg.end_lane, Reason.GATE_FAULT
            why.append("gate cannot be driven (device fault)")
        elif lane.name in self._full:
            overflow = self._overflow(lane)
            if overflow is None:
                lane, reason = cfg.end_lane, Reason.LANE_FULL
                why.append("lane full")
            else:
                why.append(f"lane {lane.name} full: overflow lane {overflow.name}")
                lane = overflow
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
        if units and ident.rma is not None:
            number = ident.rma.number
            for u in units:  # visible to the next decision at once
                key = (number, u.line_no)
                self._claims[key] = max(self._claims.get(key, 0), u.unit)
        inputs = [*facts.as_inputs(), ("rule", str(outcome.rule))]
        if verification is not None and verification.rule is not None:
            inputs.append(("verification_rule", str(verification.rule)))
        if physical is not None:
            inputs += physical.as_inputs()
        decision = Decision(
            parcel.parcel_id,
            lane,
            reason,
            ident.rma.number if ident.rma is not None else None,
            distinct(parcel.reads),
            t_ms,
            policy_version=self.policy.version,
            inputs=(*inputs, *self._source_input(parcel)),
            explanation=f"{lane.name}: {reason.value}; " + "; ".join(w for w in why if w),
            units=units,
            codes=tuple(parcel.codes.values()),
        )
        parcel.decision = decision
        parcel.command = command
        parcel.lane = lane
        actions.insert(0, decision)
        if command is not None:
            actions.append(command)
        return actions

    def _inspection_lane(self) -> LaneSpec | None:
        """The policy's inspection lane when this belt has it (gated, quarantine), else None."""
        name = self.policy.inspection_lane
        lane = self.config.lane_named(name) if name is not None else None
        if lane is None or lane.gate is None or lane.disposition is not Disposition.QUARANTINE:
            return None
        return lane

    def _outcome(
        self, facts: Facts, rma: RmaRecord | None, units: tuple[UnitReceipt, ...]
    ) -> Outcome:
        """The policy's outcome for the parcel: one per line it claims units of.

        A box holding units of several lines goes where every line's outcome agrees; the
        first quarantining line wins; lines that would go to different lanes send the
        box to quarantine ``mixed_dispositions`` (a lead splits it).
        """
        first = decide(self.policy, facts)
        if rma is None or len({u.line_no for u in units}) < 2:
            return first
        outcomes = [first]
        seen = {units[0].line_no}
        for u in units[1:]:
            if u.line_no in seen:
                continue
            seen.add(u.line_no)
            line = next(ln for i, ln in enumerate(rma.lines) if ln.number(i) == u.line_no)
            outcomes.append(
                decide(self.policy, replace(facts, sku=line.sku, category=line.category))
            )
        q = Disposition.QUARANTINE
        held = next((o for o in outcomes if o.disposition is q), None)
        if held is not None:
            return held
        if len({o.disposition for o in outcomes}) > 1:
            lanes = ", ".join(sorted({o.disposition.value for o in outcomes}))
            why = f"its lines would go to {lanes}: one box, one lane"
            return Outcome(q, Reason.MIXED_DISPOSITIONS, None, why)
        return first

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
        self._passed.append((p.induct_pos_mm, p.length_mm))
        actions: list[Action] = []
        if p.command is not None and p.lane.confirm and not p.confirmed:
            p.marks.append(Mark.DIVERT_UNCONFIRMED)
            self.counters["divert_unconfirmed"] += 1
            actions.append(Alarm("divert_unconfirmed", True, t_ms, p.lane.name, p.parcel_id))
        self.lane_counts[p.lane.name] += 1
        exit_at = self._exit_time(p)
        confirmed = p.confirmed if p.command is not None and p.lane.confirm else None
        actions.insert(
            0,
            ParcelExited(
                p.decision,
                p.inducted_at_ms,
                p.length_mm or 0.0,
                exit_at if exit_at is not None else t_ms,
                tuple(p.marks),
                None if p.lane == p.decision.lane else p.lane,
                confirmed,
            ),
        )
        return actions


def rma_ok(facts: Facts) -> bool:
    """True when the facts identify an item of an authorized RMA line (units are claimed)."""
    return facts.identity is Identity.MATCHED and facts.rma_state == "authorized"


def _read_key(c: Classified) -> str:
    """How a read is listed in ``Decision.reads`` (labels and unknown texts as read)."""
    cls = c.code_class
    if cls in (CodeClass.RMA_LABEL, CodeClass.UNKNOWN):
        return c.value
    if cls is CodeClass.GS1 or cls is CodeClass.RETAIL:
        return f"gs1:{c.gtin or ''}/{c.serial or ''}"
    return f"{cls.value}:{c.value}"
