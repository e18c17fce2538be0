"""Return labels: a printable PDF (reportlab) that every customer name renders on.

The label is 100 mm x 150 mm (the common 4x6 inch thermal format). From the top: the
sender (the customer's name and postal address), the return address, the RMA number in
large text beside a QR code and above a Code 128 barcode (both encode exactly the RMA
number: what the station's scanner reads), the order reference and, when the parcel has
one, the carrier's tracking number as Code 128 with the carrier's name. Captions are in
the language asked for (the shop's: English or French, from the gateway's catalogues).

Text is drawn with embedded TrueType fonts (subsets), chosen by glyph coverage (their
``cmap`` tables): DejaVu Sans first, then GNU FreeFont, then WenQuanYi Zen Hei for Chinese,
Japanese and Korean (Debian packages installed by ``scripts/ensure-system-deps.sh``; their
licences allow embedding). A word takes the first font that has all its characters, so an
Arabic word is never split between fonts (its letters join), else each character the first
font that has it.
Each line is put in visual order by the Unicode bidirectional algorithm (UAX #9, the
``python-bidi`` package) and right-to-left words are shaped by HarfBuzz (reportlab's own
``shapeStr`` over ``uharfbuzz``: joined Arabic forms, lam-alef, marks). Long text wraps
at word boundaries (a word wider than the line breaks between characters), measured with
the fonts' real advances; when the blocks do not fit, the text shrinks (down to 60 %)
and, past a block's line budget, its last line ends with an ellipsis, so nothing is ever
cut off the page.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from bidi import get_base_level, get_display
from reportlab.graphics import renderPDF
from reportlab.graphics.barcode import code128
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import units
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import ShapedStr, TTFont, shapeStr
from reportlab.pdfgen import canvas

from gateway.models import Rma
from gateway.returns.i18n import LANGUAGES, translations

log = logging.getLogger(__name__)

mm: float = float(units.mm)  # points per millimetre

PAGE_W_MM = 100.0
PAGE_H_MM = 150.0
MARGIN_MM = 5.0
#: Code 128 quiet zone each side (ISO/IEC 15417 asks for at least 10 modules)
QUIET_MM = 5.0
#: narrowest and widest Code 128 module printed (0.19 mm: 7.5 mil, read by any scanner)
MIN_MODULE_MM = 0.19
MAX_MODULE_MM = 0.42
QR_MM = 28.0
RMA_BARS_MM = 16.0
TRACKING_BARS_MM = 13.0
MIN_SCALE = 0.6
TRACKING_MAX_CHARS = 48
CARRIER_MAX_CHARS = 64
ELLIPSIS = "\u2026"

FONT_DIR = Path("/usr/share/fonts/truetype")


@dataclass(frozen=True)
class FontFile:
    """A TrueType font the label embeds.

    ``name`` is its reportlab name, ``subfont`` the face in a collection (``.ttc``),
    ``package`` the Debian package that installs ``path``.
    """

    name: str
    path: Path
    package: str
    subfont: int = 0


DEJAVU_SANS = FontFile("RS-DejaVuSans", FONT_DIR / "dejavu/DejaVuSans.ttf", "fonts-dejavu-core")
DEJAVU_SANS_BOLD = FontFile(
    "RS-DejaVuSans-Bold", FONT_DIR / "dejavu/DejaVuSans-Bold.ttf", "fonts-dejavu-core"
)
FREE_SANS = FontFile("RS-FreeSans", FONT_DIR / "freefont/FreeSans.ttf", "fonts-freefont-ttf")
FREE_SANS_BOLD = FontFile(
    "RS-FreeSansBold", FONT_DIR / "freefont/FreeSansBold.ttf", "fonts-freefont-ttf"
)
FREE_SERIF = FontFile("RS-FreeSerif", FONT_DIR / "freefont/FreeSerif.ttf", "fonts-freefont-ttf")
WQY_ZEN_HEI = FontFile("RS-WenQuanYiZenHei", FONT_DIR / "wqy/wqy-zenhei.ttc", "fonts-wqy-zenhei")
#: fonts tried in order, regular and bold text: DejaVu Sans (Latin, Greek, Cyrillic,
#: Arabic, Hebrew, ...; Bitstream Vera licence), GNU FreeFont (Indic scripts, Thai,
#: Ethiopic, Urdu letters, ...; GPL-3 with the font embedding exception), WenQuanYi Zen
#: Hei (Chinese, Japanese kana, every Hangul syllable; GPL-2 with the embedding exception)
REGULAR_FONTS = (DEJAVU_SANS, FREE_SANS, FREE_SERIF, WQY_ZEN_HEI)
BOLD_FONTS = (DEJAVU_SANS_BOLD, FREE_SANS_BOLD, DEJAVU_SANS, FREE_SANS, FREE_SERIF, WQY_ZEN_HEI)


class LabelFontsMissing(RuntimeError):
    """A label font file is not installed (the message names the Debian package)."""


class LabelError(ValueError):
    """The label cannot be printed as asked (e.g. a tracking number Code 128 cannot hold)."""


_lock = threading.Lock()  # reportlab's font registry and shaping caches are process-global
_registered: dict[str, TTFont] = {}
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
#: zero-width joiners and variation selectors stay in the font of the character before
_JOINERS = frozenset("\u200c\u200d\u034f\ufe00\ufe01\ufe02\ufe03\ufe0e\ufe0f")


def _font(spec: FontFile) -> TTFont:
    font = _registered.get(spec.name)
    if font is None:
        if not spec.path.is_file():
            raise LabelFontsMissing(
                f"label font {spec.path} is missing: install the Debian package "
                f"{spec.package} (scripts/ensure-system-deps.sh does)"
            )
        font = TTFont(spec.name, str(spec.path), subfontIndex=spec.subfont)
        pdfmetrics.registerFont(font)
        _registered[spec.name] = font
    return font


def _attaches(ch: str) -> bool:
    """Whether ``ch`` belongs to the character before it (a mark or a joiner)."""
    return ch in _JOINERS or unicodedata.category(ch) in ("Mn", "Mc", "Me")


class FontChain:
    """Fonts tried in order for each character: per-character fallback by glyph coverage.

    A mark or joiner stays in its base character's font when that font has it. A
    character no font has is drawn in the first font (its .notdef box) and remembered
    in :attr:`missing`.
    """

    def __init__(self, files: Sequence[FontFile]) -> None:
        self.files = tuple(files)
        self.missing: set[str] = set()
        self._fonts: list[TTFont] | None = None

    @property
    def fonts(self) -> list[TTFont]:
        """The registered reportlab fonts, in order (loaded at first use).

        Raises:
            LabelFontsMissing: when a font file is not installed.
        """
        if self._fonts is None:
            self._fonts = [_font(spec) for spec in self.files]
        return self._fonts

    def path_of(self, font: TTFont) -> Path:
        """The file of one of this chain's fonts."""
        return self.files[self.fonts.index(font)].path

    def split(self, text: str) -> list[tuple[TTFont, str]]:
        """Cut ``text`` into runs of one font each: ``[(font, run), ...]`` in order.

        A word (a run without spaces) takes the first font that has every one of its
        characters; failing one, each character takes the first font that has it.
        """
        runs: list[tuple[TTFont, str]] = []
        for token in re.split(r"(\s+)", text):
            if not token:
                continue
            whole = next((f for f in self.fonts if self._covers(f, token)), None)
            for ch in token:
                font = whole or self._font_for(ch, runs[-1][0] if runs else None)
                if runs and runs[-1][0] is font:
                    runs[-1] = (font, runs[-1][1] + ch)
                else:
                    runs.append((font, ch))
        return runs

    @staticmethod
    def _covers(font: TTFont, text: str) -> bool:
        return all(ord(ch) in font.face.charToGlyph for ch in text)

    def _font_for(self, ch: str, previous: TTFont | None) -> TTFont:
        code = ord(ch)
        if previous is not None and _attaches(ch) and code in previous.face.charToGlyph:
            return previous
        font = next((f for f in self.fonts if code in f.face.charToGlyph), None)
        if font is None:
            self.missing.add(ch)
            return self.fonts[0]
        return font


