"""Identification: what the reads of one tracking window say about the item.

Every barcode read is named by the one code classifier (:mod:`protocol.codes`): our RMA
label, a GS1 element string (GTIN, serial, lot, expiry), a retail product code (EAN /
UPC / ITF-14 as GTIN-14), an SSCC or a carrier's tracking number, a garbled read, or
unknown. An AIM symbology identifier (``]C1``) is metadata, never part of the code. RFID
UIDs are compared in canonical form (``protocol.messages.canonical_uid``).

:func:`identify` turns the distinct reads of a window into an :class:`IdentityResult`:
which RMA, and for each of its lines the item evidence the parcel showed
(:class:`LineEvidence`), or why it cannot say (``ambiguous_read``, ``conflicting_reads``,
``no_read``, ``garbled_read``, ``unknown_rma``, ``wrong_item``).

Evidence rules (strongest first, ``protocol.messages.EVIDENCE_ORDER``):

- **serial**: a serial (GS1 AI 21 of an unambiguous element string) equal to the line's;
- **tag**: the tag UID the line declares;
- **gtin**: a GTIN-14 (GS1 AI 01 or a retail code) equal to the line's: it *verifies* a
  line that declares no serial and no tag; for one that does, it is evidence of the
  right product but the unit stays unverified;
- **label**: the RMA's label only (given by the core to the units it claims by label).

A line that declares a serial or a tag is verified only by that identifier: its absence
leaves the unit unverified (never "matched by absence"), a different one read for the
line's product is ``wrong_item``. An identifier read that no line of the RMA declares,
of a kind some line declares (a foreign tag, a product or serial not on the RMA), is
``wrong_item`` too: the parcel holds something the RMA does not cover. A GTIN read
verifies one line only, however many lines share the GTIN (the first one); one read
identifier never verifies another line's unit. Retail codes, SSCCs and tracking numbers
beside the label are never second labels.

A **carrier tracking number** the station's directory knows (the RMA's announcement
carries it) names its RMA like the label does, and like the label it verifies no unit:
it claims the outstanding units with ``label`` evidence (unverified), so strict
verification still wants an item identifier. A label and a tracking number naming the
same RMA are one identity; naming two RMAs, ``conflicting_reads``. A tracking number no
RMA has names nothing (as before: ``no_read`` when it is all there was).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from edge.sorter.model import (
    IdentifierDirectory,
    Identity,
    RmaDirectory,
    RmaRecord,
)
from protocol.codes import GS1_SYMBOLOGIES, Classified, classify
from protocol.codes import split_aim as _split_aim
from protocol.messages import EVIDENCE_ORDER, CodeClass, Evidence

__all__ = [
    "GS1_SYMBOLOGIES",
    "Gs1Item",
    "IdentityResult",
    "LineEvidence",
    "WindowReads",
    "gtin14",
    "identify",
    "is_gs1",
    "item_of",
    "parse_gs1",
    "split_aim",
]


@dataclass(frozen=True)
class Gs1Item:
    """Item identifiers of one product read (``None`` where absent).

    From a GS1 element string or a retail code (:class:`protocol.codes.Classified`).

    Attributes:
        gtin: GTIN-14 (AI 01, or the retail code normalised).
        serial: AI 21, only from an unambiguous element string.
        lot: AI 10.
        expiry: AI 17, the expiry date.
        symbology: the AIM identifier it was read with, or None.
        ambiguous: why the element string was ambiguous (its serial withheld), or None.
    """

    gtin: str | None
    serial: str | None
    lot: str | None
    expiry: dt.date | None
    symbology: str | None = None
    ambiguous: str | None = None


def split_aim(code: str, symbology: str | None = None) -> tuple[str | None, str]:
    """Split an AIM symbology identifier off ``code`` (see :func:`protocol.codes.split_aim`)."""
    return _split_aim(code, symbology)


def item_of(c: Classified) -> Gs1Item:
    """The item identifiers of a classified product read."""
    return Gs1Item(c.gtin, c.serial, c.lot, c.expiry, c.symbology, c.ambiguous)


def is_gs1(code: str, symbology: str | None = None, rmas: RmaDirectory | None = None) -> bool:
    """True when the classifier names ``code`` a GS1 element string (class ``gs1``).

    A known RMA number in ``rmas`` is a label, unless the symbology says GS1.
    """
    known = None if rmas is None else (lambda n: rmas.lookup_rma(n) is not None)
    return classify(code, symbology, known).code_class is CodeClass.GS1


def parse_gs1(code: str, symbology: str | None = None) -> Gs1Item:
    """The item identifiers of a GS1 element string (with or without AIM prefix).

    Raises:
        ValueError: when the classifier does not find a valid GS1 element string.
    """
    c = classify(code, symbology)
    if c.code_class is not CodeClass.GS1:
        raise ValueError(f"not a GS1 element string: {c.detail or c.code_class.value}")
    return item_of(c)


def gtin14(gtin: str) -> str:
    """A GTIN-8/12/13/14 as 14 digits (left zero-padded), for comparison."""
    return gtin.zfill(14)


@dataclass(frozen=True)
class WindowReads:
    """The distinct reads of one parcel's tracking window, by class.

    Attributes:
        labels: RMA labels (class ``rma_label``: known here, or our number with a valid
            check character), first seen first.
        uids: canonical RFID UIDs.
        items: product reads (GS1 element strings with a GTIN or serial, retail codes).
        ambiguous: reads that another parcel could own as well (too close together, or
            their time of observation too uncertain to tell), late ones included.
        late: of those, reads delivered later than their reader's healthy bound.
        texts: reads of class ``unknown`` (could be the label of an RMA nobody announced).
        garbled: garbled reads (a check character or digit failed).
        others: SSCCs and carrier tracking numbers (reported, never item evidence).
        tracking: the carrier tracking numbers among ``others`` (they may name an RMA).
    """

    labels: tuple[str, ...] = ()
    uids: tuple[str, ...] = ()
    items: tuple[Gs1Item, ...] = ()
    ambiguous: int = 0
    late: int = 0
    texts: tuple[str, ...] = ()
    garbled: tuple[str, ...] = ()
    others: tuple[str, ...] = ()
    tracking: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when nothing at all was read."""
        return not (
            self.labels or self.uids or self.items or self.texts or self.garbled or self.others
        )


