"""A virtual-time belt for the pure sorter core: parcels in, decisions and physical lanes out.

No processes, threads or clock: the parcels' sensor events (photo-eye edges with optional
bounce, label / GS1 scans, RFID polls with flicker, grades, divert confirmations) are laid
on one timeline and fed to :class:`~edge.sorter.SorterCore`, which is advanced to each of
its wake-ups in between. Then each parcel's physical fate is computed from the gate
commands the core issued (and withdrew):

- diverted into a lane when its gate was energised from ``stroke`` before the parcel's
  leading edge arrived until its trailing edge had passed;
- carried past a gate whose diverter was out of the belt while the parcel passed: the
  trailing edge had passed before the gate was energised, or the leading edge arrived
  ``stroke`` or more after it was released;
- anything in between is a collision (a mis-sort: a diverter moving across a parcel).

Used by the scenario tests, the property tests and ``benchmarks/bench_core.py``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from edge.sorter import SorterCore
from edge.sorter.model import (
    Action,
    BeltConfig,
    Decision,
    GateCancel,
    GateCommand,
    Inducted,
    ParcelExited,
    RmaDirectory,
)
from edge.sorter.policy import Policy

COLLISION = "collision"


@dataclass(frozen=True)
class VParcel:
    """A parcel on the virtual belt.

    Attributes:
        length_mm: its length along the belt, mm.
        gap_mm: free belt before it (from the previous parcel's trailing edge), mm.
        label: the RMA label barcode, or None (no label / unreadable).
        label_reads: how many times the scanner reports the label (0 = no-read).
        gs1: a GS1 element string on the item (AIM prefix allowed), or None.
        uid: RFID tag UID, or None.
        rfid_polls: presence pattern of the tag while in the field (True = seen),
            one entry per ``rfid_poll_ms``; default: seen on every poll.
        grade: the camera's grade, or None (no grade reported).
        confidence: the camera's confidence.
        bounce: photo-eye bounce: raw edges 1, 2, 3, 3.5 ms after each real edge (C7).
        confirm: whether a divert-confirm sensor sees it when diverted.
    """

    length_mm: float
    gap_mm: float
    label: str | None = None
    label_reads: int = 1
    gs1: str | None = None
    uid: str | None = None
    rfid_polls: tuple[bool, ...] | None = None
    grade: str | None = None
    confidence: float = 1.0
    bounce: bool = False
    confirm: bool = True


@dataclass
class VResult:
    """What happened to one parcel."""

    index: int
    inducted: Inducted | None = None
    decision: Decision | None = None
    exited: ParcelExited | None = None
    commands: list[GateCommand] = field(default_factory=list)
    cancels: list[GateCancel] = field(default_factory=list)
    physical_lane: str | None = None

    @property
    def decided_lane(self) -> str | None:
        """The lane of the core's decision."""
        return self.decision.lane.name if self.decision else None

    @property
    def reason(self) -> str | None:
        """The decision's reason code."""
        return self.decision.reason.value if self.decision else None


@dataclass
class VRun:
    """The outcome of a virtual run."""

    results: list[VResult]
    actions: list[tuple[float, Action]]
    core: SorterCore
    induct_ms: list[float]

    def lanes(self) -> list[str | None]:
        """Physical lane per parcel, in induct order."""
        return [r.physical_lane for r in self.results]


def _inputs(
    cfg: BeltConfig, parcels: Iterable[VParcel], start_ms: float, rfid_poll_ms: float
) -> tuple[list[tuple[float, int, str, tuple[object, ...]]], list[float]]:
    v = cfg.speed_mm_s / 1000.0  # mm per ms
    events: list[tuple[float, int, str, tuple[object, ...]]] = []
    induct: list[float] = []
    t = start_ms
    prev_len = 0.0
    for p in parcels:
        t += (prev_len + p.gap_mm) / v
        prev_len = p.length_mm
        t0, t1 = t, t + p.length_mm / v
        induct.append(t0)
        events.append((t0, 0, "eye", (True,)))
        events.append((t1, 0, "eye", (False,)))
        if p.bounce:
            for edge_t, level in ((t0, True), (t1, False)):
                for k, dt_ms in enumerate((1.0, 2.0, 3.0, 3.5)):
                    events.append((edge_t + dt_ms, 0, "eye", (level == (k % 2 == 1),)))
        centre_at_scan = t0 + (cfg.scan_pos_mm + p.length_mm / 2) / v
        if p.label is not None:
            for k in range(p.label_reads):
                events.append((centre_at_scan + 5 * k, 1, "barcode", (p.label,)))
        if p.gs1 is not None:
            events.append((centre_at_scan + 2, 1, "barcode", (p.gs1,)))
        if p.uid is not None:
            ant = cfg.rfid_pos_mm if cfg.rfid_pos_mm is not None else cfg.scan_pos_mm
            # in the field while the body is within 40 mm of the antenna
            enter = t0 + (ant - 40) / v
            leave = t0 + (ant + 40 + p.length_mm) / v
            polls = p.rfid_polls
            k = 0
            tp = enter
            while tp < leave:
                seen = True if polls is None else (polls[k] if k < len(polls) else False)
                if seen:
                    events.append((tp, 1, "rfid", (p.uid,)))
                k += 1
                tp += rfid_poll_ms
        if p.grade is not None:
            cam = cfg.camera_pos_mm if cfg.camera_pos_mm is not None else cfg.scan_pos_mm
            events.append((t0 + (cam + p.length_mm / 2) / v, 1, "grade", (p.grade, p.confidence)))
    events.sort(key=lambda e: (e[0], e[1]))
    return events, induct


def run_virtual(
    cfg: BeltConfig,
    rmas: RmaDirectory,
    parcels: list[VParcel],
    policy: Policy | None = None,
    *,
    start_ms: float = 1000.0,
    rfid_poll_ms: float = 20.0,
    lane_full: Iterable[str] = (),
) -> VRun:
    """Run ``parcels`` through a fresh core in virtual time; see the module doc."""
    core = SorterCore(cfg, rmas, policy)
    events, induct = _inputs(cfg, parcels, start_ms, rfid_poll_ms)
    queue = [(t, prio, n, kind, args) for n, (t, prio, kind, args) in enumerate(events)]
    heapq.heapify(queue)
    seq = len(queue)
    log: list[tuple[float, Action]] = []
    for lane in lane_full:
        log += [(start_ms, a) for a in core.on_lane_full(start_ms, lane, True)]
    cancelled: set[int] = set()
    confirm_lanes = {ln.gate: ln.name for ln in cfg.lanes if ln.confirm and ln.gate}
    horizon = (induct[-1] if induct else start_ms) + 10 * (
        cfg.end_lane.pos_mm * 1000.0 / cfg.speed_mm_s
    )
    stuck, last_wake = 0, None
    while True:
        wake = core.next_wakeup_ms()
        te = queue[0][0] if queue else None
        if wake is not None and wake <= horizon and (te is None or wake <= te):
            t, out = wake, core.advance(wake)
            stuck = stuck + 1 if not out and wake == last_wake else 0
            last_wake = wake
            if stuck > 3:
                raise RuntimeError(f"core wake-up at {wake} ms makes no progress")
        elif te is not None:
            t, _, _, kind, args = heapq.heappop(queue)
            if kind == "eye":
                out = core.on_photo_eye(t, bool(args[0]))
            elif kind == "barcode":
                out = core.on_barcode(t, str(args[0]))
            elif kind == "rfid":
                out = core.on_rfid(t, str(args[0]))
            elif kind == "grade":
                out = core.on_grade(t, str(args[0]), float(str(args[1])))
            elif int(str(args[1])) in cancelled:
                continue  # a withdrawn gate diverts nothing: no confirmation
            else:
                out = core.on_divert_confirm(t, str(args[0]))
        else:
            break
        log.extend((t, a) for a in out)
        for a in out:
            if isinstance(a, GateCancel):
                cancelled.add(a.parcel_id)
            if isinstance(a, GateCommand) and a.gate in confirm_lanes:
                idx = a.parcel_id - 1
                if 0 <= idx < len(parcels) and parcels[idx].confirm:
                    seq += 1
                    heapq.heappush(
                        queue,
                        (a.close_at_ms, 1, seq, "confirm", (confirm_lanes[a.gate], a.parcel_id)),
                    )
    results = [VResult(i + 1) for i in range(len(parcels))]
    by_id = {r.index: r for r in results}
    for _, a in log:
        pid = getattr(a, "parcel_id", None)
        if isinstance(a, ParcelExited):
            pid = a.decision.parcel_id
        r = by_id.get(pid) if isinstance(pid, int) else None
        if r is None:
            continue
        if isinstance(a, Inducted):
            r.inducted = a
        elif isinstance(a, Decision):
            r.decision = a
        elif isinstance(a, GateCommand):
            r.commands.append(a)
        elif isinstance(a, GateCancel):
            r.cancels.append(a)
        elif isinstance(a, ParcelExited):
            r.exited = a
    _physics(cfg, parcels, induct, results)
    return VRun(results, log, core, induct)


def _physics(
    cfg: BeltConfig, parcels: list[VParcel], induct: list[float], results: list[VResult]
) -> None:
    """Where each parcel physically ends, from the gates' energised intervals."""
    stroke = cfg.gate_stroke_ms
    intervals: dict[str, list[tuple[float, float]]] = {}
    for r in results:
        cancel_at = {c.gate: c.t_ms for c in r.cancels}
        for cmd in r.commands:
            end = min(cmd.close_at_ms, cancel_at.get(cmd.gate, cmd.close_at_ms))
            if end > cmd.open_at_ms:
                intervals.setdefault(cmd.gate, []).append((cmd.open_at_ms, end))
    for gate, spans in intervals.items():  # overlapping holds keep the gate energised
        merged: list[tuple[float, float]] = []
        for a, b in sorted(spans):
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        intervals[gate] = merged
    v = cfg.speed_mm_s / 1000.0
    gates = sorted((ln for ln in cfg.lanes if ln.gate is not None), key=lambda ln: ln.pos_mm)
    for r, p, t0 in zip(results, parcels, induct, strict=True):
        lane_reached = cfg.end_lane.name
        for lane in gates:
            assert lane.gate is not None
            lead = t0 + lane.pos_mm / v
            trail = lead + p.length_mm / v
            spans = intervals.get(lane.gate, [])
            diverted = any(a <= lead - stroke and b >= trail for a, b in spans)
            clear = all(trail <= a or lead >= b + stroke for a, b in spans)
            if diverted:
                lane_reached = lane.name
                break
            if not clear:
                lane_reached = COLLISION
                break
        r.physical_lane = lane_reached