@dataclass(frozen=True)
class TextRun:
    """A piece of text in one font on the page (points, origin bottom-left).

    ``text`` is the characters in logical order (what glyph coverage is checked on);
    ``glyphs`` is what is drawn: the same characters in visual order, shaped by
    HarfBuzz (a reportlab ``ShapedStr``) where the script needs it.
    """

    text: str
    glyphs: str
    font_name: str
    font_path: Path
    size_pt: float
    x_pt: float
    y_pt: float
    width_pt: float


@dataclass(frozen=True)
class BarcodeBox:
    """A barcode on the page: symbology (``code128`` / ``qr``), value and box (points)."""

    symbology: str
    value: str
    x_pt: float
    y_pt: float
    width_pt: float
    height_pt: float


@dataclass
class LabelLayout:
    """Everything a label draws, with positions: text runs, barcodes, rules.

    ``missing`` holds the characters no label font has (drawn as empty boxes).
    """

    width_pt: float
    height_pt: float
    title: str
    runs: list[TextRun] = field(default_factory=list)
    barcodes: list[BarcodeBox] = field(default_factory=list)
    rules: list[tuple[float, float, float]] = field(default_factory=list)
    missing: str = ""


@dataclass(frozen=True)
class _Piece:
    font: TTFont
    text: str
    glyphs: str
    width_pt: float