@dataclass(frozen=True)
class LineEvidence:
    """The item evidence a parcel showed for one RMA line.

    Attributes:
        index: the line's index in ``RmaRecord.lines``.
        evidence: ``serial``, ``tag`` or ``gtin``.
        verified: True when this evidence verifies a unit of the line (module doc).
        identifier: the value read (serial, canonical UID, GTIN-14).
    """

    index: int
    evidence: Evidence
    verified: bool
    identifier: str


@dataclass(frozen=True)
class IdentityResult:
    """Outcome of identification.

    Attributes:
        identity: the verdict.
        rma: the RMA identified (also for ``wrong_item``), or None.
        lines: indexes of the RMA lines the parcel shows item evidence for; when only its
            label named the RMA, every line (the label claims what is outstanding).
        detail: a short human explanation.
        evidence: the item evidence per line (strongest read for each line), line order.
        by_label: True when the RMA's label or its carrier tracking number was read (it
            may claim outstanding units, unverified).
        by_tracking: the carrier tracking number that named the RMA, or None.
    """

    identity: Identity
    rma: RmaRecord | None
    lines: tuple[int, ...]
    detail: str
    evidence: tuple[LineEvidence, ...] = ()
    by_label: bool = False
    by_tracking: str | None = None


def _rank(ev: LineEvidence) -> tuple[int, int]:
    return (0 if ev.verified else 1, EVIDENCE_ORDER.index(ev.evidence))


