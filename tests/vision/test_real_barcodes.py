"""Real barcode photos (zxing / zxing-cpp test material, tests/fixtures/README.md) through
the camera's decode path (``edge.vision.grading.read_codes``, what the grader runs on a
photo) and the code classifier: each lands in its class with the text its source asserts;
nothing is read from the false-positive images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zxingcpp

from edge.vision.grading import read_codes
from protocol.codes import GS, classify, parse_element_string, split_aim
from protocol.messages import CodeClass

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "barcodes"
IMAGES = sorted(p for p in FIXTURES.glob("*/*") if p.suffix in (".png", ".webp"))
DECODABLE = [p for p in IMAGES if p.parent.name not in ("falsepositives", "unreadable")]
FALSE_POSITIVES = [p for p in IMAGES if p.parent.name == "falsepositives"]
UNREADABLE = [p for p in IMAGES if p.parent.name == "unreadable"]  # blurry: never a misread

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
    assert (len(DECODABLE), len(FALSE_POSITIVES), len(UNREADABLE)) == (45, 4, 3)


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


@pytest.mark.parametrize("image", FALSE_POSITIVES + UNREADABLE, ids=lambda p: p.stem)
def test_nothing_is_read_from_a_false_positive_or_a_blurry_photo(image: Path) -> None:
    assert decode(image) == ()


def test_real_label_photos_stuck_on_a_parcel_are_read_by_the_grader() -> None:
    """Each Code 128 / EAN-13 phone photo stuck on a generated parcel (a 0.5 mm/px frame),
    through the whole of ``measure``: label blob, deskew, crop, decode; never a misread."""
    from edge.sorter.grading import GradingThresholds
    from edge.vision.calibration import Calibration
    from edge.vision.grading import measure
    from simulator.vision.generator import ParcelSpec, render

    read = tried = 0
    for image in DECODABLE:
        if image.parent.name not in ("code128", "ean13") or image.suffix != ".png":
            continue
        photo = cv2.imread(str(image))
        frame = render(ParcelSpec(500, 380, label=None, size=(1600, 1200), mm_per_px=0.5, seed=3))
        h, w = photo.shape[:2]
        k = min(1.0, 560 / w, 420 / h)
        photo = cv2.resize(photo, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        y0, x0 = (frame.shape[0] - photo.shape[0]) // 2, (frame.shape[1] - photo.shape[1]) // 2
        frame[y0 : y0 + photo.shape[0], x0 : x0 + photo.shape[1]] = photo
        m = measure(frame, Calibration(0.5), GradingThresholds())
        assert m.found, image.name
        assert all(split_aim(c)[1] == expected_text(image) for c in m.barcodes), m.barcodes
        tried += 1
        read += bool(m.barcodes)
    assert tried == 24
    assert read >= 22, f"only {read} of {tried} real labels read through the grader"


def test_a_camera_read_holding_nul_is_dropped_the_others_kept() -> None:
    # Code 128 encodes NUL and zxing-cpp reads it as such: the station put it in the
    # event, which PostgreSQL could not store (dead-lettered as poison: the parcel,
    # quarantined on the belt, had no event at the gateway) and the gateway now refuses.
    # Symbols made by zxing-cpp's own writer.
    def symbol(text: str) -> Any:
        image = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128)
        grey = np.asarray(zxingcpp.write_barcode_to_image(image, scale=3))
        return cv2.copyMakeBorder(grey, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)

    assert read_codes(symbol("AB12CD")) == ("]C0AB12CD",)
    assert read_codes(symbol("AB\x0012CD")) == ()  # garbled: the parcel goes on its others
    beside = np.hstack([symbol("AB\x0012CD"), symbol("RMA-7")])
    assert read_codes(beside) == ("]C0RMA-7",)