def _direction_segments(visual: str) -> Iterator[tuple[str, bool]]:
    """Cut a line in visual order into right-to-left words and the rest.

    A right-to-left word is a run of R / AL characters with their marks and joiners
    (which, reversed with their base, precede it in visual order).
    """
    kinds = [unicodedata.bidirectional(ch) for ch in visual]
    rtl = [kind in ("R", "AL") for kind in kinds]
    for i in range(len(visual) - 1, -1, -1):
        if kinds[i] in ("NSM", "BN") and i + 1 < len(visual):
            rtl[i] = rtl[i + 1]
    start = 0
    for i in range(1, len(visual) + 1):
        if i == len(visual) or rtl[i] != rtl[start]:
            yield visual[start:i], rtl[start]
            start = i


def _needs_shaping(text: str) -> bool:
    """Whether a left-to-right run needs HarfBuzz: marks or joiners, or a complex script.

    Complex: Hebrew to Mongolian (U+0590..U+1DFF: Indic scripts, Thai, Hangul jamo, ...).
    Latin, Greek, Cyrillic and CJK ideographs draw glyph by glyph as they are.
    """
    return any(_attaches(ch) or 0x0590 <= ord(ch) < 0x1E00 for ch in text)


def _shaped_width(glyphs: str, font: TTFont, size_pt: float) -> float:
    if isinstance(glyphs, ShapedStr):
        return float(sum(sd.x_advance for sd in glyphs.__shapeData__) * size_pt / 1000)
    return float(font.stringWidth(glyphs, size_pt))


def _pieces(line: str, chain: FontChain, size_pt: float, rtl_base: bool) -> list[_Piece]:
    """The line's pieces, left to right, each in one font, shaped where needed."""
    pieces: list[_Piece] = []
    visual = str(get_display(line, base_dir="R" if rtl_base else "L"))
    # bidi controls (LRM, RLE, ...) have done their work; joiners stay for shaping
    visual = "".join(ch for ch in visual if ch in _JOINERS or unicodedata.category(ch) != "Cf")
    for segment, rtl in _direction_segments(visual):
        if rtl:
            logical = segment[::-1]
            shaped = [
                (font, text, shapeStr(text, font.fontName, size_pt))
                for font, text in chain.split(logical)
            ]
            for font, text, glyphs in reversed(shaped):
                pieces.append(_Piece(font, text, glyphs, _shaped_width(glyphs, font, size_pt)))
            continue
        for font, text in chain.split(segment):
            glyphs = shapeStr(text, font.fontName, size_pt) if _needs_shaping(text) else text
            pieces.append(_Piece(font, text, glyphs, _shaped_width(glyphs, font, size_pt)))
    return pieces


