"""Every case of ``tests/fixtures/gs1/vectors.json`` (GS1 standard tools: biip tests, the
GS1 syntax engine, zxing samples) is parsed, or refused, as its source asserts."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from protocol.codes import GS, CodeError, Gs1Parse, classify, parse_element_string
from protocol.messages import CodeClass

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "gs1" / "vectors.json").read_text()
)


def data_str(element_string: str) -> str:
    """The GS1 syntax engine's data string: ``^`` for FNC1 in first position and as GS."""
    return "^" + element_string.replace(GS, "^")


def check_parse(parsed: Gs1Parse, expected: dict[str, Any]) -> None:
    if "hri" in expected:
        assert parsed.hri == expected["hri"]
    if "elements" in expected:
        assert [list(e) for e in parsed.elements] == expected["elements"]
    if "element_string" in expected:
        assert parsed.element_string == expected["element_string"]
    if "data_str" in expected:
        assert data_str(parsed.element_string) == expected["data_str"]
    by_ai = {es.ai.ai: es for es in parsed.message.element_strings}
    for ai, date in expected.get("dates", {}).items():
        assert by_ai[ai].date == dt.date.fromisoformat(date)
    for ai, when in expected.get("datetimes", {}).items():
        got = by_ai[ai].datetime
        assert got == (None if when is None else dt.datetime.fromisoformat(when))
    for ai, value in expected.get("decimals", {}).items():
        assert by_ai[ai].decimal == Decimal(value)
    if "sscc" in expected:
        sscc = by_ai["00"].sscc
        assert sscc is not None
        assert (sscc.extension_digit, sscc.check_digit) == (
            expected["sscc"]["extension_digit"],
            expected["sscc"]["check_digit"],
        )


def test_all_vectors_are_here() -> None:
    assert len(VECTORS) == 31
    kinds = sorted({v["input_kind"] for v in VECTORS})
    assert kinds == ["element_string", "hri", "scan_with_aim_id"]


@pytest.mark.parametrize("case", VECTORS, ids=[f"{v['ref']}:{v['input']!r}" for v in VECTORS])
def test_vector(case: dict[str, Any]) -> None:
    expected = case["expected"]
    text = case["input"]
    kind = case["input_kind"]
    if kind == "scan_with_aim_id":
        c = classify(text)
        if not expected["valid"]:
            assert c.code_class is CodeClass.GARBLED
            return
        if text.startswith("]E"):
            assert c.code_class is CodeClass.RETAIL
            assert c.value == expected["data_str"].zfill(14)
            assert expected["symbology"] in (c.detail or "")
            return
        assert c.code_class is CodeClass.GS1
        name = expected.get("symbology", "").removeprefix(text[:3]).strip()
        assert name in (c.detail or "")
        if "gtin" in expected:
            assert c.gtin == expected["gtin"]
        if "elements" in expected or "hri" in expected:
            assert c.value == expected.get("hri", c.value)
        data = text[3:]
        if data.startswith("http"):
            from protocol.codes import parse_digital_link

            check_parse(parse_digital_link(data), expected)
        else:
            check_parse(parse_element_string(data), expected)
        return
    separators = tuple(case.get("config", {}).get("separator_chars", ())) or (GS,)
    hri = kind == "hri"
    if not expected["valid"]:
        with pytest.raises(CodeError):
            parse_element_string(text, separator_chars=separators, hri=hri)
        return
    parsed = parse_element_string(text, separator_chars=separators, hri=hri)
    check_parse(parsed, expected)


def test_a_variable_length_field_that_swallowed_a_date_is_ambiguous() -> None:
    """The source's note: (10) without GS swallows the following (15) date."""
    [case] = [v for v in VECTORS if v["input"] == "010703206980498810032915210526"]
    parsed = parse_element_string(case["input"])
    assert parsed.ambiguous is not None and "(15)" in parsed.ambiguous
    assert (parsed.gtin, parsed.lot, parsed.serial) == ("07032069804988", None, None)
    # the same data with its separator is not ambiguous
    assert parse_element_string("0107032069804988100329\x1d15210526").ambiguous is None