def _line_no(rma: RmaRecord, index: int) -> int:
    return rma.lines[index].number(index)


def line_evidence(
    rma: RmaRecord, reads: WindowReads
) -> tuple[tuple[LineEvidence, ...], str | None]:
    """(evidence per line, in line order; the first contradiction, or None).

    The rules are the module doc's. Pure; the RMA's lines as the station knows them.
    """
    lines = rma.lines
    best: dict[int, LineEvidence] = {}

    def offer(ev: LineEvidence) -> None:
        old = best.get(ev.index)
        if old is None or _rank(ev) < _rank(old):
            best[ev.index] = ev

    declares = {
        "rfid_uid": any(ln.rfid_uid for ln in lines),
        "serial": any(ln.serial for ln in lines),
        "gtin": any(ln.gtin for ln in lines),
    }
    for uid in reads.uids:
        hits = [i for i, ln in enumerate(lines) if ln.rfid_uid == uid]
        if not hits and declares["rfid_uid"]:
            return (), f"tag {uid} is not one {rma.number} declares"
        for i in hits:
            offer(LineEvidence(i, Evidence.TAG, True, uid))
    used_gtins: set[str] = set()
    for item in reads.items:
        g = gtin14(item.gtin) if item.gtin else None
        s = item.serial
        if s is not None:
            hits = [i for i, ln in enumerate(lines) if ln.serial == s]
            for i in hits:
                ln = lines[i]
                if ln.gtin and g and gtin14(ln.gtin) != g:
                    return (), f"serial {s} is line {_line_no(rma, i)}'s on another product"
                offer(LineEvidence(i, Evidence.SERIAL, True, s))
            if hits:
                continue
        if g is None:
            if s is not None and declares["serial"]:
                return (), f"serial {s} is not on {rma.number}"
            continue
        hits = [i for i, ln in enumerate(lines) if ln.gtin and gtin14(ln.gtin) == g]
        if not hits:
            if declares["gtin"]:
                return (), f"product {g} is not on {rma.number}"
            if s is not None and declares["serial"]:
                return (), f"serial {s} is not on {rma.number}"
            continue
        if s is not None and all(lines[i].serial for i in hits):
            return (), f"serial {s} is not the unit {rma.number} expects of product {g}"
        if g in used_gtins:
            continue
        if s is not None:  # a serial no line declares: not the unit of a serialised line
            hits = [i for i in hits if not lines[i].serial]
        free = [i for i in hits if i not in best] or hits
        i = free[0]
        ln = lines[i]
        used_gtins.add(g)
        offer(LineEvidence(i, Evidence.GTIN, ln.serial is None and ln.rfid_uid is None, g))
    return tuple(best[i] for i in sorted(best)), None


def _by_identifier(rmas: RmaDirectory, kind: str, values: Sequence[str]) -> tuple[str, ...]:
    if not values or not isinstance(rmas, IdentifierDirectory):
        return ()
    found: dict[str, None] = {}
    for value in values:
        found.update(dict.fromkeys(rmas.find_rmas(kind, value)))
    return tuple(found)


def _describe(reads: WindowReads) -> str:
    if reads.garbled:
        return f"garbled read {reads.garbled[0]!r}"
    if reads.others:
        return f"no return label ({', '.join(reads.others[:2])} read)"
    return "nothing read"


