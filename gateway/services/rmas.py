"""RMA lifecycle: create, read, and list announcements for station catch-up."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.models import Rma, RmaLineRecord
from gateway.schemas import RmaDraft
from gateway.services.revisions import next_revision
from protocol import RmaAnnouncement, RmaLine
from protocol.messages import RmaState

log = logging.getLogger(__name__)


class DuplicateRma(Exception):
    """An RMA with this number already exists (HTTP 409)."""

    def __init__(self, number: str) -> None:
        super().__init__(f"RMA {number!r} already exists")
        self.number = number


def to_announcement(rma: Rma) -> RmaAnnouncement:
    """Build the wire announcement of a stored RMA.

    Raises:
        pydantic.ValidationError: when the stored RMA breaks the protocol's limits.
    """
    return RmaAnnouncement(
        number=rma.number,
        revision=rma.revision,
        order_ref=rma.order_ref,
        state=RmaState(rma.state),
        reason=rma.reason,
        resolution=rma.resolution,
        lines=tuple(
            RmaLine(
                line_no=line.line_no,
                sku=line.sku,
                quantity=line.quantity,
                gtin=line.gtin,
                serial=line.serial,
                rfid_uid=line.rfid_uid,
                category=line.category,
            )
            for line in rma.lines
        ),
    )


def create_rma(session: Session, site: str, draft: RmaDraft) -> RmaAnnouncement:
    """Store a new authorised RMA under the next site revision and commit.

    Lines get ``line_no`` 1..n in the order given.

    Returns:
        The announcement to publish to the site's stations (after this commit).

    Raises:
        DuplicateRma: when ``draft.number`` is already taken (nothing is stored).
    """
    revision = next_revision(session, site)  # takes the write lock first
    if session.scalar(select(Rma.id).where(Rma.number == draft.number)) is not None:
        session.rollback()
        raise DuplicateRma(draft.number)
    rma = Rma(
        number=draft.number,
        order_ref=draft.order_ref,
        reason=draft.reason,
        resolution=draft.resolution,
        state=RmaState.AUTHORIZED.value,
        revision=revision,
        lines=[
            RmaLineRecord(
                line_no=i,
                sku=line.sku,
                quantity=line.quantity,
                gtin=line.gtin,
                serial=line.serial,
                rfid_uid=line.rfid_uid,
                category=line.category,
            )
            for i, line in enumerate(draft.lines, start=1)
        ],
    )
    session.add(rma)
    try:
        announcement = to_announcement(rma)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateRma(draft.number) from exc
    except BaseException:
        session.rollback()
        raise
    log.info("rma created number=%s revision=%d site=%s", rma.number, revision, site)
    return announcement


def get_rma(session: Session, number: str) -> Rma | None:
    """Return the RMA with this number, or None."""
    return session.scalar(select(Rma).where(Rma.number == number))


def list_rmas(
    session: Session,
    *,
    after_revision: int = 0,
    up_to_revision: int | None = None,
    limit: int | None = None,
) -> list[Rma]:
    """Return RMAs whose revision is in ``(after_revision, up_to_revision]``, oldest first."""
    stmt = select(Rma).where(Rma.revision > after_revision).order_by(Rma.revision)
    if up_to_revision is not None:
        stmt = stmt.where(Rma.revision <= up_to_revision)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def list_announcements(
    session: Session,
    *,
    after_revision: int = 0,
    up_to_revision: int | None = None,
    limit: int | None = None,
) -> list[RmaAnnouncement]:
    """Return announcements with revision in ``(after_revision, up_to_revision]``, in order.

    This is what a station that holds everything up to ``after_revision`` must apply.
    """
    rmas = list_rmas(
        session, after_revision=after_revision, up_to_revision=up_to_revision, limit=limit
    )
    return [to_announcement(rma) for rma in rmas]
