"""A parcel event checked against what its station could know (issue 15, kind 1).

A station reports facts, but a station credential is not proof: a compromised or buggy
station could report a parcel for any RMA of the site, with a lane, disposition and reason
that contradict each other, and so trigger a refund. :func:`check_event` is a pure
function over the event and the RMA as the gateway announced it to the station's site
(:class:`~protocol.RmaAnnouncement`, or None when it announced none): it returns the
first :class:`Refusal` of the rule table :data:`RULES`, or None. The gateway dead-letters
a refused event with the refusal's code and message and raises an alarm; nothing of it is
stored or credited.

Rules (in order; each a function ``(event, announcement) -> message | None``), after the
site rule :data:`SITE_RULE`:

- ``rma_of_another_site``: the event names an RMA of another site than its topic's (a
  station of site A claiming a parcel of an RMA that site B receives), whatever it claims;
- ``rma_not_announced``: the event claims units, or goes anywhere but quarantine, for an
  RMA the gateway never announced to the site (a parcel of an unknown RMA is a fact to
  record only as quarantine ``unknown_rma``);
- ``lane_disposition``: a lane named after a disposition (``restock``, ``refurbish``,
  ``recycle``, ``quarantine``) with another disposition;
- ``reason_disposition``: a quarantine reason (:data:`QUARANTINE_REASONS`, e.g.
  ``no_read``, ``unverified``, ``lane_full``) with a disposition other than quarantine;
- ``not_diverted``: a disposition other than quarantine for a parcel that was not
  diverted (only the end-of-line quarantine lane takes a parcel without a divert);
- ``unit_not_a_line``: a claimed unit whose line number is not a line of that RMA, or
  whose SKU is not that line's;
- ``unit_beyond_quantity``: a claimed unit numbered above its line's quantity;
- ``identifier_not_declared``: a unit verified by an identifier that its line does not
  declare *as its evidence kind*: ``serial`` evidence by the line's serial, ``tag`` by
  its RFID UID (canonical form, as announced), ``gtin`` by its GTIN (compared as
  GTIN-14; the catalogue's GTIN when the announcement carries it for the line); another
  kind's identifier of the line (its GTIN reported as a serial) is not declared;
- ``evidence_too_weak``: a unit verified by its product's GTIN while its line declares a
  serial or a tag: such a line is verified only by that serial or tag (any unit of the
  same product shows the GTIN; :class:`~protocol.UnitReceipt`);
- ``restock_unverified``: a restock with an unverified unit of a line that declares an
  identifier, or with no units at all of an RMA that has such a line (a line without any
  identifier can only be shown by the label: the site's verification table decides
  those on the station, which then may name no unit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocol import Evidence, ParcelEvent, RmaAnnouncement, RmaLine

__all__ = ["QUARANTINE_REASONS", "RULES", "SITE_RULE", "Refusal", "check_event"]

DISPOSITIONS = ("restock", "refurbish", "recycle", "quarantine")
"""Dispositions of a parcel event (``edge.sorter.model.Disposition``)."""

QUARANTINE_REASONS = frozenset(
    {
        "no_read",
        "garbled_read",
        "unknown_rma",
        "conflicting_reads",
        "ambiguous_read",
        "wrong_item",
        "rfid_timeout",
        "rma_cancelled",
        "rma_expired",
        "rma_already_received",
        "quantity_exceeded",
        "unverified",
        "mixed_dispositions",
        "unknown_grade",
        "recalled",
        "no_rule",
        "no_lane",
        "lane_full",
        "gate_fault",
        "gap_violation",
        "late_decision",
        "late_gate",
        "belt_stopped",
        "weight_mismatch",
        "size_mismatch",
    }
)
"""Reason codes that only ever send a parcel to quarantine (``edge.sorter.model.Reason``
less ``matched`` and ``hygiene_opened``, which a policy rule may give any disposition)."""


@dataclass(frozen=True)
class Refusal:
    """Why an event was refused: a rule ``code`` of :data:`RULES` and a readable message."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"untrusted event: {self.code}: {self.message}"


Rule = Callable[[ParcelEvent, RmaAnnouncement | None], str | None]


def _rma_not_announced(event: ParcelEvent, rma: RmaAnnouncement | None) -> str | None:
    if rma is not None or (not event.units and event.disposition == "quarantine"):
        return None
    if event.rma_number is None:
        return f"disposition {event.disposition} without an RMA"
    return f"RMA {event.rma_number} was never announced to this site"


def _lane_disposition(event: ParcelEvent, _rma: RmaAnnouncement | None) -> str | None:
    if event.lane in DISPOSITIONS and event.lane != event.disposition:
        return f"lane {event.lane} with disposition {event.disposition}"
    if event.disposition not in DISPOSITIONS:
        return f"unknown disposition {event.disposition}"
    return None


def _reason_disposition(event: ParcelEvent, _rma: RmaAnnouncement | None) -> str | None:
    if event.reason in QUARANTINE_REASONS and event.disposition != "quarantine":
        return f"reason {event.reason} with disposition {event.disposition}"
    return None


