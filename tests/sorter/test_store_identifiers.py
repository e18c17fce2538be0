"""The station cache finds RMAs by item identifier (the core's IdentifierDirectory)."""

from __future__ import annotations

from pathlib import Path

from edge.sorter.model import IdentifierDirectory, RmaLineRecord
from edge.store import StationStore
from protocol import RmaAnnouncement, RmaLine


def ann(number: str, revision: int, *lines: RmaLine, reason: str = "defective") -> RmaAnnouncement:
    return RmaAnnouncement(
        number=number,
        revision=revision,
        order_ref="ORD-1",
        reason=reason,
        resolution="refund",
        lines=lines,
    )


def test_tag_and_serial_name_their_rma_and_follow_revisions(tmp_path: Path) -> None:
    store = StationStore(tmp_path / "s.db")
    assert isinstance(store, IdentifierDirectory)
    store.apply_announcement(
        ann("RMA-1", 1, RmaLine(line_no=1, sku="SKU-1", quantity=1, rfid_uid="04:a2:b3:c4"))
    )
    store.apply_announcement(
        ann("RMA-2", 2, RmaLine(line_no=1, sku="SKU-2", quantity=1, serial="SN0001"))
    )
    assert store.find_rmas("rfid_uid", "04A2B3C4") == ("RMA-1",)
    assert store.find_rmas("serial", "SN0001") == ("RMA-2",)
    assert store.find_rmas("rfid_uid", "DEADBEEF") == ()
    # a newer revision replaces the line's identifiers
    store.apply_announcement(
        ann("RMA-1", 3, RmaLine(line_no=1, sku="SKU-1", quantity=1, rfid_uid="DEADBEEF"))
    )
    assert store.find_rmas("rfid_uid", "04A2B3C4") == ()
    assert store.find_rmas("rfid_uid", "DEADBEEF") == ("RMA-1",)
    record = store.lookup_rma("RMA-1")
    assert record is not None
    assert record.reason == "defective"
    assert record.lines == (
        RmaLineRecord("SKU-1", 1, rfid_uid="DEADBEEF", line_no=1, received_here=0),
    )
    store.close()
