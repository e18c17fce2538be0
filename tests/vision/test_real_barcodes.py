"""Real barcode photos (zxing / zxing-cpp test material, tests/fixtures/README.md) through
the camera's decode path (``edge.vision.grading.read_codes``, what the grader runs on a
photo) and the code classifier: each lands in its class with the text its source asserts;
nothing is read from the false-positive images."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from edge.vision.grading import read_codes
from protocol.codes import GS, classify, parse_element_string, split_aim
from protocol.messages import CodeClass

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "barcodes"
IMAGES = sorted(p for p in FIXTURES.glob("*/*") if p.suffix in (".png", ".webp"))
DECODABLE = [p for p in IMAGES if p.parent.name != "falsepositives"]
FALSE_POSITIVES = [p for p in IMAGES if p.parent.name == "falsepositives"]

# GS1 symbols whose data is no valid GS1 element string (GS1 General Specifications /
# the GS1 syntax dictionary): Code 128 with FNC1 first (the source's meta: ]C1, content
# type GS1) holding "168901" / "123456" (AI 16 and AI 12 need six digits of date), and a
# DataBar Expanded ending in AI (423) with 13 digits (it holds 3-digit country codes).
GS1_BUT_INVALID = {
    "zxing_code128-1_1",
    "zxing_code128-1_4",
    "zxing-cpp_code128-1_1",
    "zxing-cpp_code128-1_4",
    "zxing-cpp_rssexpanded-1_32",
}


def expected_text(image: Path) -> str:
    return image.with_suffix(".txt").read_bytes().decode("utf-8")


def meta(image: Path) -> dict[str, str]:
    path = image.with_name(image.stem + ".meta.txt")
    if not path.exists():
        return {}
    pairs = (ln.split("=", 1) for ln in path.read_text().splitlines() if "=" in ln)
    return {k.strip().lower(): v.strip() for k, v in pairs}


def decode(image: Path) -> tuple[str, ...]:
    grey = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
    assert grey is not None, image
    return read_codes(grey)


def test_the_material_is_there() -> None:
    assert len(DECODABLE) == 45 and len(FALSE_POSITIVES) == 4


@pytest.mark.parametrize("image", DECODABLE, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_real_symbol_is_read_and_classified(image: Path) -> None:
    codes = decode(image)
    assert len(codes) == 1, codes
    symbology, data = split_aim(codes[0])
    text = expected_text(image)
    assert data == text
    asserted = meta(image)
    for key in ("symbology_identifier", "symbologyidentifier"):
        if key in asserted:
            assert symbology == asserted[key]
    c = classify(codes[0])
    folder = image.parent.name
    if image.stem in GS1_BUT_INVALID:
        assert symbology in ("]C1", "]e0")
        assert (c.code_class, c.value) == (CodeClass.GARBLED, text)
    elif folder == "ean13":
        assert symbology == "]E0"
        assert (c.code_class, c.value, c.gtin) == (CodeClass.RETAIL, "0" + text, "0" + text)
    elif folder == "gs1":
        assert symbology in ("]d2", "]e0")
        assert c.code_class is CodeClass.GS1
        # the classifier's element string is the symbol's data (FNC1 as GS)
        assert parse_element_string(text).element_string == text.rstrip(GS)
    else:  # plain Code 128 and QR codes: text that is no label, product or carrier number
        assert symbology in ("]C0", "]Q1")
        shown = text if len(text) <= 128 else text[:127] + "\u2026"
        assert (c.code_class, c.value) == (CodeClass.UNKNOWN, shown)


def test_datamatrix_figure_carries_gtin_serial_and_lot() -> None:
    [code] = decode(FIXTURES / "gs1" / "zxing-cpp_datamatrix-1_gs1-figure-4.15.1-2-32x32.png")
    c = classify(code)
    assert (c.gtin, c.serial, c.lot, c.ambiguous) == (
        "09504000059101",
        "12345678p901",
        "1234567p",
        None,
    )


@pytest.mark.parametrize("image", FALSE_POSITIVES, ids=lambda p: p.stem)
def test_nothing_is_read_from_a_false_positive(image: Path) -> None:
    assert decode(image) == ()