def _width(line: str, chain: FontChain, size_pt: float) -> float:
    return sum(p.width_pt for p in _pieces(line, chain, size_pt, False))


def _longest_prefix(word: str, chain: FontChain, size_pt: float, width_pt: float) -> int:
    """Length of the longest prefix of ``word`` that fits (at least one character).

    Breaks fall between characters, never before a mark or joiner; widths grow with the
    prefix, so the break is found by bisection.
    """
    points = [i for i in range(1, len(word)) if not _attaches(word[i])] or [len(word)]
    lo, hi = 0, len(points) - 1  # points[lo] is the answer when nothing fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _width(word[: points[mid]], chain, size_pt) <= width_pt:
            lo = mid
        else:
            hi = mid - 1
    return points[lo]


class WrappedLine(NamedTuple):
    """One line of wrapped text and whether its paragraph reads right to left."""

    text: str
    rtl: bool


def wrap(text: str, chain: FontChain, size_pt: float, width_pt: float) -> list[WrappedLine]:
    """Break ``text`` into lines no wider than ``width_pt`` at ``size_pt``.

    Lines of ``text`` (newlines) are paragraphs, each with its own base direction (its
    first strong character, UAX #9 P2-P3); spaces are collapsed; a word wider than the
    line is broken between characters (never before a mark or joiner).
    """
    lines: list[WrappedLine] = []
    for paragraph in text.split("\n"):
        rtl = get_base_level(paragraph) == 1 if paragraph.strip() else False
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if _width(candidate, chain, size_pt) <= width_pt:
                current = candidate
                continue
            if current:
                lines.append(WrappedLine(current, rtl))
            while _width(word, chain, size_pt) > width_pt:
                cut = _longest_prefix(word, chain, size_pt, width_pt)
                lines.append(WrappedLine(word[:cut], rtl))
                word = word[cut:]
            current = word
        if current:
            lines.append(WrappedLine(current, rtl))
    return lines


def _ellipsize(line: str, chain: FontChain, size_pt: float, width_pt: float) -> str:
    while line and _width(line + ELLIPSIS, chain, size_pt) > width_pt:
        line = line[:-1]
    return line.rstrip() + ELLIPSIS


def clean_text(text: str) -> str:
    """``text`` with control characters (other than newlines) turned into spaces."""
    return _CONTROL.sub(" ", text.replace("\r\n", "\n"))


@dataclass(frozen=True)
class _Block:
    text: str
    chain: FontChain
    size_pt: float
    max_lines: int
    gap_after_pt: float = 0.0

    def lines(self, scale: float, width_pt: float) -> list[WrappedLine]:
        return wrap(self.text, self.chain, self.size_pt * scale, width_pt)


def _line_height(size_pt: float) -> float:
    return size_pt * 1.22


def _fit(
    blocks: Sequence[_Block], width_pt: float, height_pt: float
) -> tuple[float, list[list[WrappedLine]]]:
    """The largest scale (1.0 down to :data:`MIN_SCALE`) at which every block fits.

    Returns the scale and each block's lines; at the smallest scale a block longer than
    its line budget is cut to it, its last line ending with an ellipsis.
    """
    scale = 1.0
    while True:
        wrapped = [b.lines(scale, width_pt) for b in blocks]
        height = sum(
            len(lines) * _line_height(b.size_pt * scale) + b.gap_after_pt * scale
            for b, lines in zip(blocks, wrapped, strict=True)
        )
        budgets_ok = all(
            len(lines) <= b.max_lines for b, lines in zip(blocks, wrapped, strict=True)
        )
        if (height <= height_pt and budgets_ok) or scale <= MIN_SCALE + 1e-9:
            break
        scale = round(scale - 0.05, 2)
    for b, lines in zip(blocks, wrapped, strict=True):
        if len(lines) > b.max_lines:
            kept = lines[: b.max_lines]
            last = kept[-1]
            kept[-1] = last._replace(
                text=_ellipsize(last.text, b.chain, b.size_pt * scale, width_pt)
            )
            lines[:] = kept
    return scale, wrapped