def identify(reads: WindowReads, rmas: RmaDirectory) -> IdentityResult:
    """Identify the item of one tracking window against the station's RMA directory.

    Rules, in order: a read another parcel could own is ``ambiguous_read``; two
    different RMA labels, or a tag / serial that names another RMA than the label, or
    identifiers naming two RMAs, is ``conflicting_reads``; no label, no item and no
    unknown text: ``garbled_read`` when a garbled read was all there was, else
    ``no_read`` (a carrier tracking number or SSCC alone names no RMA); no RMA found is
    ``unknown_rma``; an identifier that contradicts the RMA (module doc) is
    ``wrong_item``; otherwise ``matched``, with the evidence per line (none: label only).
    """
    if reads.ambiguous:
        detail = f"{reads.ambiguous} read(s) could belong to a neighbouring parcel"
        if reads.late:
            detail += f" ({reads.late} delivered late: station overloaded)"
        return IdentityResult(Identity.AMBIGUOUS, None, (), detail)
    labels = tuple(dict.fromkeys(reads.labels))
    if len(labels) > 1:
        return IdentityResult(
            Identity.CONFLICTING, None, (), f"labels {', '.join(labels)} in one window"
        )
    serials = sorted({i.serial for i in reads.items if i.serial})
    by_tag = _by_identifier(rmas, "rfid_uid", reads.uids)
    by_serial = _by_identifier(rmas, "serial", serials)
    by_tracking = _by_identifier(rmas, "tracking", reads.tracking)
    if len(by_tracking) > 1:
        detail = f"carrier tracking numbers name {', '.join(by_tracking)}"
        return IdentityResult(Identity.CONFLICTING, None, (), detail)
    if labels:
        number = labels[0]
        checks = (("tag", by_tag), ("serial", by_serial), ("carrier tracking number", by_tracking))
        for source, named in checks:
            if named and number not in named:
                return IdentityResult(
                    Identity.CONFLICTING,
                    None,
                    (),
                    f"label names {number}, {source} names {', '.join(named)}",
                )
    else:
        named = tuple(dict.fromkeys(by_tracking + by_tag + by_serial))
        if len(named) > 1:
            return IdentityResult(
                Identity.CONFLICTING, None, (), f"identifiers name {', '.join(named)}"
            )
        if not named:
            if reads.texts:
                return IdentityResult(
                    Identity.UNKNOWN_RMA, None, (), f"{reads.texts[0]} is not known here"
                )
            if reads.items or reads.uids:
                return IdentityResult(
                    Identity.UNKNOWN_RMA, None, (), "no RMA label, item not on any RMA"
                )
            if reads.garbled and not reads.others:
                return IdentityResult(Identity.GARBLED, None, (), _describe(reads))
            return IdentityResult(Identity.NO_READ, None, (), _describe(reads))
        number = named[0]
    rma = rmas.lookup_rma(number)
    if rma is None:
        return IdentityResult(Identity.UNKNOWN_RMA, None, (), f"{number} is not known here")
    if not rma.lines:
        return IdentityResult(Identity.WRONG_ITEM, rma, (), f"{number} has no lines")
    evidence, contradiction = line_evidence(rma, reads)
    if contradiction is not None:
        return IdentityResult(
            Identity.WRONG_ITEM, rma, (), f"item does not match {number}: {contradiction}"
        )
    tracked = _tracking_of(rmas, number, reads.tracking) if by_tracking else None
    by_label = bool(labels) or tracked is not None
    shown = tuple(e.index for e in evidence)
    lines = tuple(range(len(rma.lines))) if by_label and not shown else shown
    if not shown:
        detail = f"label names {number}" if labels else number
    else:
        what = ", ".join(
            f"line {_line_no(rma, e.index)} {e.evidence.value}"
            + ("" if e.verified else " (unit unverified)")
            for e in evidence
        )
        detail = f"item matches {number}: {what}"
    if tracked is not None and labels:
        detail += f" (its carrier tracking number {tracked} agrees)"
    elif tracked is not None:
        detail += f" (identified by carrier tracking number {tracked})"
    return IdentityResult(Identity.MATCHED, rma, lines, detail, evidence, by_label, tracked)


def _tracking_of(rmas: RmaDirectory, number: str, tracking: Sequence[str]) -> str | None:
    """The read tracking number that names ``number``, or None."""
    found = (t for t in tracking if number in _by_identifier(rmas, "tracking", [t]))
    return next(found, None)
