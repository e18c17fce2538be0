"""Return labels people can read: every script, wrapped text, captions, carrier barcode.

Glyph coverage is checked against the font files' own ``cmap`` tables (fontTools, not the
code under test), and the PDF is rendered and read back with poppler (``pdftotext``,
``pdftoppm``) and zxing-cpp. Strings in many scripts come from the Unicode CLDR (Babel's
locale data: country and language names as each language writes them).
"""

from __future__ import annotations

import functools
import io
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from babel import Locale
from fontTools.ttLib import TTCollection
from fontTools.ttLib import TTFont as FontToolsFont

from gateway.models import Rma
from gateway.services import labels
from gateway.services.labels import (
    BOLD_FONTS,
    REGULAR_FONTS,
    FontChain,
    FontFile,
    LabelError,
    LabelFontsMissing,
    LabelLayout,
    layout_label,
    render_label,
    wrap,
)

RETURN_ADDRESS = "Returns Centre\\nDock 4\\n12345 Example City"
#: one real-world name per script the acceptance names
NAMES = {
    "latin": "Zoë Łukasiewicz-Núñez",
    "vietnamese": "Nguyễn Thị Minh Khai",
    "greek": "Αλέξανδρος Παπαδόπουλος",
    "cyrillic": "Фёдор Шевчук",
    "arabic": "فاطمة الزهراء",
    "chinese": "王秀英",
}
PAGE_W = labels.PAGE_W_MM * labels.mm
PAGE_H = labels.PAGE_H_MM * labels.mm
MARGIN = labels.MARGIN_MM * labels.mm
BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None,
    reason="needs poppler-utils (scripts/ensure-system-deps.sh installs it)",
)


def rma(**fields: str) -> Rma:
    values = {"number": "RS0A1B2C3D4", "order_ref": "ORD-1001", "customer": "", **fields}
    values.setdefault("customer_address", "")
    return Rma(**values)


@functools.cache
def cmap_of(path: Path) -> frozenset[int]:
    if path.suffix == ".ttc":
        return frozenset(TTCollection(str(path)).fonts[0].getBestCmap())
    return frozenset(FontToolsFont(str(path)).getBestCmap())


def drawn_text(layout: LabelLayout) -> str:
    return "".join(run.text for run in layout.runs)


def assert_every_glyph_in_its_font(layout: LabelLayout) -> None:
    assert layout.missing == ""
    for run in layout.runs:
        cmap = cmap_of(run.font_path)
        absent = [f"U+{ord(ch):04X}" for ch in run.text if ord(ch) not in cmap]
        assert absent == [], f"{run.text!r} drawn in {run.font_path.name} lacks {absent}"


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    (tmp_path / "label.pdf").write_bytes(pdf)
    out = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "label.pdf", "-"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    ).stdout.decode()
    # presentation forms (shaped Arabic) read back as their letters under NFKC
    return unicodedata.normalize("NFKC", BIDI_CONTROLS.sub("", out))


@pytest.mark.parametrize("script", sorted(NAMES))
def test_each_script_is_drawn_in_a_font_that_has_every_glyph(script: str) -> None:
    layout = layout_label(rma(customer=NAMES[script]), RETURN_ADDRESS)
    assert_every_glyph_in_its_font(layout)
    name_runs = [run for run in layout.runs if run.text.strip() and run.text in NAMES[script]]
    assert "".join(sorted(NAMES[script].replace(" ", ""))) == "".join(
        sorted("".join(r.text for r in name_runs).replace(" ", ""))
    )
    fonts = {run.font_path.name for run in name_runs if run.text.strip()}
    expected = {"chinese": {"wqy-zenhei.ttc"}}.get(script, {"DejaVuSans-Bold.ttf"})
    assert fonts == expected