def _place_line(
    layout: LabelLayout,
    line: str,
    chain: FontChain,
    size_pt: float,
    *,
    left_pt: float,
    width_pt: float,
    baseline_pt: float,
    rtl_base: bool,
) -> None:
    pieces = _pieces(line, chain, size_pt, rtl_base)
    total = sum(p.width_pt for p in pieces)
    x = left_pt + (width_pt - total if rtl_base else 0.0)
    for p in pieces:
        layout.runs.append(
            TextRun(
                text=p.text,
                glyphs=p.glyphs,
                font_name=p.font.fontName,
                font_path=chain.path_of(p.font),
                size_pt=size_pt,
                x_pt=x,
                y_pt=baseline_pt,
                width_pt=p.width_pt,
            )
        )
        x += p.width_pt


def _place_block(
    layout: LabelLayout,
    lines: Sequence[WrappedLine],
    block: _Block,
    scale: float,
    *,
    left_pt: float,
    width_pt: float,
    top_pt: float,
) -> float:
    """Place ``lines`` below ``top_pt``; return the y below the block (and its gap)."""
    size = block.size_pt * scale
    y = top_pt
    for line in lines:
        y -= _line_height(size)
        baseline = y + size * 0.26  # descender room inside the line box
        _place_line(
            layout,
            line.text,
            block.chain,
            size,
            left_pt=left_pt,
            width_pt=width_pt,
            baseline_pt=baseline,
            rtl_base=line.rtl,
        )
    return y - block.gap_after_pt * scale


def _one_line(
    text: str, chain: FontChain, size_pt: float, width_pt: float, min_size_pt: float = 6.0
) -> tuple[str, float]:
    """``text`` on one line: shrunk to fit (down to ``min_size_pt``), then ellipsized."""
    size = size_pt
    while _width(text, chain, size) > width_pt and size - 0.5 >= min_size_pt:
        size = round(size - 0.5, 2)
    if _width(text, chain, size) > width_pt:
        text = _ellipsize(text, chain, size, width_pt)
    return text, size


def _code128_module_pt(value: str, available_pt: float) -> float:
    modules = code128.Code128(value, barWidth=1, quiet=False).width
    module = min(MAX_MODULE_MM * mm, available_pt / modules)
    if module < MIN_MODULE_MM * mm:
        raise LabelError(f"{value!r} is too long to print as a readable Code 128 on this label")
    return float(module)


def check_tracking(carrier: str, tracking_number: str) -> tuple[str, str]:
    """Validate a carrier name and tracking number for the label; return them stripped.

    Raises:
        LabelError: an empty or over-long value, or a tracking number that is not
            printable ASCII (what Code 128 encodes), or too long for the label's width.
    """
    carrier = clean_text(carrier).strip()
    number = tracking_number.strip()
    if not number or len(number) > TRACKING_MAX_CHARS or not re.fullmatch(r"[\x21-\x7e]+", number):
        raise LabelError(
            f"tracking number must be 1..{TRACKING_MAX_CHARS} printable ASCII characters"
        )
    if len(carrier) > CARRIER_MAX_CHARS:
        raise LabelError(f"carrier name must be at most {CARRIER_MAX_CHARS} characters")
    _code128_module_pt(number, (PAGE_W_MM - 2 * MARGIN_MM - 2 * QUIET_MM) * mm)
    return carrier, number


