"""RMA announcements: how a stored RMA is told to the site's stations (the wire view).

Built from the database when a change is recorded
(:func:`gateway.services.rma_writer.apply_change`) and when a station catches up by
revision (:func:`gateway.services.rmas.list_announcements`).
"""

from __future__ import annotations

import logging

import pydantic

from gateway.models import Rma, RmaLineRecord
from protocol import RmaAnnouncement, RmaLine, encode
from protocol.messages import RmaState
from protocol.text import NUL, may_hold_nul

log = logging.getLogger(__name__)

#: How the lifecycle state is told to stations (they only care whether to accept a parcel).
WIRE_STATE = {
    "authorized": RmaState.AUTHORIZED,
    "in_transit": RmaState.AUTHORIZED,
    "partially_received": RmaState.AUTHORIZED,
    "received": RmaState.RECEIVED,
    "graded": RmaState.RECEIVED,
    "refunded": RmaState.RECEIVED,
    "credited": RmaState.RECEIVED,
    "exchanged": RmaState.RECEIVED,
    "closed": RmaState.RECEIVED,
    "rejected": RmaState.CANCELLED,
    "cancelled": RmaState.CANCELLED,
    "expired": RmaState.EXPIRED,
}


class Unannounceable(ValueError):
    """A stored RMA that stations could not take: it breaks the protocol's limits.

    E.g. a NUL character (U+0000) stored on SQLite before the gateway refused it at every
    entry (:mod:`protocol.text`): :func:`protocol.messages.decode` refuses the message, a
    whole catch-up batch with it. The message names the RMA and the field.
    """


def announceable(rma: Rma) -> bool:
    """True when stations should know the RMA (it is past ``requested``)."""
    return rma.state in WIRE_STATE


def announcement_or_none(rma: Rma) -> RmaAnnouncement | None:
    """:func:`to_announcement`, or None for an RMA stations are not told of.

    None for an RMA still ``requested``, and for one that is :class:`Unannounceable`
    (logged as an error naming the RMA and the field): it is left out of every
    announcement, catch-up batch and event check, so that it cannot make a station refuse
    the others; its parcels are sorted as of an unknown RMA (quarantine: a lead decides).
    """
    if not announceable(rma):
        return None
    try:
        return to_announcement(rma)
    except Unannounceable as exc:
        log.error("%s: not announced", exc)
        return None


def to_announcement(rma: Rma) -> RmaAnnouncement:
    """Build the wire announcement of a stored RMA.

    Each line carries its SKU's catalogue values as the catalogue holds them now (unit
    weight, dimensions, tolerance overrides; see :mod:`gateway.services.catalogue`), and
    the catalogue's GTIN when the line has none and the catalogue lists exactly one. An
    RMA with a carrier tracking number is announced in schema version 3, others in 2.

    Raises:
        KeyError: for an RMA still ``requested`` (never announced).
        Unannounceable: when the stored RMA breaks the protocol's limits.
    """
    try:
        announcement = _announcement(rma)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "announcement"
        raise Unannounceable(f"rma {rma.number!r}: {where}: {first['msg']}") from exc
    nul_at = _nul_field(announcement) if may_hold_nul(encode(announcement)) else None
    if nul_at is not None:
        raise Unannounceable(f"rma {rma.number!r}: {nul_at}: NUL character (U+0000)")
    return announcement


def _nul_field(model: pydantic.BaseModel, root: str = "") -> str | None:
    """The first text field holding NUL, by its dotted place (``lines.0.sku``), or None.

    Nested models and tuples of them included.
    """
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, tuple) else (value,)
        for i, item in enumerate(items):
            place = f"{root}{name}.{i}" if isinstance(value, tuple) else f"{root}{name}"
            if isinstance(item, str) and NUL in item:
                return place
            if isinstance(item, pydantic.BaseModel):
                found = _nul_field(item, f"{place}.")
                if found is not None:
                    return found
    return None


def _announcement(rma: Rma) -> RmaAnnouncement:
    tracked = rma.tracking_number is not None
    return RmaAnnouncement(
        schema_version=3 if tracked else 2,  # stations not yet upgraded take the others
        number=rma.number,
        revision=rma.revision,
        order_ref=rma.order_ref,
        state=WIRE_STATE[rma.state],
        reason=rma.reason,
        resolution=rma.resolution,
        lines=tuple(_wire_line(line) for line in rma.lines),
        tracking_number=rma.tracking_number,
        carrier=(rma.carrier or None) if tracked else None,
    )


def _wire_line(line: RmaLineRecord) -> RmaLine:
    item = line.catalogue
    gtins = item.gtins if item is not None else []
    return RmaLine(
        line_no=line.line_no,
        sku=line.sku,
        quantity=line.quantity,
        gtin=line.gtin or (gtins[0] if len(gtins) == 1 else None),
        serial=line.serial,
        rfid_uid=line.rfid_uid,
        category=line.category,
        received_quantity=min(line.received_quantity, line.quantity),
        unit_value_cents=line.unit_price_cents,
        weight_g=item.weight_g if item is not None else None,
        length_mm=item.length_mm if item is not None else None,
        width_mm=item.width_mm if item is not None else None,
        height_mm=item.height_mm if item is not None else None,
        weight_tol_g=item.weight_tol_g if item is not None else None,
        size_tol_mm=item.size_tol_mm if item is not None else None,
    )
