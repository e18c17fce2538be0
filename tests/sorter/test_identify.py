from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from edge.sorter.identify import Gs1Item, WindowReads, identify, is_gs1, parse_gs1, split_aim
from edge.sorter.model import Identity
from protocol.messages import RmaLine, canonical_uid
from simulator.testing import Directory, line, rma
from tests.cases import field_case


def c4_scan() -> str:
    case = field_case("C4_gs1")[0]
    return bytes.fromhex(case["scan_hex"]).decode("ascii").rstrip("\r")


def test_c4_gs1_128_scan_parses_to_gtin_expiry_lot_serial() -> None:
    expect = field_case("C4_gs1")[0]["expect"]
    item = parse_gs1(c4_scan())
    assert item == Gs1Item(
        gtin="09501101020917",
        serial="SN0001",
        lot="ABC123",
        expiry=dt.date(2025, 12, 31),
        symbology="]C1",
    )
    assert (item.gtin, item.expiry.isoformat() if item.expiry else None) == (
        expect["gtin"],
        expect["expiry"],
    )
    assert (item.lot, item.serial, item.symbology) == (
        expect["lot"],
        expect["serial"],
        expect["symbology"],
    )


def test_c4_aim_prefix_is_metadata_whether_in_the_code_or_from_the_scanner() -> None:
    scan = c4_scan()
    assert split_aim(scan) == ("]C1", scan[3:])
    assert parse_gs1(scan[3:], "]C1") == parse_gs1(scan)
    assert is_gs1(scan) and is_gs1(scan[3:], "]C1")


@pytest.mark.parametrize("code", ["RMA-000123", "]C0RMA-000123", "0123456789"])
def test_rma_labels_are_not_gs1(code: str) -> None:
    assert not is_gs1(code)


C4_DATA = "0109501101020917" + "17251231" + "10ABC123" + "\x1d" + "21SN0001"


def test_c4_is_gs1_with_and_without_aim_prefix() -> None:
    assert c4_scan() == "]C1" + C4_DATA
    assert is_gs1("]C1" + C4_DATA)
    assert is_gs1(C4_DATA)  # no AIM prefix: recognised by content
    assert is_gs1("]C0" + C4_DATA)  # GS1 data in plain Code 128, no FNC1
    assert is_gs1("0109501101020917" + "17251231" + "10ABC123")  # no GS, no FNC1
    assert parse_gs1(C4_DATA) == Gs1Item(
        "09501101020917", "SN0001", "ABC123", dt.date(2025, 12, 31), None
    )
    assert parse_gs1("]C0" + C4_DATA) == Gs1Item(
        "09501101020917", "SN0001", "ABC123", dt.date(2025, 12, 31), "]C0"
    )


@pytest.mark.parametrize(
    "code",
    [
        "0109501101020918",  # GTIN with a wrong check digit
        "21SN0001",  # serial alone: could be an RMA number
        "10ABC123",  # lot alone
        "17251231",  # expiry alone
        "01095011010209",  # truncated GTIN
    ],
)
def test_content_without_valid_gtin_is_not_gs1(code: str) -> None:
    assert not is_gs1(code)


def test_known_rma_number_wins_over_gs1_content() -> None:
    number = "0109501101020917"  # parses as GS1 AI 01 with a valid GTIN
    assert is_gs1(number)
    assert not is_gs1(number, rmas=Directory(rma(number)))
    assert is_gs1("]C1" + number, rmas=Directory(rma(number)))  # the symbology says GS1


def test_broken_gs1_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="GS1"):
        parse_gs1("]C1" + "99")


@pytest.mark.parametrize("uid", ["88047DB1", "88:04:7d:b1", "88-04-7D-B1"])
def test_c1_cascade_level1_is_never_a_canonical_uid(uid: str) -> None:
    case = field_case("C1_rfid_uid")[0]
    assert case["anticoll_level1_hex"][:8] == "88047DB1"
    with pytest.raises(ValueError, match="starts with the cascade tag 88"):
        canonical_uid(uid)


def test_c1_cascade_rule_is_on_rma_lines_too() -> None:
    with pytest.raises(ValidationError, match="cascade tag 88"):
        RmaLine(line_no=1, sku="A", quantity=1, rfid_uid="88047DB1")
    assert RmaLine(line_no=1, sku="A", quantity=1, rfid_uid="dd:17:38:0a").rfid_uid == "DD17380A"


def test_c1_7_and_10_byte_uids_are_canonical() -> None:
    assert canonical_uid("04:7d:b1:2a:3b:4c:80") == "047DB12A3B4C80"
    assert canonical_uid("04 7d b1 2a 3b 4c 80 11 22 33") == "047DB12A3B4C80112233"


def test_c1_uid_has_one_canonical_form() -> None:
    case = field_case("C1_rfid_uid")[1]
    assert canonical_uid("dd:17:38:0a") == case["expect_uid"] == "DD17380A"
    with pytest.raises(ValueError):
        canonical_uid(case["anticoll_level1_hex"])  # UID + BCC is 5 bytes: not a UID


UID = "04A2B3C4D5E680"
ITEM = Gs1Item("09501101020917", "SN0001", None, None)


@pytest.mark.parametrize(
    ("reads", "identity", "rma_number", "lines"),
    [
        (WindowReads(), Identity.NO_READ, None, ()),
        (WindowReads(labels=("RMA-1", "RMA-2")), Identity.CONFLICTING, None, ()),
        (WindowReads(labels=("RMA-9",)), Identity.UNKNOWN_RMA, None, ()),
        (WindowReads(labels=("RMA-1",)), Identity.MATCHED, "RMA-1", (0,)),
        # the tag names RMA-2 while the label says RMA-1
        (WindowReads(labels=("RMA-1",), uids=(UID,)), Identity.CONFLICTING, None, ()),
        (WindowReads(uids=(UID,)), Identity.MATCHED, "RMA-2", (0,)),
        (WindowReads(labels=("RMA-2",), uids=(UID,)), Identity.MATCHED, "RMA-2", (0,)),
        # the tag is not read: the label names the RMA, the unit is unverified (the
        # verification table inspects it with reason rfid_timeout)
        (WindowReads(labels=("RMA-2",)), Identity.MATCHED, "RMA-2", (0,)),
        (WindowReads(labels=("RMA-2",), uids=("DEADBEEF",)), Identity.WRONG_ITEM, "RMA-2", ()),
        (WindowReads(labels=("RMA-3",), items=(ITEM,)), Identity.MATCHED, "RMA-3", (1,)),
        (
            WindowReads(labels=("RMA-3",), items=(Gs1Item("09501101020924", None, None, None),)),
            Identity.WRONG_ITEM,
            "RMA-3",
            (),
        ),
        (WindowReads(items=(ITEM,)), Identity.MATCHED, "RMA-3", (1,)),
    ],
)
def test_identify(
    reads: WindowReads, identity: Identity, rma_number: str | None, lines: tuple[int, ...]
) -> None:
    directory = Directory(
        rma("RMA-1"),
        rma("RMA-2", line(rfid_uid=UID)),
        rma(
            "RMA-3",
            line("SKU-A", gtin="4006381333931"),
            # GTIN-13 on the RMA line, GTIN-14 in the scan: the same item
            line("SKU-B", gtin="9501101020917", serial="SN0001"),
        ),
    )
    result = identify(reads, directory)
    assert result.identity == identity
    assert (result.rma.number if result.rma else None) == rma_number
    assert result.lines == lines
