"""The code classifier: what one barcode read is (pure; station and gateway share it).

:func:`classify` (or a site's :class:`CodeClassifier`) names a read, given its data and
the AIM symbology identifier (ISO/IEC 15424: ``]`` + symbology letter + modifier) that
the reader sent in front of it or reported beside it. The identifier is metadata, never
part of the code. In this order, the first that applies decides:

1. **GS1 symbology** (``]C1`` GS1-128, ``]d2`` GS1 DataMatrix, ``]Q3`` GS1 QR, ``]e0``
   GS1 DataBar, ``]J1`` GS1 DotCode; ISO/IEC 15424 and GS1 General Specifications
   section 5.1.2) or a leading FNC1 (transmitted as GS, ``0x1D``): a GS1 element string,
   parsed with ``biip`` (:func:`parse_element_string`). An element string whose only
   key is AI 00 is an ``sscc`` (a logistic unit: SSCC-18); anything else is ``gs1``. Data
   that does not parse, or carries a GTIN / SSCC with a wrong check digit, is
   ``garbled``. A GS1 Digital Link URI (``https://.../01/<gtin>/...``, GS1 Digital Link
   standard 1.2) in a QR code is ``gs1`` too.
2. **Retail symbology** (``]E0`` EAN-13 / UPC-A / UPC-E, ``]E3`` EAN / UPC with add-on,
   ``]E4`` EAN-8, ``]I0`` / ``]I1`` ITF): a ``retail`` product code, its GS1 mod-10 check
   digit validated (``python-stdnum`` ``ean``), normalised to GTIN-14 (UPC-E expanded to
   UPC-A first, ``biip``); a wrong check digit is ``garbled``. A retail code is a product
   identifier (the right product, not a particular unit), never a return label.
3. A code that is a **known RMA number** (``known_rma``: the station's directory) is an
   ``rma_label``: a label the station knows is never reinterpreted by content.
4. **Our RMA number** (the gateway's shape: ``RS`` + 8 characters + one ISO/IEC 7064 MOD
   37,36 check character, :func:`rma_number_ok`): ``rma_label`` when the check character
   holds, else ``garbled`` (a misread of our label, not an unknown RMA).
5. With no symbology (or plain Code 128 ``]C0``, which a shop may print GS1 data in):
   **retail by content** (8, 12, 13 or 14 digits with a valid check digit, no symbology
   only), then **GS1 by content**: the data parses as an element string that starts with
   AI 01 with a valid GTIN, or is AI 00 with a valid SSCC (a shop's free-text number never
   parses that way).
6. **Carrier tracking numbers** (:class:`TrackingRule`): UPU S10 (``RB123456785GB``: two
   letters, 8 digits, a mod-11 check digit, the issuing country, UPU standard S10-12) and
   UPS ``1Z`` (``1Z`` + 15 characters + a mod-10 check digit over letters mapped to
   digits) built in; a site adds its carriers as data (pattern + check rule).
7. Otherwise ``unknown``.

The ``tracking-numbers`` PyPI library was evaluated and not used: its last release is
0.1.8 (November 2022), it has no way to add a site's rules, it answers None both for an
unknown number and for a wrong check digit, and its 12-digit FedEx rule claims most
12-digit numbers (``123456789012``), UPC-A product codes included.

A variable-length GS1 field (lot, serial, ...) must be ended by FNC1 / GS unless it is
last. When a variable-length field is followed by another element with no GS, or, in a
transmission with no GS at all, the last field holds a valid element string after its
first character (``10ABC12321SN0001``: a lot ``ABC123`` and a serial ``SN0001`` whose
separator a keyboard-wedge scanner dropped), the parse is **ambiguous**: everything from
that field on is unreliable, so it never yields a serial (an ambiguous serial never
verifies a unit).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from biip import ParseConfig, ParseError
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_messages import GS1Message
from biip.upc import Upc
from pydantic import BaseModel, Field, field_validator, model_validator
from stdnum import ean, luhn
from stdnum.exceptions import ValidationError as StdnumError
from stdnum.iso7064 import mod_37_36

from protocol.messages import WIRE_CONFIG, CodeClass, CodeRead

GS = "\x1d"
"""ASCII group separator: how a reader transmits FNC1 inside GS1 data."""

MAX_CODE_CHARS = 512
"""Longest read the classifier parses; a longer one is ``unknown`` without parsing."""

GS1_SYMBOLOGIES: dict[str, str] = {
    "]C1": "GS1-128",
    "]d2": "GS1 DataMatrix",
    "]Q3": "GS1 QR",
    "]e0": "GS1 DataBar",
    "]J1": "GS1 DotCode",
}
"""AIM identifiers of symbols that carry GS1 element strings (ISO/IEC 15424)."""

RETAIL_SYMBOLOGIES: dict[str, str] = {
    "]E0": "EAN/UPC",
    "]E3": "EAN/UPC with add-on",
    "]E4": "EAN-8",
    "]I0": "ITF",
    "]I1": "ITF",
}
"""AIM identifiers of retail product symbols (EAN / UPC family and ITF-14)."""

_CONTENT_SYMBOLOGIES = (None, "]C0")
"""Reads classified by content as GS1: no identifier, or plain Code 128."""

RMA_PREFIX = "RS"
RMA_BODY_LENGTH = 8
_RMA_SHAPE = re.compile(rf"^{RMA_PREFIX}[0-9A-Z]{{{RMA_BODY_LENGTH + 1}}}$")
_AIM = re.compile(r"^\][A-Za-z][0-9A-Za-z]")


class CodeError(ValueError):
    """Data that is not a valid code of the kind it claims to be (the message says why)."""


# -- RMA numbers ------------------------------------------------------------------------
def is_rma_number_shape(number: str) -> bool:
    """True when ``number`` has the gateway's shape (``RS`` + 9 of ``0-9A-Z``).

    A number of that shape must carry a valid check character (:func:`rma_number_ok`);
    numbers of other shapes (a shop's own numbering) have none to check.
    """
    return bool(_RMA_SHAPE.match(number))


def rma_number_ok(number: str) -> bool:
    """True when ``number`` has our shape and a valid check character.

    The check is ISO/IEC 7064 MOD 37,36 (``python-stdnum`` ``iso7064.mod_37_36``).
    """
    return is_rma_number_shape(number) and bool(mod_37_36.is_valid(number))


def rma_check_character(body: str) -> str:
    """The ISO/IEC 7064 MOD 37,36 check character of ``body`` (``RS`` + 8 characters)."""
    return str(mod_37_36.calc_check_digit(body))


# -- GS1 ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gs1Parse:
    """A parsed GS1 element string.

    Attributes:
        elements: ``(AI, value)`` pairs in order.
        element_string: the data with FNC1 as GS after each variable-length field that
            is not last (GS1 General Specifications 7.8.5.2).
        hri: human readable interpretation, ``(01)09501101020917(21)SN0001``.
        ambiguous: why the parse is ambiguous (module doc), or None.
        reliable: how many leading elements are certain (all unless ambiguous).
    """

    elements: tuple[tuple[str, str], ...]
    element_string: str
    hri: str
    ambiguous: str | None
    reliable: int
    message: GS1Message

    def _first(self, ai: str, reliable_only: bool = True) -> str | None:
        limit = self.reliable if reliable_only else len(self.elements)
        return next((v for a, v in self.elements[:limit] if a == ai), None)

    @property
    def gtin(self) -> str | None:
        """AI 01 (14 digits), when among the reliable elements."""
        return self._first("01")

    @property
    def serial(self) -> str | None:
        """AI 21, only from an unambiguous part: an ambiguous serial is never given."""
        return self._first("21")

    @property
    def lot(self) -> str | None:
        """AI 10, when reliable."""
        return self._first("10")

    @property
    def sscc(self) -> str | None:
        """AI 00 (SSCC-18), when reliable."""
        return self._first("00")

    @cached_property
    def expiry(self) -> dt.date | None:
        """AI 17 as a date (day 00 is the month's last day, GS1 General Specifications)."""
        for es in self.message.element_strings[: self.reliable]:
            if es.ai.ai == "17":
                return es.date
        return None


def _ambiguity(message: GS1Message, data: str, separators_seen: bool) -> tuple[str | None, int]:
    """(why the parse is ambiguous, number of reliable leading elements)."""
    elements = message.element_strings
    pos = 0
    for i, es in enumerate(elements):
        while pos < len(data) and data[pos] == GS:
            pos += 1
        pos += len(es.ai.ai) + len(es.value)
        if not es.ai.separator_required:
            continue
        last = i == len(elements) - 1
        if not last:
            if pos < len(data) and data[pos] == GS:
                continue
            why = f"({es.ai.ai}) is not ended by GS before ({elements[i + 1].ai.ai})"
            return why, i
        if separators_seen:
            continue
        swallowed = _embedded_ais(es.value)
        if swallowed:
            named = ", ".join(f"({ai})" for ai in swallowed[:3])
            return f"({es.ai.ai}) may have swallowed {named}: no GS separator was read", i
    return None, len(elements)


def _embedded_ais(value: str) -> list[str]:
    """AIs of the valid element strings ``value`` holds after its first character.

    The likeliest first: any other AI before the catch-all internal AIs 90-99.
    """
    found: list[str] = []
    for k in range(1, len(value)):
        try:
            inner = GS1Message.parse(value[k:])
        except ParseError:
            continue
        if all(e.gtin_error is None and e.sscc_error is None for e in inner.element_strings):
            found.append(inner.element_strings[0].ai.ai)
    return sorted(dict.fromkeys(found), key=lambda ai: (ai[:1] == "9", found.index(ai)))


def _element_string(message: GS1Message) -> str:
    parts: list[str] = []
    for i, es in enumerate(message.element_strings):
        parts.append(es.ai.ai + es.value)
        if es.ai.separator_required and i < len(message.element_strings) - 1:
            parts.append(GS)
    return "".join(parts)


def _check_digits(message: GS1Message) -> None:
    for es in message.element_strings:
        error = es.gtin_error or es.sscc_error
        if error:
            raise CodeError(f"({es.ai.ai}) {error}")


def parse_element_string(
    data: str, *, separator_chars: Sequence[str] = (GS,), hri: bool = False
) -> Gs1Parse:
    """Parse a GS1 element string (no AIM prefix; FNC1 as any of ``separator_chars``).

    ``hri``: ``data`` is the human readable form ``(01)...(10)...`` instead. Dates are
    checked (an impossible date is an error), as are the check digits of GTINs (AI 01,
    02) and SSCCs (AI 00), per the GS1 General Specifications; ``biip`` does the parsing.

    Raises:
        CodeError: when the data is not a valid element string (the message says why).
    """
    config = ParseConfig(separator_chars=list(dict.fromkeys((GS, *separator_chars))))
    text = data
    for sep in separator_chars:
        text = text.replace(sep, GS)
    try:
        message = (
            GS1Message.parse_hri(data, config=config)
            if hri
            else GS1Message.parse(text, config=config)
        )
    except ParseError as exc:
        raise CodeError(f"not a GS1 element string: {exc}") from exc
    _check_digits(message)
    ambiguous, reliable = (None, len(message.element_strings))
    if not hri:
        ambiguous, reliable = _ambiguity(message, text.lstrip(GS), GS in text.lstrip(GS))
    return Gs1Parse(
        elements=tuple((es.ai.ai, es.value) for es in message.element_strings),
        element_string=_element_string(message),
        hri=message.as_hri(),
        ambiguous=ambiguous,
        reliable=reliable,
        message=message,
    )


def parse_digital_link(uri: str) -> Gs1Parse:
    """Parse a GS1 Digital Link URI (``https://id.example/01/<gtin>/21/<serial>``).

    Raises:
        CodeError: when it is not a valid GS1 Digital Link URI with valid check digits.
    """
    try:
        message = GS1DigitalLinkURI.parse(uri).as_gs1_message()
    except (ParseError, ValueError) as exc:
        raise CodeError(f"not a GS1 Digital Link URI: {exc}") from exc
    _check_digits(message)
    return Gs1Parse(
        elements=tuple((es.ai.ai, es.value) for es in message.element_strings),
        element_string=_element_string(message),
        hri=message.as_hri(),
        ambiguous=None,
        reliable=len(message.element_strings),
        message=message,
    )


# -- retail codes -------------------------------------------------------------------------
def retail_gtin14(digits: str, symbology: str | None = None) -> tuple[str, str]:
    """(GTIN-14, what it was) of a retail code: EAN-13, UPC-A, UPC-E, EAN-8 or ITF-14.

    Eight digits are EAN-8, except under ``]E0`` (readers send UPC-E there, ISO/IEC 15424
    and zxing-cpp) or, without a symbology, when they fail as EAN-8 but hold as UPC-E:
    UPC-E is expanded to its UPC-A first (``biip``). ``]E3`` data is the
    13-digit code followed by a 2- or 5-digit add-on (the add-on is dropped). The check
    digit is the GS1 mod-10 one (``python-stdnum`` ``ean``, GS1 General Specifications
    7.9.1).

    Raises:
        CodeError: not 8, 12, 13 or 14 digits, or a wrong check digit.
    """
    if symbology == "]E3" and len(digits) in (15, 18):
        digits = digits[:13]
    if not digits.isdigit():
        raise CodeError(f"retail code {digits!r} is not all digits")
    kind = {8: "EAN-8", 12: "UPC-A", 13: "EAN-13", 14: "ITF-14"}.get(len(digits))
    if kind is None:
        raise CodeError(f"retail code {digits!r} is not 8, 12, 13 or 14 digits")
    if len(digits) == 8 and symbology == "]E0":
        return _upc_e(digits)
    try:
        ean.validate(digits)
    except StdnumError as exc:
        if len(digits) == 8 and symbology is None and digits[0] in "01":
            return _upc_e(digits)  # not a valid EAN-8: perhaps a UPC-E
        raise CodeError(f"{kind} {digits!r} fails its check digit") from exc
    return digits.zfill(14), kind


def _upc_e(digits: str) -> tuple[str, str]:
    try:
        return Upc.parse(digits).as_gtin_14(), "UPC-E"
    except ParseError as exc:
        raise CodeError(f"UPC-E {digits!r}: {exc}") from exc


# -- carrier tracking numbers ----------------------------------------------------------------
CheckRule = Literal["s10", "ups_1z", "gs1_mod10", "luhn", "mod7", "none"]


def s10_check_digit(serial8: str) -> int:
    """UPU S10 check digit of the 8-digit serial number.

    Weights 8 6 4 2 3 5 9 7, sum mod 11; the check digit is 11 - remainder, where 10
    gives 0 and 11 gives 5 (UPU standard S10-12, section 5.2).
    """
    total = sum(int(d) * w for d, w in zip(serial8, (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check)


def ups_check_digit(body15: str) -> int:
    """UPS ``1Z`` check digit of the 15 characters after ``1Z``.

    Letters map to ``(ord(c) - 63) % 10`` (A=2 ... I=0, J=1, ...), values in even
    positions (2nd, 4th, ...) count double, and the check digit brings the sum to a
    multiple of 10 (UPS's published 1Z tracking number check).
    """
    total = 0
    for i, c in enumerate(body15):
        value = int(c) if c.isdigit() else (ord(c) - 63) % 10
        total += value * (2 if i % 2 else 1)
    return (10 - total % 10) % 10


def _check_passes(rule: CheckRule, body: str, check: str) -> bool:
    if rule == "none":
        return True
    if not check.isdigit():
        return False
    digit = int(check)
    if rule == "s10":
        return len(body) == 8 and body.isdigit() and s10_check_digit(body) == digit
    if rule == "ups_1z":
        return len(body) == 15 and body.isalnum() and ups_check_digit(body) == digit
    if not body.isdigit():
        return False
    if rule == "gs1_mod10":
        return ean.calc_check_digit(body) == check
    if rule == "luhn":
        return bool(luhn.is_valid(body + check))
    return int(body) % 7 == digit  # mod7


class TrackingRule(BaseModel):
    """One carrier's tracking number format: data a site can add to (station config).

    ``pattern`` is a regular expression the whole read must match, with named groups
    ``body`` (the characters the check covers) and ``check`` (the check digit) unless
    ``check`` is ``none``. ``check``: ``s10`` (UPU S10 mod 11), ``ups_1z`` (UPS), ``gs1_mod10``
    (weights 3-1 from the right), ``luhn``, ``mod7`` (body mod 7), ``none``. A read that
    matches the pattern but fails the check is ``garbled`` (a misread of that carrier's
    number), so a site's pattern should be as tight as the carrier's format.

    Raises:
        ValueError: an invalid pattern, or one without the groups its check needs.
    """

    model_config = WIRE_CONFIG

    carrier: str = Field(min_length=1, max_length=32)
    pattern: str = Field(min_length=1, max_length=200)
    check: CheckRule = "none"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"pattern {v!r} is not a regular expression: {exc}") from exc
        return v

    @model_validator(mode="after")
    def _groups(self) -> TrackingRule:
        groups = re.compile(self.pattern).groupindex
        if self.check != "none" and not {"body", "check"} <= set(groups):
            raise ValueError(f"pattern of {self.carrier!r} needs groups 'body' and 'check'")
        return self

    def match(self, value: str) -> bool | None:
        """Whether ``value`` is this carrier's.

        True: its pattern with a valid check; False: its pattern, wrong check; None: not
        its pattern.
        """
        m = re.fullmatch(self.pattern, value)
        if m is None:
            return None
        if self.check == "none":
            return True
        return _check_passes(self.check, m.group("body"), m.group("check"))


BUILTIN_TRACKING: tuple[TrackingRule, ...] = (
    TrackingRule(
        carrier="UPU S10",
        pattern=r"[A-Z]{2}(?P<body>\d{8})(?P<check>\d)[A-Z]{2}",
        check="s10",
    ),
    TrackingRule(carrier="UPS", pattern=r"1Z(?P<body>[0-9A-Z]{15})(?P<check>\d)", check="ups_1z"),
)
"""Carriers every station knows: UPU S10 (international postal items) and UPS 1Z."""


# -- classification -----------------------------------------------------------------------
@dataclass(frozen=True)
class Classified:
    """What one read is.

    Attributes:
        code_class: the class (:class:`~protocol.messages.CodeClass`).
        value: normalised text: the RMA number, HRI of a GS1 string, GTIN-14 of a retail
            code, SSCC-18, the tracking number; the data as read (cut to 128 characters)
            for ``garbled`` / ``unknown``.
        symbology: the AIM identifier, if any.
        detail: what the classifier adds (symbology name, carrier, why garbled or
            ambiguous), at most 128 characters.
        gtin: GTIN-14 of a product (GS1 AI 01 or a retail code), when certain.
        serial: GS1 AI 21, only from an unambiguous element string.
        lot / expiry: GS1 AI 10 / AI 17, when certain.
        ambiguous: why a GS1 parse is ambiguous (its serial is withheld), or None.
        carrier: the carrier of a tracking number.
    """

    code_class: CodeClass
    value: str
    symbology: str | None = None
    detail: str | None = None
    gtin: str | None = None
    serial: str | None = None
    lot: str | None = None
    expiry: dt.date | None = None
    ambiguous: str | None = None
    carrier: str | None = None

    def code_read(self, source: Literal["scanner", "camera", "rfid"] = "scanner") -> CodeRead:
        """The read as the event's :class:`~protocol.messages.CodeRead`."""
        return CodeRead(
            code_class=self.code_class, value=self.value, source=source, detail=self.detail
        )

    @property
    def is_item(self) -> bool:
        """True when the read names a product or a unit (GS1 with GTIN/serial, retail)."""
        return self.gtin is not None or self.serial is not None


def split_aim(code: str, symbology: str | None = None) -> tuple[str | None, str]:
    """Split an AIM symbology identifier (``]`` + 2 characters) off the start of ``code``.

    Returns ``(symbology, data)``; a ``symbology`` the reader's driver reported wins.
    """
    if _AIM.match(code):
        return symbology or code[:3], code[3:]
    return symbology, code


def _cut(text: str, limit: int = 128) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _gs1(parsed: Gs1Parse, sym: str | None, how: str) -> Classified:
    only_sscc = parsed.sscc is not None and len(parsed.elements) == 1
    notes = [how]
    if parsed.ambiguous:
        notes.append(f"ambiguous: {parsed.ambiguous}")
    return Classified(
        CodeClass.SSCC if only_sscc else CodeClass.GS1,
        parsed.sscc if only_sscc and parsed.sscc else _cut(parsed.hri),
        sym,
        _cut("; ".join(notes)),
        gtin=parsed.gtin,
        serial=parsed.serial,
        lot=parsed.lot,
        expiry=parsed.expiry,
        ambiguous=parsed.ambiguous,
    )


def _garbled(data: str, sym: str | None, why: str) -> Classified:
    return Classified(CodeClass.GARBLED, _cut(data) or "?", sym, _cut(why))


def _is_digital_link(data: str) -> bool:
    return data.startswith(("http://", "https://", "HTTP://", "HTTPS://")) and "/" in data[8:]


class CodeClassifier:
    """Classifies reads (module doc) with a site's tracking rules and GS1 separators.

    Args:
        tracking: carrier rules tried in order after the built-in ones
            (:data:`BUILTIN_TRACKING` first unless ``builtin_tracking`` is False).
        separator_chars: characters a site's scanners send for FNC1 (default GS only).
    """

    def __init__(
        self,
        tracking: Sequence[TrackingRule] = (),
        *,
        builtin_tracking: bool = True,
        separator_chars: Sequence[str] = (GS,),
    ) -> None:
        self.tracking = (*(BUILTIN_TRACKING if builtin_tracking else ()), *tracking)
        self.separator_chars = tuple(separator_chars)

    def classify(
        self,
        code: str,
        symbology: str | None = None,
        known_rma: Callable[[str], bool] | None = None,
    ) -> Classified:
        """Name what ``code`` is (the rules in the module doc); never raises.

        ``symbology``: the AIM identifier the reader reported, when it is not in front of
        the data; ``known_rma``: True for an RMA number the station knows (rule 3).
        """
        sym, data = split_aim(code.rstrip("\r\n"), symbology)
        if not data.strip(GS):
            return Classified(CodeClass.UNKNOWN, "?", sym, "empty read")
        if len(data) > MAX_CODE_CHARS:
            return Classified(CodeClass.UNKNOWN, _cut(data), sym, "too long to be a code")
        leading_fnc1 = data[0] in self.separator_chars
        if sym in GS1_SYMBOLOGIES or leading_fnc1:
            name = GS1_SYMBOLOGIES.get(sym or "", "FNC1 first")
            try:
                if sym == "]Q3" and _is_digital_link(data):
                    return _gs1(parse_digital_link(data), sym, f"{name} Digital Link")
                parsed = parse_element_string(data, separator_chars=self.separator_chars)
            except CodeError as exc:
                return _garbled(data, sym, f"{name}: {exc}")
            return _gs1(parsed, sym, name)
        if sym in RETAIL_SYMBOLOGIES:
            try:
                gtin, kind = retail_gtin14(data, sym)
            except CodeError as exc:
                return _garbled(data, sym, str(exc))
            return Classified(CodeClass.RETAIL, gtin, sym, kind, gtin=gtin)
        if known_rma is not None and known_rma(data):
            return Classified(CodeClass.RMA_LABEL, data, sym, "known RMA")
        if is_rma_number_shape(data):
            if rma_number_ok(data):
                return Classified(CodeClass.RMA_LABEL, data, sym, "RMA number")
            return _garbled(data, sym, "RMA number fails its check character (ISO 7064 MOD 37,36)")
        content = self._by_content(data, sym)
        if content is not None:
            return content
        for rule in self.tracking:
            verdict = rule.match(data)
            if verdict is True:
                return Classified(
                    CodeClass.TRACKING, data, sym, f"carrier {rule.carrier}", carrier=rule.carrier
                )
            if verdict is False:
                return _garbled(data, sym, f"{rule.carrier} tracking number fails its check")
        return Classified(CodeClass.UNKNOWN, _cut(data), sym)

    def _by_content(self, data: str, sym: str | None) -> Classified | None:
        if sym is None and data.isdigit() and len(data) in (8, 12, 13, 14):
            try:
                gtin, kind = retail_gtin14(data)
            except CodeError:
                pass
            else:
                return Classified(CodeClass.RETAIL, gtin, sym, f"{kind} by content", gtin=gtin)
        if sym in _CONTENT_SYMBOLOGIES and data.startswith(("01", "00")):
            try:
                parsed = parse_element_string(data, separator_chars=self.separator_chars)
            except CodeError:
                return None
            head = parsed.elements[0][0]
            if head == "01" or (head == "00" and len(parsed.elements) == 1):
                return _gs1(parsed, sym, "GS1 by content")
        if sym in (None, "]Q1") and _is_digital_link(data):
            try:
                return _gs1(parse_digital_link(data), sym, "GS1 Digital Link")
            except CodeError:
                return None
        return None


DEFAULT_CLASSIFIER = CodeClassifier()
"""The classifier with the built-in carriers and GS as the only FNC1 separator."""


def classify(
    code: str, symbology: str | None = None, known_rma: Callable[[str], bool] | None = None
) -> Classified:
    """Classify ``code`` with :data:`DEFAULT_CLASSIFIER` (see :meth:`CodeClassifier.classify`)."""
    return DEFAULT_CLASSIFIER.classify(code, symbology, known_rma)


def classify_uid(uid: str) -> Classified:
    """An RFID UID already in canonical form (``protocol.messages.canonical_uid``) as a read."""
    return Classified(CodeClass.TAG, uid, None, None)
