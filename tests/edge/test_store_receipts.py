"""Receipts in the station store: written with the event's outbox row, surviving SIGKILL,
reconciled with the gateway's received state; a new core starts from them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.sorter import Decision, SorterCore
from edge.sorter.model import Reason
from edge.store import StationStore
from protocol import Evidence, RmaAnnouncement, RmaLine, UnitReceipt
from simulator.testing import CHEAP_UNIT_CENTS, demo_belt, label_trusting_policy

TOPIC = "rs/v1/site1/st1/event"
TRUSTING = label_trusting_policy()  # the parcels show only their (cheap) label


def ann(revision: int = 1, **line: object) -> RmaAnnouncement:
    fields: dict[str, object] = {
        "line_no": 1,
        "sku": "SKU-1",
        "quantity": 3,
        "unit_value_cents": CHEAP_UNIT_CENTS,
        **line,
    }
    return RmaAnnouncement(
        number="RMA-1",
        revision=revision,
        order_ref="O-1",
        reason="size",
        resolution="refund",
        lines=(RmaLine.model_validate(fields),),
    )


def unit(n: int, verified: bool = False) -> UnitReceipt:
    if verified:
        return UnitReceipt(
            line_no=1, sku="SKU-1", unit=n, evidence=Evidence.SERIAL, verified=True, identifier="S"
        )
    return UnitReceipt(line_no=1, sku="SKU-1", unit=n, evidence=Evidence.LABEL, verified=False)


def label_parcel(core: SorterCore, t0: float) -> Decision:
    actions = core.on_photo_eye(t0, True) + core.on_photo_eye(t0 + 300.0, False)
    actions += core.on_barcode(t0 + 550.0, "RMA-1")
    for t in range(int(t0), int(t0) + 6000, 5):
        actions += core.advance(float(t))
    [d] = [a for a in actions if isinstance(a, Decision)]
    return d


def test_receipts_are_written_with_the_outbox_row(tmp_path: Path) -> None:
    store = StationStore(tmp_path / "st1.db", station="st1")
    store.apply_announcement(ann())
    first = store.outbox_put(TOPIC, b"e1", "RMA-1", (unit(1, verified=True),))
    store.outbox_put(TOPIC, b"e2", "RMA-1", (unit(2),))
    assert store.claimed_units("RMA-1") == {1: 2}
    assert [(u.unit, u.evidence, u.verified) for u in store.receipts("RMA-1")] == [
        (1, Evidence.SERIAL, True),
        (2, Evidence.LABEL, False),
    ]
    assert store.outbox_depth() == 2
    store.outbox_ack(first)  # the broker's ack drops the event, never the receipt
    assert store.claimed_units("RMA-1") == {1: 2}
    with pytest.raises(ValueError, match="rma_number"):
        store.outbox_put(TOPIC, b"e3", None, (unit(3),))
    assert store.outbox_depth() == 1  # nothing written for the refused call
    store.close()


def test_a_unit_recorded_twice_keeps_the_first_and_never_loses_the_event(
    tmp_path: Path,
) -> None:
    store = StationStore(tmp_path / "st1.db")
    store.outbox_put(TOPIC, b"e1", "RMA-1", (unit(1, verified=True),))
    store.outbox_put(TOPIC, b"e2", "RMA-1", (unit(1),))
    assert store.outbox_depth() == 2
    assert [u.verified for u in store.receipts("RMA-1")] == [True]
    store.close()


def test_receipts_survive_sigkill_and_a_new_core_claims_the_next_unit(tmp_path: Path) -> None:
    path = tmp_path / "st1.db"
    store = StationStore(path, station="st1")
    store.apply_announcement(ann())
    store.close()
    child = textwrap.dedent(
        f"""
        import os, signal
        from edge.store import StationStore
        from protocol import Evidence, UnitReceipt
        store = StationStore({str(path)!r}, station="st1")
        for n in (1, 2):
            u = UnitReceipt(line_no=1, sku="SKU-1", unit=n, evidence=Evidence.LABEL, verified=False)
            store.outbox_put({TOPIC!r}, b"e", "RMA-1", (u,))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", child], cwd=root, timeout=60, check=False)
    assert done.returncode == -signal.SIGKILL
    store = StationStore(path, station="st1")
    assert store.claimed_units("RMA-1") == {1: 2} and store.outbox_depth() == 2
    d = label_parcel(SorterCore(demo_belt(), store, TRUSTING), 0.0)
    assert [(u.unit, u.evidence) for u in d.units] == [(3, Evidence.LABEL)]
    again = label_parcel(
        SorterCore(demo_belt(), store, TRUSTING), 0.0
    )  # memory only: never persisted
    assert [u.unit for u in again.units] == [3]
    store.close()
    assert os.path.exists(path)