def layout_label(
    rma: Rma,
    return_address: str,
    *,
    lang: str = "en",
    carrier: str = "",
    tracking_number: str | None = None,
) -> LabelLayout:
    """Lay out ``rma``'s return label: every text run and barcode with its position.

    Args:
        rma: the RMA (number, order reference, customer name and postal address).
        return_address: lines separated by newlines (or a literal ``\\n``).
        lang: caption language, one of :data:`gateway.returns.i18n.LANGUAGES`.
        carrier: the carrier's name, printed with the tracking barcode.
        tracking_number: the carrier's tracking number (printable ASCII, at most 48
            characters); with it the label carries its Code 128.

    Raises:
        KeyError: for a language without a catalogue.
        LabelError: a tracking number Code 128 cannot print here (see
            :func:`check_tracking`), or an RMA number too long for its barcode.
        LabelFontsMissing: a font file is not installed.
    """
    if lang not in LANGUAGES:
        raise KeyError(lang)
    _ = translations(lang).gettext
    width, height = PAGE_W_MM * mm, PAGE_H_MM * mm
    layout = LabelLayout(width, height, title=_("Return label %(number)s") % {"number": rma.number})
    regular, bold = FontChain(REGULAR_FONTS), FontChain(BOLD_FONTS)
    left, inner = MARGIN_MM * mm, (PAGE_W_MM - 2 * MARGIN_MM) * mm
    y = MARGIN_MM * mm

    if tracking_number is not None:
        carrier, number = check_tracking(carrier, tracking_number)
        y = _layout_tracking(layout, carrier, number, regular, bold, y, _)
    y = _layout_rma(layout, rma, regular, bold, y, _)

    y += 3 * mm
    layout.rules.append((left, y, left + inner))
    text_bottom = y + 2 * mm
    top = height - MARGIN_MM * mm
    sender = "\n".join(part for part in (rma.customer, rma.customer_address) if part.strip())
    blocks: list[_Block] = []
    if sender:
        blocks += [
            _Block(_("From"), regular, 7.0, 1),
            _Block(clean_text(rma.customer), bold, 10.0, 3),
            _Block(clean_text(rma.customer_address), regular, 9.0, 8, gap_after_pt=7.0),
        ]
    blocks += [
        _Block(_("Return to"), regular, 7.0, 1),
        _Block(clean_text(return_address.replace("\\n", "\n")), bold, 12.0, 8),
    ]
    blocks = [b for b in blocks if b.text.strip()]
    scale, wrapped = _fit(blocks, inner, top - text_bottom)
    for block, lines in zip(blocks, wrapped, strict=True):
        top = _place_block(layout, lines, block, scale, left_pt=left, width_pt=inner, top_pt=top)
    layout.missing = "".join(sorted(regular.missing | bold.missing))
    if layout.missing:
        log.warning(
            "label %s: no font has %d character(s): %s",
            rma.number,
            len(layout.missing),
            " ".join(f"U+{ord(ch):04X}" for ch in layout.missing),
        )
    return layout


def _layout_tracking(
    layout: LabelLayout,
    carrier: str,
    number: str,
    regular: FontChain,
    bold: FontChain,
    y: float,
    _: Callable[[str], str],
) -> float:
    """The carrier block at ``y`` (its bottom): caption, Code 128, number in text."""
    left, inner = MARGIN_MM * mm, (PAGE_W_MM - 2 * MARGIN_MM) * mm
    text, size = _one_line(number, regular, 8.0, inner)
    _place_line(
        layout, text, regular, size, left_pt=left, width_pt=inner, baseline_pt=y + 1, rtl_base=False
    )
    y += _line_height(8.0)
    module = _code128_module_pt(number, inner - 2 * QUIET_MM * mm)
    bars_w = code128.Code128(number, barWidth=module, quiet=False).width
    layout.barcodes.append(
        BarcodeBox("code128", number, left + (inner - bars_w) / 2, y, bars_w, TRACKING_BARS_MM * mm)
    )
    y += TRACKING_BARS_MM * mm + 1.5 * mm
    caption = _("Tracking number") + (f" \u00b7 {carrier}" if carrier else "")
    text, size = _one_line(caption, bold, 8.0, inner)
    _place_line(
        layout, text, bold, size, left_pt=left, width_pt=inner, baseline_pt=y + 1, rtl_base=False
    )
    y += _line_height(8.0) + 3 * mm
    layout.rules.append((left, y, left + inner))
    return y + 3 * mm


