"""Identification: what the reads of one tracking window say about the item.

Barcodes are either an RMA label (Code 128 carrying the RMA number) or a GS1 element
string (GS1-128, GS1 DataMatrix / QR / DataBar) carrying GTIN, serial, lot and expiry,
parsed with ``biip``. An AIM symbology identifier (``]C1``) is metadata, never part of
the code. RFID UIDs are compared in canonical form (``protocol.messages.canonical_uid``).

:func:`identify` turns the distinct reads of a window into an :class:`IdentityResult`:
which RMA, which of its lines, and whether the item agrees with the line (``matched``),
contradicts it (``wrong_item``), lacks the tag the line requires (``rfid_timeout``), or
whether the reads disagree with each other (``conflicting_reads``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from biip import ParseError
from biip.gs1_messages import GS1Message

from edge.sorter.model import (
    IdentifierDirectory,
    Identity,
    RmaDirectory,
    RmaLineRecord,
    RmaRecord,
)

GS1_SYMBOLOGIES = frozenset({"]C1", "]d2", "]Q3", "]e0", "]J1"})
"""AIM identifiers of symbols that carry GS1 element strings (GS1-128, GS1 DataMatrix,
GS1 QR, GS1 DataBar, GS1 DotCode)."""

_GS = "\x1d"


@dataclass(frozen=True)
class Gs1Item:
    """Item identifiers from a GS1 element string (``None`` where the AI is absent).

    Attributes:
        gtin: AI 01, 14 digits.
        serial: AI 21.
        lot: AI 10.
        expiry: AI 17, the expiry date.
        symbology: the AIM identifier it was read with, or None.
    """

    gtin: str | None
    serial: str | None
    lot: str | None
    expiry: dt.date | None
    symbology: str | None = None


def split_aim(code: str, symbology: str | None = None) -> tuple[str | None, str]:
    """Split an AIM symbology identifier (``]`` + 2 chars) off ``code``.

    Returns ``(symbology, data)``; a ``symbology`` given by the scanner driver wins.
    """
    if len(code) >= 3 and code[0] == "]":
        return symbology or code[:3], code[3:]
    return symbology, code


def gtin_check_digit_ok(gtin: str) -> bool:
    """True when ``gtin`` is 8, 12, 13 or 14 digits with a valid GS1 mod-10 check digit."""
    if len(gtin) not in (8, 12, 13, 14) or not gtin.isdigit():
        return False
    body = [int(c) for c in reversed(gtin[:-1])]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(body))
    return (10 - total % 10) % 10 == int(gtin[-1])


def looks_like_gs1(data: str) -> bool:
    """True when ``data`` (no AIM prefix) is, by content alone, a GS1 element string.

    Content rule, used when neither the symbology nor a leading FNC1 says GS1: the data
    parses as a GS1 element string with ``biip`` *and* starts with AI 01, a GTIN whose
    check digit is valid. An RMA number (``RMA-000123``, free text) never parses; a
    purely numeric or AI-like one (``21SN0001``, ``10ABC``) is not taken as GS1 unless it
    carries a valid GTIN, which makes an accidental match practically impossible.
    """
    data = data.strip(_GS).rstrip("\r\n")
    if not data.startswith("01"):
        return False
    try:
        message = GS1Message.parse(data)
    except ParseError:
        return False
    gtin = message.element_strings.get(ai="01")
    return gtin is not None and gtin_check_digit_ok(gtin.value)


def is_gs1(code: str, symbology: str | None = None, rmas: RmaDirectory | None = None) -> bool:
    """True when ``code`` is a GS1 element string rather than an RMA label.

    The AIM prefix is metadata (field case C4): a scanner may send a GS1-128 scan without
    ``]C1``, or a GS1 element string may be printed in plain Code 128 without FNC1
    (``]C0``). So, in order:

    1. a GS1 symbology (:data:`GS1_SYMBOLOGIES`) or a leading FNC1 (GS) is GS1;
    2. otherwise a code that is a known RMA number in ``rmas`` is an RMA label (the
       directory lookup wins: a label the station knows is never reinterpreted);
    3. otherwise it is GS1 when its content is (:func:`looks_like_gs1`).
    """
    sym, data = split_aim(code, symbology)
    if sym in GS1_SYMBOLOGIES or data.startswith(_GS):
        return True
    if rmas is not None and rmas.lookup_rma(data) is not None:
        return False
    return looks_like_gs1(data)


def parse_gs1(code: str, symbology: str | None = None) -> Gs1Item:
    """Parse a GS1 element string (with or without AIM prefix, GS as separator).

    Raises:
        ValueError: when the data is not a valid GS1 element string.
    """
    sym, data = split_aim(code, symbology)
    data = data.strip(_GS).rstrip("\r\n")
    try:
        message = GS1Message.parse(data)
    except ParseError as exc:
        raise ValueError(f"not a GS1 element string: {exc}") from exc
    gtin = message.element_strings.get(ai="01")
    serial = message.element_strings.get(ai="21")
    lot = message.element_strings.get(ai="10")
    expiry = message.element_strings.get(ai="17")
    return Gs1Item(
        gtin=gtin.value if gtin else None,
        serial=serial.value if serial else None,
        lot=lot.value if lot else None,
        expiry=expiry.date if expiry else None,
        symbology=sym,
    )


def gtin14(gtin: str) -> str:
    """A GTIN-8/12/13/14 as 14 digits (left zero-padded), for comparison."""
    return gtin.zfill(14)


@dataclass(frozen=True)
class WindowReads:
    """The distinct reads of one parcel's tracking window.

    Attributes:
        labels: RMA numbers from label barcodes, first seen first.
        uids: canonical RFID UIDs.
        items: GS1 item identifiers.
        ambiguous: reads that another parcel could own as well (too close together).
    """

    labels: tuple[str, ...] = ()
    uids: tuple[str, ...] = ()
    items: tuple[Gs1Item, ...] = ()
    ambiguous: int = 0

    @property
    def empty(self) -> bool:
        """True when nothing was read."""
        return not (self.labels or self.uids or self.items)


@dataclass(frozen=True)
class IdentityResult:
    """Outcome of identification.

    Attributes:
        identity: the verdict.
        rma: the RMA identified (also for ``wrong_item`` / ``rfid_timeout``), or None.
        lines: indexes of the RMA lines the item matches (for ``matched``).
        detail: a short human explanation.
    """

    identity: Identity
    rma: RmaRecord | None
    lines: tuple[int, ...]
    detail: str


def _line_verdict(line: RmaLineRecord, reads: WindowReads) -> str:
    """``ok``, ``contradicts`` or ``missing_tag`` for one line."""
    uid = reads.uids[0] if reads.uids else None
    item = reads.items[0] if reads.items else None
    if line.rfid_uid is not None and uid is not None and uid != line.rfid_uid:
        return "contradicts"
    if item is not None:
        if line.gtin and item.gtin and gtin14(item.gtin) != gtin14(line.gtin):
            return "contradicts"
        if line.serial and item.serial and item.serial != line.serial:
            return "contradicts"
    if line.rfid_uid is not None and uid is None:
        return "missing_tag"
    return "ok"


def _by_identifier(rmas: RmaDirectory, kind: str, values: Sequence[str]) -> tuple[str, ...]:
    if not values or not isinstance(rmas, IdentifierDirectory):
        return ()
    found: dict[str, None] = {}
    for value in values:
        found.update(dict.fromkeys(rmas.find_rmas(kind, value)))
    return tuple(found)


def identify(reads: WindowReads, rmas: RmaDirectory) -> IdentityResult:
    """Identify the item of one tracking window against the station's RMA directory.

    Rules, in order: a read another parcel could own is ``conflicting_reads``; nothing
    read is ``no_read``; two different labels, tags, GTINs or
    serials, or a tag / serial that names another RMA than the label, is
    ``conflicting_reads``; no RMA found is ``unknown_rma``; an item identifier that
    contradicts every line is ``wrong_item``; a line that declares a tag UID with no tag
    read is ``rfid_timeout``; otherwise ``matched``.
    """
    if reads.ambiguous:
        detail = f"{reads.ambiguous} read(s) could belong to a neighbouring parcel"
        return IdentityResult(Identity.CONFLICTING, None, (), detail)
    if reads.empty:
        return IdentityResult(Identity.NO_READ, None, (), "nothing read")
    if len(reads.labels) > 1:
        return IdentityResult(
            Identity.CONFLICTING, None, (), f"labels {', '.join(reads.labels)} in one window"
        )
    if len(reads.uids) > 1:
        return IdentityResult(
            Identity.CONFLICTING, None, (), f"tags {', '.join(reads.uids)} in one window"
        )
    gtins = {gtin14(i.gtin) for i in reads.items if i.gtin}
    serials = {i.serial for i in reads.items if i.serial}
    if len(gtins) > 1 or len(serials) > 1:
        return IdentityResult(Identity.CONFLICTING, None, (), "two item barcodes in one window")
    by_tag = _by_identifier(rmas, "rfid_uid", reads.uids)
    by_serial = _by_identifier(rmas, "serial", sorted(serials))
    if reads.labels:
        number = reads.labels[0]
        for source, named in (("tag", by_tag), ("serial", by_serial)):
            if named and number not in named:
                return IdentityResult(
                    Identity.CONFLICTING,
                    None,
                    (),
                    f"label names {number}, {source} names {', '.join(named)}",
                )
    else:
        named = tuple(dict.fromkeys(by_tag + by_serial))
        if len(named) > 1:
            return IdentityResult(
                Identity.CONFLICTING, None, (), f"identifiers name {', '.join(named)}"
            )
        if not named:
            return IdentityResult(
                Identity.UNKNOWN_RMA, None, (), "no RMA label, item not on any RMA"
            )
        number = named[0]
    rma = rmas.lookup_rma(number)
    if rma is None:
        return IdentityResult(Identity.UNKNOWN_RMA, None, (), f"{number} is not known here")
    verdicts = [_line_verdict(line, reads) for line in rma.lines]
    ok = tuple(i for i, v in enumerate(verdicts) if v == "ok")
    if ok:
        return IdentityResult(Identity.MATCHED, rma, ok, f"item matches {number}")
    if "missing_tag" in verdicts:
        return IdentityResult(Identity.RFID_TIMEOUT, rma, (), f"{number} needs its tag read")
    if not rma.lines:
        return IdentityResult(Identity.WRONG_ITEM, rma, (), f"{number} has no lines")
    return IdentityResult(Identity.WRONG_ITEM, rma, (), f"item does not match {number}")