@pytest.mark.parametrize(
    ("received", "by_station", "own", "next_units", "reason"),
    [
        # the gateway counted both of our receipts: one unit left, unit 3
        (2, {"st1": 2}, 2, [3], Reason.MATCHED),
        # the gateway has one of ours and one from st2; our second is not ingested yet
        (2, {"st1": 1, "st2": 1}, 2, [], Reason.QUANTITY_EXCEEDED),
        # a lead received one by hand; none of ours counted yet (or the map is absent):
        # one left, our second unit (units are numbered per station)
        (1, {}, 1, [2], Reason.MATCHED),
        # our store was replaced: the gateway remembers two of ours
        (2, {"st1": 2}, 0, [3], Reason.MATCHED),
        # another station took everything
        (3, {"st2": 3}, 0, [], Reason.QUANTITY_EXCEEDED),
    ],
)
def test_claims_reconcile_with_the_gateways_received_state(
    tmp_path: Path,
    received: int,
    by_station: dict[str, int],
    own: int,
    next_units: list[int],
    reason: Reason,
) -> None:
    store = StationStore(tmp_path / "st1.db", station="st1")
    store.apply_announcement(ann(received_quantity=received, received_by_station=by_station))
    for n in range(1, own + 1):
        store.outbox_put(TOPIC, b"e", "RMA-1", (unit(n),))
    d = label_parcel(SorterCore(demo_belt(), store, TRUSTING), 0.0)
    assert ([u.unit for u in d.units], d.reason) == (next_units, reason)
    store.close()


def test_received_by_station_cannot_exceed_the_received_total() -> None:
    with pytest.raises(ValueError, match="adds up to more"):
        RmaLine(line_no=1, sku="A", quantity=3, received_quantity=1, received_by_station={"st1": 2})


def test_catch_up_batches_reconcile_without_ever_lowering_an_unacknowledged_receipt(
    tmp_path: Path,
) -> None:
    path = tmp_path / "st1.db"
    store = StationStore(path, station="st1")
    store.apply_announcement(ann(revision=1))
    for n in (1, 2):  # two units claimed here; the broker acknowledged neither
        store.outbox_put(TOPIC, b"e", "RMA-1", (unit(n),))
    store.close()
    store = StationStore(path, station="st1")  # a restart: the receipts are durable
    # a catch-up batch out of order: revision 3 counts one of our units, the stale
    # revision 2 (nothing received) is ignored
    batch = [ann(3, received_quantity=1, received_by_station={"st1": 1}), ann(2)]
    assert store.apply_changes(batch) == 1
    [line] = store.lookup_rma("RMA-1").lines  # type: ignore[union-attr]
    assert (line.received_quantity, line.received_here) == (1, 1)
    assert store.claimed_units("RMA-1") == {1: 2}  # never lowered to the gateway's 1
    d = label_parcel(SorterCore(demo_belt(), store, TRUSTING), 0.0)
    assert [u.unit for u in d.units] == [3]  # 3 - 1 received - 1 of ours not counted yet
    # the gateway has counted our three units: nothing is left, whatever this station knew
    store.apply_changes([ann(4, received_quantity=3, received_by_station={"st1": 3})])
    again = label_parcel(SorterCore(demo_belt(), store, TRUSTING), 0.0)
    assert (again.units, again.reason) == ((), Reason.QUANTITY_EXCEEDED)
    store.close()
