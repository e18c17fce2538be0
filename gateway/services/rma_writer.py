"""The one writer path of RMAs: every change is recorded by :func:`apply_change`.

Whoever changes an RMA (the shop's API, a lead on the status page, the customer's return
form, the expiry job, a station's parcel event, a catalogue update) makes its change in a
transaction, then calls :func:`apply_change` before committing. That call, in the same
transaction:

- gives the RMA the next site revision (stations catch up by revision);
- writes the ``rma.state_changed`` webhook row(s) (:mod:`gateway.services.webhooks`);
- writes the RMA's announcement to the announcement outbox
  (:class:`gateway.models.AnnouncementRow`), which the MQTT bridge publishes and marks
  sent on the broker's PUBACK. RMAs still ``requested`` are not announced;
- queues the customer's e-mail (:mod:`gateway.services.notifications`) of each
  transition fired since the last record: "return authorised" on ``authorized``,
  "return received" on the first receipt (``partially_received`` or ``received``),
  "refund issued" on ``refunded`` / ``credited`` / ``exchanged``; once per RMA and kind.

So a change, its webhook and its announcement commit together or not at all; nothing is
published from memory after the commit.

Concurrent writers of one RMA are serialised (issue 14): :func:`load_for_change` takes
the row with ``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite (no row locks) the RMA's
revision is a compare-and-set version column (:class:`gateway.models.Rma`), so the
writer that read a revision someone else has since replaced fails at flush with
:class:`StaleRma` and writes nothing (HTTP 409 at the API, with the current state).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from gateway.models import AnnouncementRow, Rma, utcnow
from gateway.services import notifications, webhooks
from gateway.services.announcements import announcement_or_none
from gateway.services.lifecycle import fired_since_recorded
from gateway.services.revisions import next_revision
from gateway.services.row_sink import add_row
from gateway.settings import NotificationKind, Settings
from protocol import encode

log = logging.getLogger(__name__)

STATE_CHANGED = "rma.state_changed"
#: the customer e-mail of a transition, by the state it reached
NOTIFICATION_OF_STATE: dict[str, NotificationKind] = {
    "authorized": "return_authorised",
    "partially_received": "return_received",
    "received": "return_received",
    "refunded": "refund_issued",
    "credited": "refund_issued",
    "exchanged": "refund_issued",
}

__all__ = ["STATE_CHANGED", "StaleDataError", "StaleRma", "apply_change", "load_for_change"]


class StaleRma(Exception):
    """Another writer changed the RMA first; nothing of this change was written (HTTP 409).

    ``number`` is the RMA; the caller rolls back and answers with its current state.
    """

    def __init__(self, number: str) -> None:
        super().__init__(f"RMA {number!r} was changed by someone else meanwhile: nothing done")
        self.number = number


def load_for_change(session: Session, number: str) -> Rma | None:
    """Load the RMA ``number`` to change it in this transaction (None when unknown).

    On PostgreSQL the row is locked (``SELECT ... FOR UPDATE``) until the caller commits
    or rolls back, so a concurrent decision waits and then sees this one's result. On
    SQLite (no row locks) the read is followed at once by a compare-and-set of the
    revision read (``UPDATE rmas SET revision = revision WHERE id = ? AND revision =
    <read>``), which takes the database's write lock until the caller ends the
    transaction: a writer that committed in between makes it fail. The row is re-read
    even when the session already holds it.

    Raises:
        StaleRma: (SQLite) the RMA changed between the read and the compare-and-set.
    """
    stmt = select(Rma).where(Rma.number == number).execution_options(populate_existing=True)
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        stmt = stmt.with_for_update(of=Rma)
    rma = session.scalar(stmt)
    if rma is not None and not postgres:
        claimed = session.execute(
            update(Rma)
            .where(Rma.id == rma.id, Rma.revision == rma.revision)
            .values(revision=rma.revision)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise StaleRma(number)
    return rma


def apply_change(
    session: Session,
    settings: Settings,
    rma: Rma,
    *,
    actor: str,
    webhook: str | None = STATE_CHANGED,
    revision: int | None = None,
    now: datetime | None = None,
    flush: bool = True,
) -> int:
    """Record a change made to ``rma`` in the caller's transaction (no commit).

    Args:
        session: the caller's session, inside the change's transaction.
        settings: the webhook and notification settings.
        rma: the RMA, already changed (state, lines, grade, ...).
        actor: who made the change (``"api-key:shop"``, ``"user:lead"``,
            ``"station:st1"``, ``"system:expiry"``), sent in the webhook.
        webhook: the webhook event type to queue (``rma.state_changed``); None for a
            change shops do not follow (e.g. new catalogue values announced to stations).
        revision: the revision of the RMA's site this change already took (:func:`create_rma` takes
            it first, as its write lock); None takes the next one.
        now: UTC time of the rows; default the clock.
        flush: False for a caller that changes many RMAs it holds (locked on PostgreSQL,
            under the database's write lock on SQLite) and flushes them once: a stale
            revision then fails at that flush (``StaleDataError``), not here.

    Returns:
        The RMA's new revision.

    Raises:
        StaleRma: another writer changed the RMA since it was read (nothing is written;
            the caller rolls back).
    """
    now = now or utcnow()
    rma.revision = revision if revision is not None else next_revision(session, rma.site)
    if flush and sa_inspect(rma).persistent:  # a new RMA is inserted by its creation
        try:
            session.flush()  # the compare-and-set on the RMA row happens here
        except StaleDataError as exc:
            raise StaleRma(rma.number) from exc
    kinds = {NOTIFICATION_OF_STATE.get(state) for state in fired_since_recorded(rma)}
    for kind in notifications.KINDS:  # in the order the customer lives them
        if kind in kinds:
            notifications.enqueue_notification(session, settings, rma, kind, now=now)
    if webhook is not None:
        webhooks.enqueue(
            session,
            settings,
            webhook,
            {"number": rma.number, "state": rma.state, "revision": rma.revision, "actor": actor},
            now=now,
            site=rma.site,
        )
    announcement = announcement_or_none(rma)  # None: not told (logged if it breaks the protocol)
    if announcement is not None:
        add_row(
            session,
            AnnouncementRow,
            site=rma.site,
            rma_number=rma.number,
            revision=rma.revision,
            payload=encode(announcement).decode(),
            created_at=now,
        )
    return rma.revision