@needs_poppler
def test_names_in_five_scripts_render_and_read_back(tmp_path: Path) -> None:
    customer = " / ".join(NAMES[s] for s in ("latin", "greek", "cyrillic", "chinese"))
    address = "\n".join([NAMES["arabic"], NAMES["vietnamese"], "75011 Paris"])
    pdf = render_label(rma(customer=customer, customer_address=address), RETURN_ADDRESS)
    text = " ".join(pdf_text(pdf, tmp_path).split())  # wrapped lines joined again
    for name in NAMES.values():
        assert unicodedata.normalize("NFKC", name) in text, name
    fonts = subprocess.run(
        ["pdffonts", "label.pdf"], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout.splitlines()[2:]
    embedded = {line.split()[0].split("+")[-1] for line in fonts if " yes yes yes " in line}
    assert embedded == {"DejaVuSans", "DejaVuSans-Bold", "WenQuanYiZenHei-0"}
    # reportlab's document always declares Helvetica; no text uses it
    assert [line.split()[0] for line in fonts if " yes yes yes " not in line] == ["Helvetica"]


def test_arabic_is_joined_and_right_to_left() -> None:
    layout = layout_label(rma(customer="فاطمة"), RETURN_ADDRESS)
    (run,) = [r for r in layout.runs if r.text == "فاطمة"]
    # the contextual forms of ArabicShaping.txt, left to right on the page:
    # teh marbuta final, meem medial, tah initial (alef joins on its right only),
    # alef final, feh initial
    assert str(run.glyphs) == "\ufe94\ufee4\ufec3\ufe8e\ufed3"
    # a right-to-left paragraph is set flush right
    assert run.x_pt + run.width_pt == pytest.approx(PAGE_W - MARGIN)
    mixed = layout_label(rma(customer_address="شارع الملك فهد 12"), RETURN_ADDRESS)
    (street,) = [r for r in mixed.runs if r.text == "شارع"]
    line = sorted((r for r in mixed.runs if r.y_pt == street.y_pt), key=lambda r: r.x_pt)
    assert [r.text.strip() for r in line if r.text.strip()] == ["12", "فهد", "الملك", "شارع"]


@pytest.mark.parametrize("lang", ["en", "fr", "de", "pl", "cs", "tr", "vi", "ro", "is", "el", "ru"])
def test_cldr_names_of_latin_greek_cyrillic_languages_are_covered(lang: str) -> None:
    check_cldr_coverage(lang)


@pytest.mark.parametrize("lang", ["uk", "bg", "sr", "ar", "fa", "ur", "he", "hi", "th", "am"])
def test_cldr_names_of_arabic_hebrew_indic_thai_ethiopic_are_covered(lang: str) -> None:
    check_cldr_coverage(lang)


@pytest.mark.parametrize("lang", ["zh", "zh_Hant", "ja", "ko"])
def test_cldr_names_of_cjk_languages_are_covered(lang: str) -> None:
    check_cldr_coverage(lang)


def check_cldr_coverage(lang: str) -> None:
    locale = Locale.parse(lang)
    texts = [*locale.territories.values(), *locale.languages.values()]
    assert len(texts) > 300
    for files in (REGULAR_FONTS, BOLD_FONTS):
        chain = FontChain(files)
        for text in texts:
            for font, run in chain.split(text):
                cmap = cmap_of(chain.path_of(font))
                assert all(ord(ch) in cmap for ch in run), (lang, text)
        assert chain.missing == set()


def test_long_words_wrap_between_characters_within_the_width() -> None:
    chain = FontChain(REGULAR_FONTS)
    width = 60 * labels.mm
    word = "北京市朝阳区建国路八十八号现代城五号楼二十三层二三零一室" * 2
    lines = wrap(word, chain, 10.0, width)
    assert "".join(line.text for line in lines) == word
    assert len(lines) >= 3
    assert all(labels._width(line.text, chain, 10.0) <= width for line in lines)
    text = "Maximilian Alexander von Habsburg-Lothringen-Württemberg"
    assert [line.text for line in wrap(text, chain, 10.0, 70 * labels.mm)] == [
        "Maximilian Alexander von",
        "Habsburg-Lothringen-Württemberg",
    ]


@needs_poppler
def test_the_longest_contact_never_leaves_the_page(tmp_path: Path) -> None:
    name = ("Maria de los Ángeles Fernández-Villaverde y Castellanos " * 3)[:128]
    address = "\n".join(
        f"Línea {n} de la dirección con un nombre de calle muy, muy largo" for n in range(8)
    )[:500]
    return_address = "\\n".join(f"Return line {n}: Warehouse Building C, Gate 7" for n in range(8))
    layout = layout_label(
        rma(customer=name, customer_address=address, order_ref="O" * 64, number="R" * 32),
        return_address,
        tracking_number="1Z999AA1" + "0" * 30,
        carrier="United Parcel Service of America, Inc.",
    )
    assert_every_glyph_in_its_font(layout)
    for run in layout.runs:
        assert MARGIN - 0.01 <= run.x_pt <= run.x_pt + run.width_pt <= PAGE_W - MARGIN + 0.01
        assert MARGIN - 0.01 <= run.y_pt <= PAGE_H - MARGIN, run.text
    for box in layout.barcodes:
        assert MARGIN - 0.01 <= box.x_pt <= box.x_pt + box.width_pt <= PAGE_W - MARGIN + 0.01
    drawn = drawn_text(layout)
    assert "R" * 32 in drawn  # the RMA number shrinks but is never shortened
    assert "Return line 0" in drawn and "Return line 7: Warehouse Building C, Gate 7" in drawn
    # the order reference had to give at the smallest size: it is marked, not cut
    (order,) = [run.text for run in layout.runs if run.text.startswith("Order")]
    assert order.endswith("O…") and len(order) < len("Order ") + 64
    # what poppler finds on the rendered page lies within the margins too (1 pt slack:
    # poppler's boxes are the fonts' em boxes)
    pdf = labels.draw_label(layout)
    (tmp_path / "label.pdf").write_bytes(pdf)
    subprocess.run(["pdftotext", "-bbox", "label.pdf", "box.html"], cwd=tmp_path, check=True)
    boxes = re.findall(
        r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)"',
        (tmp_path / "box.html").read_text(),
    )
    assert len(boxes) > 40
    for x0, y0, x1, y1 in ((float(v) for v in box) for box in boxes):
        assert MARGIN - 1 <= x0 < x1 <= PAGE_W - MARGIN + 1
        assert MARGIN - 1 <= y0 < y1 <= PAGE_H - MARGIN + 1


