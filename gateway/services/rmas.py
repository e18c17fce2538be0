"""RMAs: create under the return policies, move through the lifecycle, receive, list.

Every change is recorded by :func:`gateway.services.rma_writer.apply_change` (the next
site revision, the webhook and the announcement rows, in the change's transaction); RMAs
still ``requested`` are not announced (not yet authorised).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, any_, bindparam, literal, select, true
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from gateway.db import begin_writing
from gateway.models import (
    REVISION_MAX,
    CatalogueItem,
    Order,
    OrderLine,
    Rma,
    RmaLineRecord,
    utcnow,
)
from gateway.schemas import RmaDraft, RmaLineDraft
from gateway.services import numbers
from gateway.services.announcements import announcement_or_none
from gateway.services.lifecycle import fire
from gateway.services.orders import lock_order, rma_contact
from gateway.services.policies import PolicyViolation, check_window, local_date, returnable_for
from gateway.services.reasons import require_reason
from gateway.services.refund_terms import unit_paid_cents
from gateway.services.revisions import next_revision_and, revision_cte
from gateway.services.rma_writer import apply_change
from gateway.services.row_sink import open_sink
from gateway.services.tracking import carrier_name, ensure_free
from gateway.settings import Settings
from protocol import RmaAnnouncement

log = logging.getLogger(__name__)


class DuplicateRma(Exception):
    """An RMA with this number already exists (HTTP 409)."""

    def __init__(self, number: str) -> None:
        super().__init__(f"RMA {number!r} already exists")
        self.number = number


class CreationConflict(Exception):
    """What an RMA's creation wrote on changed under it (HTTP 409); nothing was stored.

    A constraint other than the RMA number's and the tracking number's broke at the write,
    e.g. an order line the RMA refers to was deleted by an order update meanwhile: the
    same request again reads the order anew. ``number`` is the RMA number asked for.
    """

    def __init__(self, number: str) -> None:
        super().__init__(
            f"RMA {number!r} not created: the order or data it refers to changed while it "
            "was being created; retry"
        )
        self.number = number


class SiteNotAllowed(PermissionError):
    """The caller may not use the RMA's site, or its order's (HTTP 403); ``site`` is that site.

    For an order of another site the message names the order, not its site (the caller
    cannot read that order: ``GET /api/v1/orders/{ref}`` is a 404 to it).
    """

    def __init__(self, site: str, order_ref: str | None = None) -> None:
        if order_ref is None:
            super().__init__(f"this caller may not create RMAs for site {site!r}")
        else:
            super().__init__(f"this caller may not return goods of order {order_ref!r}")
        self.site = site


class ReceiptError(ValueError):
    """A receipt names an unknown line or more units than are outstanding (HTTP 422)."""


def _order_line_for(order: Order, line: RmaLineDraft, line_no: int) -> OrderLine:
    if line.order_line is not None:
        match = [ol for ol in order.lines if ol.line_no == line.order_line]
        if not match:
            raise PolicyViolation(
                "unknown_order_line",
                f"line {line_no}: order {order.order_ref!r} has no line {line.order_line}",
                line_no=line_no,
            )
        if match[0].sku != line.sku:
            raise PolicyViolation(
                "sku_mismatch",
                f"line {line_no}: order line {line.order_line} is SKU {match[0].sku!r}, "
                f"not {line.sku!r}",
                line_no=line_no,
            )
        return match[0]
    match = [ol for ol in order.lines if ol.sku == line.sku]
    if not match:
        raise PolicyViolation(
            "sku_not_on_order",
            f"line {line_no}: SKU {line.sku!r} is not on order {order.order_ref!r}",
            line_no=line_no,
        )
    if len(match) > 1:
        raise PolicyViolation(
            "ambiguous_sku",
            f"line {line_no}: SKU {line.sku!r} is on several lines of order "
            f"{order.order_ref!r}; give order_line",
            line_no=line_no,
        )
    return match[0]


def _build_lines(
    session: Session,
    settings: Settings,
    draft: RmaDraft,
    order: Order | None,
    now: datetime,
    catalogue: dict[str, CatalogueItem],
) -> list[RmaLineRecord]:
    """Apply the window and quantity policies; return the lines to store.

    ``catalogue``: the catalogue's entries of the draft's SKUs, by SKU (the lines get them).
    """
    zone = settings.zone
    delivered_on = draft.delivered_on
    if order is not None and order.delivered_at is not None:
        delivered_on = local_date(order.delivered_at, zone)
    claimed: dict[int, int] = {}  # order line id -> units already claimed by this draft
    records: list[RmaLineRecord] = []
    for i, line in enumerate(draft.lines, start=1):
        order_line = _order_line_for(order, line, i) if order is not None else None
        category = line.category or (order_line.category if order_line else None)
        if delivered_on is not None:
            check_window(
                delivered_on=delivered_on,
                category=category,
                windows=settings.return_window_days,
                now=now,
                zone=zone,
                line_no=i,
            )
        price = line.unit_price_cents or 0
        if order_line is not None:
            if order_line.delivered_quantity == 0:
                raise PolicyViolation(
                    "not_delivered",
                    f"line {i}: order line {order_line.line_no} ({line.sku}) was not delivered",
                    line_no=i,
                )
            avail = returnable_for(session, order_line)
            already = claimed.get(order_line.id, 0)
            if line.quantity + already > avail.returnable:
                raise PolicyViolation(
                    "quantity_exceeds_returnable",
                    f"line {i} ({line.sku}): {line.quantity + already} unit(s) asked but only "
                    f"{avail.returnable} returnable on order line {order_line.line_no} "
                    f"(delivered {avail.delivered}, already returned {avail.returned}, "
                    f"on open RMAs {avail.on_open})",
                    line_no=i,
                    order_line=order_line.line_no,
                    requested=line.quantity + already,
                    returnable=avail.returnable,
                    delivered=avail.delivered,
                    returned=avail.returned,
                    on_open=avail.on_open,
                    rmas=avail.rmas,
                )
            claimed[order_line.id] = already + line.quantity
            price = unit_paid_cents(order_line.order, order_line)
        records.append(
            RmaLineRecord(
                line_no=i,
                order_line_id=order_line.id if order_line else None,
                sku=line.sku,
                quantity=line.quantity,
                received_quantity=0,
                unit_price_cents=price,
                gtin=line.gtin,
                serial=line.serial,
                rfid_uid=line.rfid_uid,
                category=category,
                units=[],  # a new line has none: no query for them
            )
        )
    for record in records:  # not one lazy load a line: the announcement reads them
        set_committed_value(record, "catalogue", catalogue.get(record.sku))
    return records


def _order_and_catalogue(
    session: Session, draft: RmaDraft
) -> tuple[Order | None, dict[str, CatalogueItem]]:
    """The draft's order (None: unknown) and the catalogue's entries of its SKUs, by SKU.

    One query (one round trip): a one-row table outer-joined to the order and to the
    entries, so each entry comes once with the order (or NULL) and the order comes even
    without entries.
    """
    rows = session.execute(_ORDER_AND_CATALOGUE, _read_params(draft)).all()
    return _order_and_items(rows)


def _read_params(draft: RmaDraft, **more: str) -> dict[str, Any]:
    return {"order_ref": draft.order_ref, "skus": sorted({ln.sku for ln in draft.lines}), **more}


def _order_and_items(rows: Sequence[Any]) -> tuple[Order | None, dict[str, CatalogueItem]]:
    """The order (or None) and the catalogue's entries by SKU, from the read's rows."""
    order: Order | None = None
    items: dict[str, CatalogueItem] = {}
    for row in rows:
        order = order or row[0]
        if row[1] is not None:
            items[row[1].sku] = row[1]
    return order, items


def _locked_read(
    session: Session, draft: RmaDraft, site: str, number: str
) -> tuple[Order | None, dict[str, CatalogueItem], int | None, int | None]:
    """:func:`_order_and_catalogue`, the site's next revision and the id of an RMA ``number``.

    PostgreSQL, for a creation whose site is known before its order is read: one
    statement (one round trip) instead of the read and the revision ``UPDATE`` after it
    (:func:`gateway.services.revisions.revision_cte`). It takes the site's write lock and
    reads the order and the catalogue as committed when it began, as the two statements
    did. Returns ``(order, items by SKU, revision, id of the RMA with the number or
    None)``; the revision is None when the site has no counter yet (nothing was locked:
    :func:`next_revision_and` creates it).
    """
    params = _read_params(draft, rs_site=site, number=number)
    rows = session.execute(_ORDER_CATALOGUE_AND_REVISION, params).all()
    order, items = _order_and_items(rows)
    _order, _item, revision, taken = rows[0]  # the same on every row (at least one)
    return order, items, revision, taken


def _site_before_order(
    session: Session, settings: Settings, draft: RmaDraft, allowed_sites: frozenset[str]
) -> str | None:
    """The creation's site when its order cannot change it and it is allowed, on PostgreSQL.

    The draft's site, or the gateway's only one; None otherwise (several sites and none
    given: the order's decides), on SQLite, or for a site the checks refuse (they raise
    after the order is read, as for any creation).
    """
    site = draft.site or (settings.site if len(settings.sites) == 1 else None)
    if site is None or site not in settings.sites or (allowed_sites and site not in allowed_sites):
        return None
    return site if session.get_bind().dialect.name == "postgresql" else None


#: statements built once (not per call: their construction and cache key cost more
#: than SQLite's own work), executed with their parameters
def _read_of(*more: Any, sku_array: bool = False) -> Select[Any]:
    """The order (``:order_ref``) and the catalogue's entries (``:skus``), and ``more``.

    As they are committed, also when the session already holds them: the caller may have
    loaded the order before (the return form reads it, then builds the draft from it),
    and a plain read hands back that object as it was then (its lines too), so an order
    update committed in between would go unseen (a line dropped meanwhile broke the
    write; a line changed to another SKU or price was stored as it had been).

    ``sku_array`` (PostgreSQL only): ``sku = ANY(:skus)``, the list bound as one array
    parameter, instead of an expanding ``IN``. The SQL is then the same for any number of
    SKUs: no rendering of the statement per call (an expanding parameter is rendered into
    the SQL text at each execution, ~0.15 ms a creation), and one prepared statement.
    """
    skus = (
        CatalogueItem.sku == any_(bindparam("skus", type_=postgresql.ARRAY(String)))
        if sku_array
        else CatalogueItem.sku.in_(bindparam("skus", expanding=True))
    )
    return (
        select(Order, CatalogueItem, *more)
        .select_from(select(literal(1).label("one")).subquery("one_row"))
        .outerjoin(Order, Order.order_ref == bindparam("order_ref"))
        .outerjoin(CatalogueItem, skus)
        .execution_options(populate_existing=True)
    )


_ORDER_AND_CATALOGUE = _read_of()
_RMA_ID_OF_NUMBER = select(Rma.id).where(Rma.number == bindparam("number"))
_RMA_ID_BY_NUMBER = _RMA_ID_OF_NUMBER.scalar_subquery()
_REVISION = revision_cte(_RMA_ID_BY_NUMBER)
_ORDER_CATALOGUE_AND_REVISION = _read_of(
    _REVISION.c.rs_revision, _REVISION.c.rs_probe, sku_array=True
).outerjoin(_REVISION, true())


def create_rma(
    session: Session,
    settings: Settings,
    draft: RmaDraft,
    *,
    actor: str = "system",
    now: datetime | None = None,
    after_lock: Callable[[], None] | None = None,
    before_commit: Callable[[Rma], None] | None = None,
    allowed_sites: frozenset[str] = frozenset(),
) -> Rma:
    """Check the policies, store the RMA under the next site revision and commit.

    The RMA's site is ``draft.site``, else its order's (when the gateway serves that
    site), else ``settings.site``; it must
    be one of ``settings.sites`` and, when ``allowed_sites`` is not empty (a caller
    limited to sites), one of those, as must be the site of its order, when known.

    The RMA starts ``requested`` and is authorised at once (a recorded transition) unless
    ``draft.authorize`` is False. With a known order, lines are matched to order lines
    (by ``order_line`` or SKU), the unit price paid and category come from the order, and
    the window and returnable quantity are enforced. Without one (and
    ``settings.require_order`` False) the shop's data is taken as given.

    On PostgreSQL, when the site is known before the order is read (``draft.site``
    given, or a gateway of one site), the read of the order and the catalogue also takes
    the site's write lock and the next revision (:func:`_locked_read`): a creation is
    then three round trips (that read, the rows' one statement, the commit) after BEGIN.

    ``after_lock`` is called once the site's write lock is held, before any policy check
    (e.g. to find a concurrent twin request that committed first: it may raise to stop).
    ``before_commit`` is called with the RMA just before the commit (e.g. to store the
    idempotent response in the same transaction): every field the API shows is set, but
    nothing is flushed yet (no database ids), so the transaction has one flush. Rows it
    adds with :func:`gateway.services.row_sink.add_row` (the audit row) go, like the
    announcement and webhook rows, to the creation's row sink: INSERTed just before the
    commit, not objects of the session.
    ``actor`` is recorded on the transitions; ``now`` (UTC, default the clock) is when the
    policies are evaluated.

    Raises:
        numbers.MistypedNumber: a number in the gateway's format with a wrong check char.
        UnknownReason: the reason is not on the list.
        PolicyViolation: window closed, quantity over returnable, unknown order, unknown
            site (``unknown_site``), ...
        SiteNotAllowed: the site, or the known order's, is not one of ``allowed_sites``.
        DuplicateRma: the number is taken (nothing is stored), also by a creation
            committed while this one ran.
        TrackingNumberTaken: the draft's tracking number is another RMA's, also one
            committed while this creation ran (on another site: no shared lock).
        CreationConflict: any other constraint broke at the write (e.g. an order line
            deleted meanwhile); nothing is stored.
    """
    now = now or utcnow()
    number = numbers.check(draft.number) if draft.number else numbers.generate()
    # SQLite: the write lock from here to the commit (after a write of the caller's
    # own in this transaction, from that write on), before the revision UPDATE below
    begin_writing(session)
    require_reason(session, draft.reason)
    known_site = _site_before_order(session, settings, draft, allowed_sites)
    try:
        revision: int | None = None
        taken: int | None = None
        if known_site is not None:  # the lock (and the number's lookup) with the read
            order, catalogue, revision, taken = _locked_read(session, draft, known_site, number)
        else:
            order, catalogue = _order_and_catalogue(session, draft)
        if allowed_sites and order is not None and order.site not in allowed_sites:
            # its customer, prices and returnable units are another site's (the caller
            # cannot read the order): an RMA received at an allowed site changes nothing
            raise SiteNotAllowed(order.site, order_ref=draft.order_ref)
        if order is None and settings.require_order:
            raise PolicyViolation(
                "unknown_order", f"order {draft.order_ref!r} is unknown", order_ref=draft.order_ref
            )
        site = draft.site or settings.site
        if draft.site is None and order is not None and order.site in settings.sites:
            site = order.site  # where the order's returns go
        if site not in settings.sites:
            raise PolicyViolation(
                "unknown_site", f"site {site!r} is not one of {settings.sites}", site=site
            )
        if allowed_sites and site not in allowed_sites:
            raise SiteNotAllowed(site)
        if revision is None:
            # takes the write lock first; the same statement looks for the number (a
            # number taken while it waited for the lock is caught by the unique
            # constraint: 409 too)
            revision, taken = next_revision_and(
                session, site, _RMA_ID_BY_NUMBER, {"number": number}
            )
        if after_lock is not None:
            after_lock()  # first: a twin's stored response wins over the 409
        if taken is not None:
            raise DuplicateRma(number)
        carrier = ""
        if draft.tracking_number is not None:
            ensure_free(session, draft.tracking_number)
            carrier = carrier_name(draft.tracking_number, draft.carrier)
        if order is not None:
            lock_order(session, order)  # what is returnable: counted under its lock
        lines = _build_lines(session, settings, draft, order, now, catalogue)
        delivered_on = draft.delivered_on
        if order is not None and order.delivered_at is not None:
            delivered_on = local_date(order.delivered_at, settings.zone)
        rma = Rma(
            number=number,
            site=site,
            order_ref=draft.order_ref,
            **rma_contact(draft, order),
            carrier=carrier,
            carrier_status="",  # every field the API shows is set before the flush
            tracking_number=draft.tracking_number,
            delivered_on=delivered_on,
            reason=draft.reason,
            resolution=draft.resolution,
            notes=draft.notes,
            currency=order.currency if order else settings.currency,
            state="requested",
            awaiting_decision=False,
            revision=revision,
            created_at=now,
            updated_at=now,
            lines=lines,
        )
        # not added to the session: the sink writes it (nothing to expunge), or adds it
        if draft.authorize:
            fire(rma, "authorize", actor=actor, note="policies passed", at=now)
        # the RMA, its lines and transitions and the rows nobody reads back (announcement,
        # one webhook delivery per active endpoint, the caller's audit row) are written
        # by the row sink, not the unit of work: on PostgreSQL in one statement
        with open_sink(session) as sink:
            apply_change(session, settings, rma, actor=actor, revision=revision, now=now)
            if before_commit is not None:
                before_commit(rma)  # its view is taken before the write (no ids in it)
            sink.write(session, new=rma)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        # which constraint, from what is committed now: a twin's number, a tracking
        # number taken meanwhile, or something else (an order line deleted, ...)
        if session.scalar(_RMA_ID_OF_NUMBER, {"number": number}) is not None:
            raise DuplicateRma(number) from exc
        if draft.tracking_number is not None:
            ensure_free(session, draft.tracking_number)
        log.warning("rma not created, a constraint broke number=%s: %s", number, exc.orig)
        raise CreationConflict(number) from exc
    except BaseException:
        session.rollback()
        raise
    log.info(
        "rma created number=%s state=%s revision=%d site=%s actor=%s",
        number,
        rma.state,
        revision,
        site,
        actor,
    )
    return rma


def transition_rma(
    session: Session,
    settings: Settings,
    rma: Rma,
    trigger: str,
    *,
    actor: str,
    note: str = "",
    now: datetime | None = None,
    before_commit: Callable[[Rma], None] | None = None,
) -> Rma:
    """Fire ``trigger`` on ``rma``, record the change (the writer path) and commit.

    Raises:
        IllegalTransition: the trigger is not allowed from the current state.
        StaleRma: another writer changed the RMA since it was read (nothing written).
    """
    try:
        fire(rma, trigger, actor=actor, note=note, at=now)
        apply_change(session, settings, rma, actor=actor, now=now)
        if before_commit is not None:
            before_commit(rma)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    log.info("rma %s number=%s state=%s actor=%s", trigger, rma.number, rma.state, actor)
    return rma


def receive_units(
    rma: Rma, units: dict[int, int], *, actor: str, note: str = "", at: datetime | None = None
) -> None:
    """Count received units per line number and fire ``receive`` or ``receive_part``.

    Inside the caller's transaction (no revision change, no commit).

    Raises:
        ReceiptError: unknown line or more units than outstanding on it.
        IllegalTransition: the RMA cannot receive goods in its state.
    """
    by_no = {line.line_no: line for line in rma.lines}
    for line_no, qty in units.items():
        line = by_no.get(line_no)
        if line is None:
            raise ReceiptError(f"RMA {rma.number!r} has no line {line_no}")
        if qty > line.quantity - line.received_quantity:
            raise ReceiptError(
                f"RMA {rma.number!r} line {line_no}: {qty} received but only "
                f"{line.quantity - line.received_quantity} outstanding"
            )
    complete = all(
        line.received_quantity + units.get(line.line_no, 0) >= line.quantity for line in rma.lines
    )
    fire(rma, "receive" if complete else "receive_part", actor=actor, note=note, at=at)
    for line_no, qty in units.items():
        by_no[line_no].received_quantity += qty


def outstanding(rma: Rma) -> dict[int, int]:
    """Return units not yet received, per line number (lines with none are left out)."""
    return {
        line.line_no: line.quantity - line.received_quantity
        for line in rma.lines
        if line.quantity > line.received_quantity
    }


def get_rma(session: Session, number: str) -> Rma | None:
    """Return the RMA with this number, or None."""
    return session.scalar(select(Rma).where(Rma.number == number))


def list_rmas(
    session: Session,
    *,
    after_revision: int = 0,
    up_to_revision: int | None = None,
    limit: int | None = None,
    announced_only: bool = False,
    sites: list[str] | None = None,
) -> list[Rma]:
    """Return RMAs whose revision is in ``(after_revision, up_to_revision]``, oldest first.

    ``sites``: only RMAs of these sites (None: every site). Revisions are per site, so
    ``after_revision`` means one site's revision when ``sites`` names one; across several
    sites the RMAs come by revision, then site, then number. The bounds may be any
    non-negative number (a caller's or a station's, up to 2^63 - 1): beyond
    :data:`~gateway.models.REVISION_MAX` nothing is newer, and every RMA is up to it
    (PostgreSQL refuses such a number in a comparison with the 32-bit column).
    """
    if after_revision >= REVISION_MAX:
        return []
    if up_to_revision is not None:
        up_to_revision = min(up_to_revision, REVISION_MAX)
    stmt = (
        select(Rma)
        .where(Rma.revision > after_revision)
        .order_by(Rma.revision, Rma.site, Rma.number)
    )
    if sites is not None:
        stmt = stmt.where(Rma.site.in_(sites))
    if up_to_revision is not None:
        stmt = stmt.where(Rma.revision <= up_to_revision)
    if announced_only:
        stmt = stmt.where(Rma.state != "requested")
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def list_announcements(
    session: Session,
    *,
    after_revision: int = 0,
    up_to_revision: int | None = None,
    limit: int | None = None,
    site: str | None = None,
) -> list[RmaAnnouncement]:
    """Return announcements with revision in ``(after_revision, up_to_revision]``, in order.

    This is what a station of ``site`` (None: of a gateway with one site) that holds
    everything up to ``after_revision`` must apply. RMAs still ``requested`` are left out
    (they are announced once authorised), and so is an RMA the protocol cannot carry
    (:func:`~gateway.services.announcements.announcement_or_none`). See
    :func:`read_announcements` for a page of ``limit``.
    """
    return read_announcements(
        session,
        after_revision=after_revision,
        up_to_revision=up_to_revision,
        limit=limit,
        site=site,
    )[0]


def read_announcements(
    session: Session,
    *,
    after_revision: int = 0,
    up_to_revision: int | None = None,
    limit: int | None = None,
    site: str | None = None,
) -> tuple[list[RmaAnnouncement], int, int]:
    """A page of :func:`list_announcements`: (announcements, RMAs read, last revision read).

    At most ``limit`` RMAs are read; the page may hold fewer announcements than RMAs read
    (one left out), so a reader pages on by the RMAs read and the last revision read
    (``after_revision`` when none was).
    """
    rmas = list_rmas(
        session,
        after_revision=after_revision,
        up_to_revision=up_to_revision,
        limit=limit,
        announced_only=True,
        sites=None if site is None else [site],
    )
    page = [a for a in map(announcement_or_none, rmas) if a is not None]
    return page, len(rmas), rmas[-1].revision if rmas else after_revision
