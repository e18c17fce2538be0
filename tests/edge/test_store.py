from pathlib import Path

from edge.store import StationStore
from protocol import RmaAnnouncement, RmaLine
from tests.cases import field_case


def ann(number: str, revision: int, state: str = "authorized") -> RmaAnnouncement:
    return RmaAnnouncement(
        number=number,
        revision=revision,
        order_ref="O-1",
        reason="size",
        resolution="refund",
        state=state,
        lines=(RmaLine(line_no=1, sku="SKU-1", quantity=1, rfid_uid="dd17380a"),),
    )


def test_c6_duplicate_and_older_revision_keep_one_record_at_the_newest(tmp_path: Path) -> None:
    case = field_case("C6_mqtt")[1]
    store = StationStore(tmp_path / "s.db")
    applied = [store.apply_announcement(ann(m["rma"], m["rev"])) for m in case["sequence"]]
    assert applied == [True, False, False]
    assert store.rma_count() == case["expect"]["records"]
    record = store.lookup_rma("RMA-2")
    assert record is not None and record.revision == case["expect"]["rev"]
    assert record.lines[0].rfid_uid == "DD17380A"


def test_newer_revision_replaces_state_and_raises_high_water_mark(tmp_path: Path) -> None:
    store = StationStore(tmp_path / "s.db")
    store.apply_announcement(ann("RMA-1", 3))
    store.apply_announcement(ann("RMA-1", 5, state="cancelled"))
    store.apply_announcement(ann("RMA-9", 4))
    record = store.lookup_rma("RMA-1")
    assert record is not None and record.state == "cancelled"
    assert store.rma_revision() == 5


def test_cache_and_outbox_survive_a_reopen(tmp_path: Path) -> None:
    store = StationStore(tmp_path / "s.db")
    store.apply_announcement(ann("RMA-1", 1))
    first = store.outbox_put("t", b"e1")
    store.outbox_put("t", b"e2")
    store.outbox_ack(first)
    store.close()
    again = StationStore(tmp_path / "s.db")
    assert again.lookup_rma("RMA-1") is not None
    assert [i.payload for i in again.outbox_pending()] == [b"e2"]
    assert again.outbox_depth() == 1


def test_dead_letters_are_kept_with_their_reason(tmp_path: Path) -> None:
    store = StationStore(tmp_path / "s.db")
    store.dead_letter("rs/v1/site1/rma", b'{"rma":', "truncated")
    assert store.dead_letters() == [("rs/v1/site1/rma", b'{"rma":', "truncated")]


def test_catalogue_values_of_a_line_survive_the_cache_and_a_reopen(tmp_path: Path) -> None:
    line = RmaLine(
        line_no=1,
        sku="SHOE-42",
        quantity=2,
        weight_g=850,
        length_mm=330,
        width_mm=210,
        height_mm=120,
        weight_tol_g=25,
        size_tol_mm=10,
    )
    plain = RmaLine(line_no=2, sku="SOCKS", quantity=1)
    store = StationStore(tmp_path / "s.db")
    store.apply_announcement(ann("RMA-1", 1).model_copy(update={"lines": (line, plain)}))
    store.close()
    record = StationStore(tmp_path / "s.db").lookup_rma("RMA-1")
    assert record is not None
    shoe, socks = record.lines
    assert (shoe.sku, shoe.quantity) == ("SHOE-42", 2)
    assert (shoe.weight_g, shoe.length_mm, shoe.width_mm, shoe.height_mm) == (850, 330, 210, 120)
    assert (shoe.weight_tol_g, shoe.size_tol_mm) == (25, 10)
    assert (socks.weight_g, socks.length_mm, socks.weight_tol_g, socks.size_tol_mm) == (
        None,
        None,
        None,
        None,
    )


def test_a_version_1_announcement_leaves_the_catalogue_values_unknown(tmp_path: Path) -> None:
    store = StationStore(tmp_path / "s.db")
    store.apply_announcement(ann("RMA-1", 1).model_copy(update={"schema_version": 1}))
    record = store.lookup_rma("RMA-1")
    assert record is not None
    assert (record.lines[0].weight_g, record.lines[0].height_mm) == (None, None)