def test_captions_are_in_the_shops_language() -> None:
    texts = {
        lang: drawn_text(layout_label(rma(customer="Ann"), RETURN_ADDRESS, lang=lang))
        for lang in ("en", "fr")
    }
    assert all(w in texts["en"] for w in ("From", "Return to", "Order ORD-1001"))
    assert all(w in texts["fr"] for w in ("Expéditeur", "Adresse de retour", "Commande ORD-1001"))
    assert layout_label(rma(), RETURN_ADDRESS, lang="fr").title == "Étiquette de retour RS0A1B2C3D4"
    with pytest.raises(KeyError):
        layout_label(rma(), RETURN_ADDRESS, lang="de")


def barcodes_of(pdf: bytes, tmp_path: Path) -> list[tuple[str, str]]:
    """The barcodes zxing-cpp reads on the label rendered at 200 dpi: (format, text)."""
    import zxingcpp
    from PIL import Image

    (tmp_path / "label.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "200", "-png", "-singlefile", "label.pdf", "label"],
        cwd=tmp_path,
        check=True,
    )
    image = Image.open(io.BytesIO((tmp_path / "label.png").read_bytes()))
    return sorted((b.format.name, b.text) for b in zxingcpp.read_barcodes(image))


@needs_poppler
def test_tracking_number_is_a_code128_with_the_carrier(tmp_path: Path) -> None:
    pdf = render_label(
        rma(customer="Ann"), RETURN_ADDRESS, carrier="DHL", tracking_number="00340434161234567890"
    )
    assert "Tracking number · DHL" in pdf_text(pdf, tmp_path)
    assert barcodes_of(pdf, tmp_path) == [
        ("Code128", "00340434161234567890"),
        ("Code128", "RS0A1B2C3D4"),
        ("QRCode", "RS0A1B2C3D4"),
    ]


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("", "tracking number must be 1..48 printable ASCII characters"),
        ("1Z 999", "tracking number must be 1..48 printable ASCII characters"),
        ("ÄBC123", "tracking number must be 1..48 printable ASCII characters"),
        ("A" * 49, "tracking number must be 1..48 printable ASCII characters"),
        ("AB" * 24, "is too long to print as a readable Code 128 on this label"),
    ],
)
def test_a_tracking_number_code128_cannot_print_is_refused(number: str, message: str) -> None:
    with pytest.raises(LabelError, match=re.escape(message)):
        layout_label(rma(), RETURN_ADDRESS, carrier="DHL", tracking_number=number)


