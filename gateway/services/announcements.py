"""RMA announcements: how a stored RMA is told to the site's stations (the wire view).

Built from the database when a change is recorded
(:func:`gateway.services.rma_writer.apply_change`) and when a station catches up by
revision (:func:`gateway.services.rmas.list_announcements`).
"""

from __future__ import annotations

from gateway.models import Rma, RmaLineRecord
from protocol import RmaAnnouncement, RmaLine
from protocol.messages import RmaState

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


def announceable(rma: Rma) -> bool:
    """True when stations should know the RMA (it is past ``requested``)."""
    return rma.state in WIRE_STATE


def to_announcement(rma: Rma) -> RmaAnnouncement:
    """Build the wire announcement of a stored RMA.

    Each line carries its SKU's catalogue values as the catalogue holds them now (unit
    weight, dimensions, tolerance overrides; see :mod:`gateway.services.catalogue`), and
    the catalogue's GTIN when the line has none and the catalogue lists exactly one. An
    RMA with a carrier tracking number is announced in schema version 3, others in 2.

    Raises:
        KeyError: for an RMA still ``requested`` (never announced).
        pydantic.ValidationError: when the stored RMA breaks the protocol's limits.
    """
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
