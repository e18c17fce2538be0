"""The code classifier (protocol.codes): one place that names what a read is."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from protocol.codes import (
    CodeClassifier,
    TrackingRule,
    classify,
    rma_check_character,
    rma_number_ok,
    s10_check_digit,
    ups_check_digit,
)
from protocol.messages import CodeClass

C4 = "0109501101020917" + "17251231" + "10ABC123" + "\x1d" + "21SN0001"


@pytest.mark.parametrize(
    ("code", "cls", "value"),
    [
        # retail codes with and without AIM identifiers, as GTIN-14 (check digits from
        # the GS1 General Specifications examples and real products)
        ("]E04006381333931", CodeClass.RETAIL, "04006381333931"),
        ("4006381333931", CodeClass.RETAIL, "04006381333931"),
        ("]E0036000291452", CodeClass.RETAIL, "00036000291452"),  # UPC-A
        ("]E004252614", CodeClass.RETAIL, "00042100005264"),  # UPC-E 04252614 = 042100005264
        ("04252614", CodeClass.RETAIL, "00042100005264"),
        ("]E496385074", CodeClass.RETAIL, "00000096385074"),  # EAN-8
        ("]I110012345678902", CodeClass.RETAIL, "10012345678902"),  # ITF-14
        ("]E3400638133393100123", CodeClass.RETAIL, "04006381333931"),  # with a 5-digit add-on
        ("]E04006381333932", CodeClass.GARBLED, "4006381333932"),  # wrong check digit
        # GS1 element strings by symbology, FNC1 or content
        ("]C1" + C4, CodeClass.GS1, "(01)09501101020917(17)251231(10)ABC123(21)SN0001"),
        ("\x1d" + C4, CodeClass.GS1, "(01)09501101020917(17)251231(10)ABC123(21)SN0001"),
        (C4, CodeClass.GS1, "(01)09501101020917(17)251231(10)ABC123(21)SN0001"),
        ("]C0" + C4, CodeClass.GS1, "(01)09501101020917(17)251231(10)ABC123(21)SN0001"),
        ("]C199", CodeClass.GARBLED, "99"),
        ("]d20109501101020918", CodeClass.GARBLED, "0109501101020918"),  # GTIN check digit
        ("0109501101020918", CodeClass.UNKNOWN, "0109501101020918"),  # by content: not GS1
        ("]C100373400306809981733", CodeClass.SSCC, "373400306809981733"),
        ("00373400306809981733", CodeClass.SSCC, "373400306809981733"),
        # our RMA numbers: ISO/IEC 7064 MOD 37,36
        ("RS7K2M9Q4XI", CodeClass.RMA_LABEL, "RS7K2M9Q4XI"),
        ("]C0RS7K2M9Q4XI", CodeClass.RMA_LABEL, "RS7K2M9Q4XI"),
        ("RS7K2M9Q4XJ", CodeClass.GARBLED, "RS7K2M9Q4XJ"),
        # carriers (examples of the public tracking_number_data set)
        ("1Z879E930346834440", CodeClass.TRACKING, "1Z879E930346834440"),
        ("1Z879E930346834441", CodeClass.GARBLED, "1Z879E930346834441"),
        ("RB123456785GB", CodeClass.TRACKING, "RB123456785GB"),
        ("RB123456784GB", CodeClass.GARBLED, "RB123456784GB"),
        # the rest
        ("RMA-000123", CodeClass.UNKNOWN, "RMA-000123"),
        ("]Q1MECARD:N:Google 411,;", CodeClass.UNKNOWN, "MECARD:N:Google 411,;"),
        ("]C030885909173823", CodeClass.UNKNOWN, "30885909173823"),  # Code 128 is no EAN
        ("", CodeClass.UNKNOWN, "?"),
    ],
)
def test_classify(code: str, cls: CodeClass, value: str) -> None:
    c = classify(code)
    assert (c.code_class, c.value) == (cls, value)


def test_retail_code_carries_its_gtin_and_symbology() -> None:
    c = classify("]E04006381333931")
    assert (c.gtin, c.symbology, c.detail, c.is_item) == ("04006381333931", "]E0", "EAN-13", True)
    assert c.code_read("camera").model_dump() == {
        "code_class": "retail",
        "value": "04006381333931",
        "source": "camera",
        "detail": "EAN-13",
    }


def test_scanner_reported_symbology_counts_like_a_prefix() -> None:
    assert classify("4006381333931", "]E0").detail == "EAN-13"
    assert classify(C4[:16], "]d2").code_class is CodeClass.GS1


def test_known_rma_number_wins_over_content_not_over_symbology() -> None:
    number = "0109501101020917"
    assert classify(number).code_class is CodeClass.GS1
    assert classify(number, known_rma=lambda n: n == number).code_class is CodeClass.RMA_LABEL
    gs1 = classify("]C1" + number, known_rma=lambda n: True)
    assert gs1.code_class is CodeClass.GS1
    retail = classify("]E04006381333931", known_rma=lambda n: True)
    assert retail.code_class is CodeClass.RETAIL


@pytest.mark.parametrize(
    ("data", "serial", "why"),
    [
        ("010950110102091721SN0001", "SN0001", None),
        ("010950110102091721SN000110ABC", None, "(21) may have swallowed (10)"),
        ("0109501101020917" + "10ABC123" + "21SN0001", None, "(10) may have swallowed (21)"),
        ("0109501101020917" + "10ABC123\x1d21SN0001", "SN0001", None),
        # a lot at its maximum length (20) followed by the serial without GS
        ("0109501101020917" + "10" + "A" * 20 + "21SN0001", None, "(10) is not ended by GS"),
    ],
)
def test_an_ambiguous_element_string_never_yields_a_serial(
    data: str, serial: str | None, why: str | None
) -> None:
    c = classify(data)
    assert c.code_class is CodeClass.GS1
    assert (c.gtin, c.serial) == ("09501101020917", serial)
    if why is None:
        assert c.ambiguous is None
    else:
        assert c.ambiguous is not None and why in c.ambiguous
        assert why in (c.detail or "")


def test_rma_check_character_is_iso_7064_mod_37_36() -> None:
    assert rma_check_character("RS7K2M9Q4X") == "I"
    assert rma_number_ok("RS7K2M9Q4XI") and not rma_number_ok("RS7K2M9Q4XJ")
    assert not rma_number_ok("RMA-000123")


def test_check_digit_algorithms_on_published_examples() -> None:
    assert s10_check_digit("12345678") == 5  # RB 12345678 5 GB
    assert ups_check_digit("879E93034683444") == 0  # 1Z 879E93034683444 0


def test_a_site_extends_the_carriers_with_data() -> None:
    dhl = TrackingRule(carrier="DHL Express", pattern=r"(?P<body>\d{9})(?P<check>\d)", check="mod7")
    site = CodeClassifier([dhl])
    c = site.classify("1234567891")  # 123456789 mod 7 = 1
    assert (c.code_class, c.carrier, c.detail) == (
        CodeClass.TRACKING,
        "DHL Express",
        "carrier DHL Express",
    )
    # its pattern with a wrong check digit: a misread of that carrier's number
    assert site.classify("1234567890").code_class is CodeClass.GARBLED
    assert classify("1234567891").code_class is CodeClass.UNKNOWN  # not a built-in carrier
    luhn = TrackingRule(carrier="Acme", pattern=r"AC(?P<body>\d{10})(?P<check>\d)", check="luhn")
    assert CodeClassifier([luhn]).classify("AC79927398713").code_class is CodeClass.TRACKING
    assert CodeClassifier([luhn]).classify("AC79927398710").code_class is CodeClass.GARBLED


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"pattern": "(unclosed"}, "not a regular expression"),
        ({"pattern": r"\d{10}", "check": "mod7"}, "needs groups"),
        ({"pattern": r"\d{10}", "check": "crc32"}, "check"),
        ({"pattern": "x" * 201}, "200"),
    ],
)
def test_a_bad_tracking_rule_is_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrackingRule(carrier="X", **fields)


def test_an_oversized_read_is_unknown_without_parsing() -> None:
    c = classify("]C1" + "01" * 400)
    assert (c.code_class, c.detail) == (CodeClass.UNKNOWN, "too long to be a code")
    assert len(c.value) == 128