def test_a_missing_font_names_its_package() -> None:
    chain = FontChain([FontFile("RS-Test-Missing", Path("/nonexistent/Font.ttf"), "fonts-test")])
    with pytest.raises(LabelFontsMissing, match="install the Debian package fonts-test"):
        chain.split("a")


def test_control_characters_in_names_are_drawn_as_spaces() -> None:
    layout = layout_label(rma(customer="Ann\x07\tLee\x1b"), RETURN_ADDRESS)
    assert "Ann Lee" in " ".join(run.text for run in layout.runs)
    assert_every_glyph_in_its_font(layout)


ORDER = {
    "order_ref": "ORD-7",
    "customer": "Ζωή Παπαδοπούλου",
    "customer_address": "Οδός Ερμού 12\n105 63 Αθήνα",
    "lines": [
        {"sku": "A", "ordered_quantity": 1, "delivered_quantity": 1, "unit_price_cents": 900}
    ],
}


@needs_poppler
@pytest.mark.broker
def test_the_api_label_has_the_customer_and_the_asked_language(
    client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.post("/api/v1/orders", json=ORDER).status_code == 201
    body = {"order_ref": "ORD-7", "reason": "size", "resolution": "refund"}
    number = client.post("/api/v1/rmas", json={**body, "lines": [{"sku": "A", "quantity": 1}]})
    number = number.json()["number"]
    en = pdf_text(client.get(f"/api/v1/rmas/{number}/label.pdf").content, tmp_path)
    assert "From Ζωή Παπαδοπούλου Οδός Ερμού 12 105 63 Αθήνα Return to" in " ".join(en.split())
    fr = pdf_text(client.get(f"/api/v1/rmas/{number}/label.pdf?lang=fr").content, tmp_path)
    assert "Expéditeur Ζωή Παπαδοπούλου" in " ".join(fr.split())
    assert client.get(f"/api/v1/rmas/{number}/label.pdf?lang=xx").status_code == 422
    missing = FontFile("RS-Test-Gone", Path("/nonexistent/Gone.ttf"), "fonts-gone")
    monkeypatch.setattr(labels, "REGULAR_FONTS", (missing,))
    gone = client.get(f"/api/v1/rmas/{number}/label.pdf")
    assert gone.status_code == 503
    assert "install the Debian package fonts-gone" in gone.json()["detail"]


@needs_poppler
@pytest.mark.broker
def test_the_api_label_shows_the_rmas_carrier_barcode(client: Any, tmp_path: Path) -> None:
    body = {"order_ref": "ORD-8", "reason": "size", "resolution": "refund"}
    lines = [{"sku": "A", "quantity": 1, "unit_price_cents": 900}]
    created = client.post("/api/v1/rmas", json={**body, "lines": lines}).json()
    number = created["number"]
    plain = client.get(f"/api/v1/rmas/{number}/label.pdf").content
    assert barcodes_of(plain, tmp_path) == [("Code128", number), ("QRCode", number)]
    shipped = client.post(
        f"/api/v1/rmas/{number}/ship", json={"tracking_number": "1Z999AA10123456784"}
    )
    assert shipped.status_code == 200, shipped.text
    pdf = client.get(f"/api/v1/rmas/{number}/label.pdf").content
    assert "Tracking number · UPS" in pdf_text(pdf, tmp_path)
    assert barcodes_of(pdf, tmp_path) == [
        ("Code128", "1Z999AA10123456784"),
        ("Code128", number),
        ("QRCode", number),
    ]
