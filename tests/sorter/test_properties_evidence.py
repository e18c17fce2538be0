"""Properties of the evidence per unit (acceptance of issue 13), over random RMAs and reads.

- no unit is ever reported verified without its evidence having been read in its window;
- a parcel showing one line's identifier never verifies another line;
- a restart between two parcels with the same label never yields two receipts (let alone
  two verified receipts) of one unit: the restart is a new core over the same SQLite store,
  the receipts written with each event as the shell does.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import ean

from edge.sorter import Decision, ParcelExited, SorterCore
from edge.sorter.model import RmaLineRecord
from edge.store import StationStore
from protocol import RmaAnnouncement, RmaLine
from protocol.codes import classify
from simulator.testing import Directory, demo_belt, rma

GTINS = [b + ean.calc_check_digit(b) for b in (f"950110102{i:04d}" for i in range(6))]
SERIALS = [f"SN{i:04d}" for i in range(1, 7)]
TAGS = [f"04A2B3C4D5E6{i:02X}" for i in range(6)]


@dataclass(frozen=True)
class Spec:
    gtin: int | None
    serial: int | None
    tag: int | None


@st.composite
def rmas(draw: st.DrawFn) -> tuple[RmaLineRecord, ...]:
    """1-3 lines with distinct identifiers from the pools (each maybe absent)."""
    n = draw(st.integers(1, 3))
    picks = draw(st.permutations(range(6)))
    lines = []
    for k in range(n):
        spec = Spec(
            picks[k] if draw(st.booleans()) else None,
            picks[k] if draw(st.booleans()) else None,
            picks[k] if draw(st.booleans()) else None,
        )
        lines.append(
            RmaLineRecord(
                f"SKU-{k}",
                draw(st.integers(1, 2)),
                gtin=None if spec.gtin is None else GTINS[spec.gtin],
                serial=None if spec.serial is None else SERIALS[spec.serial],
                rfid_uid=None if spec.tag is None else TAGS[spec.tag],
            )
        )
    return tuple(lines)


# a read: (kind, pool index, variant)
reads_st = st.lists(
    st.tuples(
        st.sampled_from(["gs1", "gs1_ambiguous", "gs1_other_serial", "retail", "tag"]),
        st.integers(0, 5),
        st.integers(0, 5),
    ),
    max_size=4,
)


def to_code(kind: str, i: int, j: int) -> tuple[str | None, str | None]:
    """(barcode, tag uid) of a read."""
    if kind == "tag":
        return None, TAGS[i]
    if kind == "retail":
        return "]E0" + GTINS[i][1:], None
    if kind == "gs1":
        return f"]C101{GTINS[i]}21{SERIALS[i]}", None
    if kind == "gs1_other_serial":
        return f"]C101{GTINS[i]}21{SERIALS[j]}", None
    # no GS after the lot: the lot may have swallowed the serial
    return f"01{GTINS[i]}10LOT{j}21{SERIALS[i]}", None


def run_parcel(
    core: SorterCore, t0: float, label: bool, reads: list[tuple[str, int, int]]
) -> tuple[Decision, list[ParcelExited]]:
    actions: list[object] = core.on_photo_eye(t0, True) + core.on_photo_eye(t0 + 300.0, False)
    if label:
        actions += core.on_barcode(t0 + 550.0, "RMA-1")
    for kind, i, j in reads:
        code, uid = to_code(kind, i, j)
        if code is not None:
            actions += core.on_barcode(t0 + 550.0, code)
        if uid is not None:
            actions += core.on_rfid(t0 + 550.0, uid)
    for t in range(int(t0), int(t0) + 6000, 5):
        actions += core.advance(float(t))
    [d] = [a for a in actions if isinstance(a, Decision)]
    exits = [a for a in actions if isinstance(a, ParcelExited)]
    return d, exits


def evidence_read(kind: str, value: str, reads: list[tuple[str, int, int]]) -> bool:
    """Whether identifier ``value`` of ``kind`` was read unambiguously in the window."""
    for r in reads:
        code, uid = to_code(*r)
        if kind == "tag" and uid == value:
            return True
        if code is None:
            continue
        c = classify(code)
        if kind == "serial" and c.serial == value and c.ambiguous is None:
            return True
        if kind == "gtin" and c.gtin == value.zfill(14):
            return True
    return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=rmas(), label=st.booleans(), reads=reads_st)
def test_no_unit_is_verified_without_its_own_lines_evidence(
    lines: tuple[RmaLineRecord, ...], label: bool, reads: list[tuple[str, int, int]]
) -> None:
    core = SorterCore(demo_belt(), Directory(rma("RMA-1", *lines)))
    d, _ = run_parcel(core, 0.0, label, reads)
    claimed = [(u.line_no, u.unit) for u in d.units]
    assert len(claimed) == len(set(claimed))
    for u in d.units:
        ln = lines[u.line_no - 1]
        assert u.sku == ln.sku
        if not u.verified:
            continue
        assert u.identifier is not None
        # the identifier is the one THIS line declares, and it was read in the window
        declared = {"serial": ln.serial, "tag": ln.rfid_uid, "gtin": ln.gtin}[u.evidence.value]
        assert declared is not None and u.identifier == declared.zfill(
            14 if u.evidence.value == "gtin" else len(declared)
        )
        assert evidence_read(u.evidence.value, declared, reads)
        if u.evidence.value == "gtin":  # a GTIN verifies only a line with no unit identifier
            assert ln.serial is None and ln.rfid_uid is None


def announce(number: str, lines: tuple[RmaLine, ...], revision: int = 1) -> RmaAnnouncement:
    return RmaAnnouncement(
        number=number,
        revision=revision,
        order_ref="O-1",
        reason="changed_mind",
        resolution="refund",
        lines=lines,
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    quantity=st.integers(1, 3),
    identifier=st.sampled_from(["none", "gtin", "serial", "tag"]),
    parcels=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=5),
    restarts=st.sets(st.integers(1, 4)),
    lost=st.sets(st.integers(0, 4)),
)
def test_a_restart_between_parcels_never_claims_a_unit_twice(
    quantity: int,
    identifier: str,
    parcels: list[tuple[bool, bool]],
    restarts: set[int],
    lost: set[int],
) -> None:
    """Each parcel: (shows the line's identifier, label read). ``restarts``: a new core over
    the same store before that parcel; ``lost``: the station dies before that parcel's
    event is written (no event, no receipt: the next core starts without it)."""
    line = RmaLine(
        line_no=1,
        sku="SKU-1",
        quantity=quantity,
        gtin=GTINS[0] if identifier == "gtin" else None,
        serial=SERIALS[0] if identifier == "serial" else None,
        rfid_uid=TAGS[0] if identifier == "tag" else None,
    )
    show = {
        "none": [],
        "gtin": [("retail", 0, 0)],
        "serial": [("gs1", 0, 0)],
        "tag": [("tag", 0, 0)],
    }[identifier]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "st1.db"
        store = StationStore(path, station="st1")
        store.apply_announcement(announce("RMA-1", (line,)))
        core = SorterCore(demo_belt(), store)
        reported: list[tuple[int, int, bool]] = []
        for k, (shows, label) in enumerate(parcels):
            if k in restarts:
                store.close()
                store = StationStore(path, station="st1")
                core = SorterCore(demo_belt(), store)
            t0 = 6000.0 * k  # one core's clock only moves forward
            _, exits = run_parcel(core, t0, label or not shows, show if shows else [])
            for exited in exits:
                if k in lost:  # SIGKILL before the event's transaction: nothing written
                    store.close()
                    store = StationStore(path, station="st1")
                    core = SorterCore(demo_belt(), store)
                    continue
                store.outbox_put("rs/v1/s/st1/event", b"{}", "RMA-1", exited.units)
                reported += [(u.line_no, u.unit, u.verified) for u in exited.units]
        persisted = [(u.line_no, u.unit, u.verified) for u in store.receipts("RMA-1")]
        store.close()
    units = [(no, unit) for no, unit, _ in reported]
    assert len(units) == len(set(units)), reported  # no unit claimed twice
    assert sorted(reported) == sorted(persisted)
    assert all(1 <= unit <= quantity for _, unit in units)
    verified = [(no, unit) for no, unit, v in reported if v]
    assert len(verified) == len(set(verified))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=rmas(), shown=st.integers(0, 2), label=st.booleans(), data=st.data())
def test_one_lines_identifier_never_verifies_another_line(
    lines: tuple[RmaLineRecord, ...], shown: int, label: bool, data: st.DataObject
) -> None:
    """The parcel shows identifiers of line ``shown`` only (all it declares, or some):
    every verified unit is of that line, whatever the other lines declare."""
    if shown >= len(lines):
        shown = len(lines) - 1
    ln = lines[shown]
    own: list[tuple[str, int, int]] = []
    if ln.gtin is not None:
        own.append(("retail", GTINS.index(ln.gtin), 0))
    if ln.serial is not None and ln.gtin is not None:
        own.append(("gs1", SERIALS.index(ln.serial), 0))
    if ln.rfid_uid is not None:
        own.append(("tag", TAGS.index(ln.rfid_uid), 0))
    reads = data.draw(st.lists(st.sampled_from(own), unique=True)) if own else []
    core = SorterCore(demo_belt(), Directory(rma("RMA-1", *lines)))
    d, _ = run_parcel(core, 0.0, label or not reads, reads)
    assert all(u.line_no == shown + 1 for u in d.units if u.verified), d.units