def _layout_rma(
    layout: LabelLayout,
    rma: Rma,
    regular: FontChain,
    bold: FontChain,
    y: float,
    _: Callable[[str], str],
) -> float:
    """The RMA block at ``y`` (its bottom): Code 128, then the number, order and QR."""
    left, inner = MARGIN_MM * mm, (PAGE_W_MM - 2 * MARGIN_MM) * mm
    module = _code128_module_pt(rma.number, inner - 2 * QUIET_MM * mm)
    bars_w = code128.Code128(rma.number, barWidth=module, quiet=False).width
    layout.barcodes.append(
        BarcodeBox("code128", rma.number, left + (inner - bars_w) / 2, y, bars_w, RMA_BARS_MM * mm)
    )
    y += RMA_BARS_MM * mm + 3 * mm
    qr = QR_MM * mm
    layout.barcodes.append(BarcodeBox("qr", rma.number, left + inner - qr, y, qr, qr))
    column = inner - qr - 3 * mm
    order_text, order_size = _one_line(
        _("Order %(order_ref)s") % {"order_ref": clean_text(rma.order_ref)}, regular, 9.0, column
    )
    _place_line(
        layout,
        order_text,
        regular,
        order_size,
        left_pt=left,
        width_pt=column,
        baseline_pt=y + 2 * mm,
        rtl_base=False,
    )
    number_text, number_size = _one_line(rma.number, bold, 20.0, column)
    _place_line(
        layout,
        number_text,
        bold,
        number_size,
        left_pt=left,
        width_pt=column,
        baseline_pt=y + 2 * mm + _line_height(9.0) + 2 * mm,
        rtl_base=False,
    )
    caption, size = _one_line(_("Return authorization"), regular, 7.0, column)
    _place_line(
        layout,
        caption,
        regular,
        size,
        left_pt=left,
        width_pt=column,
        baseline_pt=y + 2 * mm + _line_height(9.0) + 4 * mm + number_size,
        rtl_base=False,
    )
    return y + qr


def draw_label(layout: LabelLayout) -> bytes:
    """Draw a laid-out label; return the PDF bytes (fonts embedded as subsets)."""
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=(layout.width_pt, layout.height_pt))
    pdf.setTitle(layout.title)
    pdf.setAuthor("returns-sorter")
    for run in layout.runs:
        text = pdf.beginText(run.x_pt, run.y_pt)
        text.setFont(run.font_name, run.size_pt)
        text.textOut(run.glyphs)
        pdf.drawText(text)
    pdf.setLineWidth(0.6)
    for x0, y0, x1 in layout.rules:
        pdf.line(x0, y0, x1, y0)
    for box in layout.barcodes:
        if box.symbology == "code128":
            modules = code128.Code128(box.value, barWidth=1, quiet=False).width
            bars = code128.Code128(
                box.value, barWidth=box.width_pt / modules, barHeight=box.height_pt, quiet=False
            )
            bars.drawOn(pdf, box.x_pt, box.y_pt)
        else:
            qr = QrCodeWidget(box.value, barLevel="M")
            x0, y0, x1, y1 = qr.getBounds()
            drawing = Drawing(
                box.width_pt,
                box.height_pt,
                transform=[box.width_pt / (x1 - x0), 0, 0, box.height_pt / (y1 - y0), 0, 0],
            )
            drawing.add(qr)
            renderPDF.draw(drawing, pdf, box.x_pt, box.y_pt)
    pdf.showPage()
    pdf.save()
    return buf.getvalue()


def render_label(
    rma: Rma,
    return_address: str,
    *,
    lang: str = "en",
    carrier: str = "",
    tracking_number: str | None = None,
) -> bytes:
    """Return the PDF bytes of ``rma``'s return label (see :func:`layout_label`).

    Raises:
        KeyError: for a language without a catalogue.
        LabelError: a tracking number or RMA number its Code 128 cannot print here.
        LabelFontsMissing: a font file is not installed.
    """
    with _lock:
        return draw_label(
            layout_label(
                rma, return_address, lang=lang, carrier=carrier, tracking_number=tracking_number
            )
        )