def _not_diverted(event: ParcelEvent, _rma: RmaAnnouncement | None) -> str | None:
    if event.disposition != "quarantine" and not event.diverted:
        return f"disposition {event.disposition} without a divert"
    return None


def _lines(rma: RmaAnnouncement | None) -> dict[int, RmaLine]:
    return {line.line_no: line for line in rma.lines} if rma is not None else {}


def _unit_not_a_line(event: ParcelEvent, rma: RmaAnnouncement | None) -> str | None:
    lines = _lines(rma)
    for u in event.units:
        line = lines.get(u.line_no)
        if line is None:
            return f"unit of line {u.line_no}: RMA {event.rma_number} has no such line"
        if line.sku != u.sku:
            return f"unit of line {u.line_no} is SKU {u.sku}, the line is {line.sku}"
    return None


def _unit_beyond_quantity(event: ParcelEvent, rma: RmaAnnouncement | None) -> str | None:
    lines = _lines(rma)
    for u in event.units:
        if u.unit > lines[u.line_no].quantity:
            return f"unit {u.unit} of line {u.line_no}: the line has {lines[u.line_no].quantity}"
    return None


def _declared(line: RmaLine) -> bool:
    """True when the line declares an item identifier (serial, RFID UID or GTIN)."""
    return bool(line.serial or line.rfid_uid or line.gtin)


def _declared_as(line: RmaLine, evidence: Evidence) -> str | None:
    """The line's identifier of the evidence kind (GTIN as GTIN-14), or None."""
    if evidence is Evidence.SERIAL:
        return line.serial
    if evidence is Evidence.TAG:
        return line.rfid_uid
    if evidence is Evidence.GTIN:
        return line.gtin.zfill(14) if line.gtin else None
    return None


def _identifier_not_declared(event: ParcelEvent, rma: RmaAnnouncement | None) -> str | None:
    lines = _lines(rma)
    for u in event.verified_units:
        known = _declared_as(lines[u.line_no], u.evidence)
        read = (u.identifier or "").zfill(14) if u.evidence is Evidence.GTIN else u.identifier
        if known is None or read != known:
            return (
                f"unit {u.unit} of line {u.line_no} verified by a {u.evidence.value} "
                "its line does not declare"
            )
    return None


def _evidence_too_weak(event: ParcelEvent, rma: RmaAnnouncement | None) -> str | None:
    lines = _lines(rma)
    for u in event.verified_units:
        line = lines[u.line_no]
        if u.evidence is Evidence.GTIN and (line.serial or line.rfid_uid):
            only = " or ".join(k for k, v in (("serial", line.serial), ("tag", line.rfid_uid)) if v)
            return (
                f"unit {u.unit} of line {u.line_no} verified by its GTIN: "
                f"only the line's {only} verifies it"
            )
    return None


def _restock_unverified(event: ParcelEvent, rma: RmaAnnouncement | None) -> str | None:
    if event.disposition != "restock":
        return None
    lines = _lines(rma)
    if not event.units and any(_declared(line) for line in lines.values()):
        return "restock without units of an RMA whose lines declare identifiers"
    for u in event.units:
        if not u.verified and _declared(lines[u.line_no]):
            return f"restock of unit {u.unit} of line {u.line_no} without verifying it"
    return None


RULES: tuple[tuple[str, Rule], ...] = (
    ("rma_not_announced", _rma_not_announced),
    ("lane_disposition", _lane_disposition),
    ("reason_disposition", _reason_disposition),
    ("not_diverted", _not_diverted),
    ("unit_not_a_line", _unit_not_a_line),
    ("unit_beyond_quantity", _unit_beyond_quantity),
    ("identifier_not_declared", _identifier_not_declared),
    ("evidence_too_weak", _evidence_too_weak),
    ("restock_unverified", _restock_unverified),
)
"""The rule table, in the order applied: (code, rule). Later rules may assume the earlier
ones passed (every claimed unit names a line of the announced RMA)."""


SITE_RULE = "rma_of_another_site"
"""The rule checked before :data:`RULES`: the event's site (its topic's) is its RMA's."""


def check_event(
    event: ParcelEvent,
    announced: RmaAnnouncement | None,
    *,
    site: str | None = None,
    rma_site: str | None = None,
) -> Refusal | None:
    """The first rule the event breaks (:data:`SITE_RULE`, then :data:`RULES`), or None.

    Args:
        event: the parcel event as decoded (already bounded by the protocol).
        announced: the RMA named by ``event.rma_number`` as the gateway announces it to the
            event's site now (:func:`gateway.services.rmas.to_announcement`), or None when
            the event names none or the gateway never announced it.
        site: the site of the topic the event came on (None: the site rule is skipped).
        rma_site: the site of the RMA the event names (None: it names no known RMA).
    """
    if announced is not None and announced.number != event.rma_number:
        raise ValueError(f"announcement {announced.number} is not the event's RMA")
    if site is not None and rma_site is not None and rma_site != site:
        return Refusal(
            SITE_RULE, f"RMA {event.rma_number} is received at site {rma_site}, not {site}"
        )
    for code, rule in RULES:
        message = rule(event, announced)
        if message is not None:
            return Refusal(code, message)
    return None
