"""The shop connector interface and its durable queue of outbound calls.

A connector talks to one shop back-end (:mod:`gateway.connectors.shopify`,
:mod:`gateway.connectors.woocommerce`): it pulls orders, pushes a credit as a refund on
the order and a stock movement as an inventory change. Pushes never happen from memory:
:func:`enqueue_credit` / :func:`enqueue_stock` add a :class:`gateway.models.ConnectorJob`
in the transaction of the credit or movement (called from
:mod:`gateway.services.credits`), and :func:`deliver_due` (the :class:`ConnectorWorker`)
sends the due jobs on the retry schedule of :mod:`gateway.services.outbox` (back-off,
dead letter after ``connector_max_attempts``, replay from the API).

Every job carries an idempotency key (``credit:<RMA>:<line>:<unit>``,
``stock:<RMA>:<line>:<unit>:<kind>``) that the connector hands to the shop (Shopify's
``@idempotent`` directive) or looks up before creating (WooCommerce), so a retry after a
lost answer never refunds or restocks twice.

Errors a connector raises: :class:`ShopBusy` (429 / 5xx / network: retried, after the
shop's ``Retry-After`` when it gives one) and :class:`ShopRefused` (the shop will not do
it as asked: dead at once, a lead looks); any other error (an answer the connector cannot
read) fails that job alone, retried the same way. Messages never carry credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.models import ConnectorJob, Credit, Rma, RmaLineRecord, RmaUnit, utcnow
from gateway.returns.refunds import RefundError, minor_unit_exponent
from gateway.schemas import OrderDraft
from gateway.services import outbox
from gateway.services.row_sink import add_row
from gateway.services.worker import PeriodicWorker
from gateway.settings import Settings
from protocol.text import nul_places

log = logging.getLogger(__name__)

#: Bounds of what a shop's answer may make us hold or wait.
MAX_RETRY_AFTER_S = 3600.0
MAX_PULLED_ORDERS = 250


class ShopError(Exception):
    """A shop call failed; ``str()`` is safe to store and log (no credentials)."""


class ShopBusy(ShopError):
    """Retry later: rate limited (HTTP 429), a 5xx, a timeout or a network error.

    ``retry_after_s``: the shop's ``Retry-After`` (seconds, bounded), None if not given.
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ShopRefused(ShopError):
    """The shop refuses the call as it is (a 4xx, user errors, an unknown order or SKU)."""


@dataclass(frozen=True)
class RefundPush:
    """One credited unit to refund on the shop's order.

    Amounts in minor units of ``currency``: ``amount_cents`` is the whole refund, of which
    ``tax_cents`` tax and ``shipping_cents`` shipping. ``key`` is the idempotency key.
    """

    key: str
    order_ref: str
    rma_number: str
    line_no: int
    unit_no: int
    sku: str
    quantity: int
    amount_cents: int
    tax_cents: int
    shipping_cents: int
    currency: str

    @property
    def note(self) -> str:
        """Text the shop shows with the refund (names the RMA and the idempotency key)."""
        return f"RMA {self.rma_number} line {self.line_no} unit {self.unit_no} [rs:{self.key}]"


@dataclass(frozen=True)
class StockPush:
    """One stock movement: ``quantity`` units of ``sku`` into (negative: out of) ``location``."""

    key: str
    sku: str
    location: str
    quantity: int
    kind: str
    rma_number: str


class ShopConnector(Protocol):
    """One shop back-end. Implementations must be idempotent per ``key`` on the shop side.

    Raise :class:`ShopBusy` to retry, :class:`ShopRefused` to give up.
    """

    name: str

    def pull_orders(self, *, limit: int = 50) -> list[OrderDraft]:
        """The shop's most recent orders (at most ``limit``), as drafts to upsert."""
        ...

    def push_refund(self, push: RefundPush) -> str:
        """Refund one unit on its order; return the shop's refund id."""
        ...

    def push_stock(self, push: StockPush) -> str:
        """Apply one stock movement; return the shop's id of the change."""
        ...


def readable_drafts(
    shop: str, items: Any, to_draft: Callable[[dict[str, Any]], OrderDraft], ident: str
) -> list[OrderDraft]:
    """The drafts of a shop's order ``items`` (a JSON list), in order.

    An item that is not a JSON object, that holds a NUL character (U+0000) in any string
    or key (PostgreSQL cannot store it and stations refuse an announcement carrying it:
    :mod:`protocol.text`), or that ``to_draft`` cannot read is logged (by its ``ident``
    field, and the places of the NUL) and skipped; the other items are kept.
    """
    drafts: list[OrderDraft] = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            log.warning("%s order skipped item=%d error=not a JSON object", shop, index)
            continue
        places = nul_places(item, [])
        if places:
            log.warning(
                "%s order skipped %s=%r error=NUL character (U+0000) at %s",
                shop,
                ident,
                item.get(ident),
                ", ".join(".".join(map(str, loc)) for loc in places),
            )
            continue
        try:
            drafts.append(to_draft(item))
        except (
            ValidationError,
            RefundError,
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
        ) as exc:
            log.warning("%s order skipped %s=%r error=%s", shop, ident, item.get(ident), exc)
    return drafts


def money_text(cents: int, currency: str) -> str:
    """Minor units as the shop's decimal string: ``money_text(1250, "EUR") == "12.50"``."""
    exponent = minor_unit_exponent(currency)
    return f"{Decimal(cents).scaleb(-exponent):.{exponent}f}"


def retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds form), bounded; None if absent or a date."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def takes_location(settings: Settings, name: str, location: str) -> bool:
    """True when the shop ``name`` counts our stock ``location`` (its movements are pushed).

    Shopify: a location mapped in ``shopify_locations``; WooCommerce: one of
    ``woocommerce_stock_locations`` (its one ``stock_quantity`` per product).
    """
    if name == "shopify":
        return location in settings.shopify_locations
    return location in settings.woocommerce_stock_locations


# -- the queue ----------------------------------------------------------------------------


def _add(
    session: Session, kind: str, key: str, data: dict[str, Any], now: datetime, names: Sequence[str]
) -> None:
    for name in names:
        add_row(
            session,
            ConnectorJob,
            connector=name,
            kind=kind,
            key=key,
            payload=data,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            last_error="",
            shop_ref="",
            created_at=now,
        )


def enqueue_credit(
    session: Session,
    settings: Settings,
    rma: Rma,
    line: RmaLineRecord,
    credit: Credit,
    *,
    now: datetime,
) -> None:
    """Queue a refund of ``credit`` for every configured connector (same transaction).

    Only ``refund`` credits of a positive amount go to the shop (store credit and
    exchanges are the shop's own business); a no-op without connectors.
    """
    if not settings.connectors or credit.kind != "refund" or credit.amount_cents <= 0:
        return
    key = f"credit:{rma.number}:{line.line_no}:{credit.unit_no}"
    push = RefundPush(
        key=key,
        order_ref=rma.order_ref,
        rma_number=rma.number,
        line_no=line.line_no,
        unit_no=credit.unit_no,
        sku=credit.sku,
        quantity=credit.quantity,
        amount_cents=credit.amount_cents,
        tax_cents=credit.tax_refund_cents,
        shipping_cents=credit.shipping_refund_cents,
        currency=credit.currency,
    )
    _add(session, "refund", key, push.__dict__, now, list(settings.connectors))


def enqueue_stock(
    session: Session,
    settings: Settings,
    rma: Rma,
    line: RmaLineRecord,
    unit: RmaUnit,
    location: str,
    *,
    quantity: int,
    kind: str,
    now: datetime,
) -> None:
    """Queue a stock movement for every connector that counts ``location`` (same transaction)."""
    if not settings.connectors:
        return
    key = f"stock:{rma.number}:{line.line_no}:{unit.unit_no}:{kind}"
    push = StockPush(key, line.sku, location, quantity, kind, rma.number)
    names = [n for n in settings.connectors if takes_location(settings, n, location)]
    _add(session, "stock", key, push.__dict__, now, names)


def deliver_due(
    session: Session,
    settings: Settings,
    connectors: Mapping[str, ShopConnector],
    *,
    now: datetime | None = None,
    limit: int = 20,
) -> int:
    """One round of :func:`deliver_round`; return how many jobs were done."""
    return deliver_round(session, settings, connectors, now=now, limit=limit).delivered


def deliver_round(
    session: Session,
    settings: Settings,
    connectors: Mapping[str, ShopConnector],
    *,
    now: datetime | None = None,
    limit: int = 20,
) -> outbox.DeliveryRound:
    """Send the pending jobs due at ``now`` (oldest first, at most ``limit``); commit.

    On PostgreSQL the due rows are claimed ``FOR UPDATE SKIP LOCKED`` until the commit
    (replicas never send one twice at once). A :class:`ShopBusy` schedules a retry no
    sooner than the shop's ``Retry-After``; a :class:`ShopRefused` (or a job whose
    connector is not configured) is dead at once; any other error of the connector (an
    answer it cannot read) is the job's failure, retried like a busy shop's, and the round
    goes on with the other jobs.
    """
    now = now or utcnow()
    stmt = (
        select(ConnectorJob)
        .where(ConnectorJob.status == "pending", ConnectorJob.next_attempt_at <= now)
        .order_by(ConnectorJob.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    done = 0
    due = session.scalars(stmt).all()
    for job in due:
        job.attempts += 1
        wait: float | None = None
        permanent = False
        try:
            connector = connectors.get(job.connector)
            if connector is None:
                raise ShopRefused(f"connector {job.connector!r} is not configured")
            if job.kind == "refund":
                job.shop_ref = connector.push_refund(RefundPush(**job.payload))[:255]
            else:
                job.shop_ref = connector.push_stock(StockPush(**job.payload))[:255]
        except ShopBusy as exc:
            error, wait = str(exc), exc.retry_after_s
        except ShopRefused as exc:
            error, permanent = str(exc), True
        except Exception as exc:  # an answer the connector cannot read, or its own fault
            # the job's failure, retried and dead after the limit like a busy shop: one
            # odd answer must not roll back the round and stop every job queued behind it
            # (the push's idempotency key makes a retry after a push that went out safe)
            log.exception("connector job failed id=%d connector=%s", job.id, job.connector)
            error = f"{type(exc).__name__}: {exc}"[:500]
        else:
            job.status, job.done_at, job.last_error = "done", now, ""
            done += 1
            continue
        dead = outbox.record_failure(
            job,
            error,
            now=now,
            first_backoff_s=settings.connector_backoff_s,
            max_attempts=settings.connector_max_attempts,
            permanent=permanent,
        )
        if dead:
            log.warning(
                "connector job dead id=%d connector=%s kind=%s key=%s error=%s",
                *(job.id, job.connector, job.kind, job.key, error),
            )
        elif wait is not None:
            job.next_attempt_at = max(job.next_attempt_at, now + timedelta(seconds=wait))
    session.commit()
    return outbox.DeliveryRound(claimed=len(due), delivered=done, limit=limit)


def list_jobs(
    session: Session,
    *,
    status: str | None = None,
    limit: int = 100,
    sites: frozenset[str] | None = None,
) -> list[ConnectorJob]:
    """Connector jobs (``status`` filter: pending, done, dead), newest first.

    ``sites``: only the jobs of these sites' RMAs (the payload's ``rma_number``; None:
    every site).
    """
    stmt = select(ConnectorJob).order_by(ConnectorJob.id.desc()).limit(limit)
    if sites is not None:
        theirs = select(Rma.number).where(Rma.site.in_(sorted(sites)))
        stmt = stmt.where(ConnectorJob.payload["rma_number"].as_string().in_(theirs))
    if status is not None:
        stmt = stmt.where(ConnectorJob.status == status)
    return list(session.scalars(stmt))


def job_site(session: Session, job: ConnectorJob) -> str | None:
    """The site of the RMA the job is about (None: no RMA, or an unknown one)."""
    number = (job.payload or {}).get("rma_number")
    if not isinstance(number, str):
        return None
    return session.scalar(select(Rma.site).where(Rma.number == number))


def replay(session: Session, job: ConnectorJob, *, now: datetime | None = None) -> None:
    """Put a dead job back in the queue with a fresh attempt budget; commit.

    Its idempotency key is unchanged, so the shop still does it at most once.

    Raises:
        gateway.services.outbox.NotReplayable: when it is not dead.
    """
    outbox.replay(job, what=f"connector job {job.id}", now=now or utcnow())
    session.commit()


class ConnectorWorker(PeriodicWorker):
    """Background thread that sends due connector jobs every ``settings.connector_poll_s``.

    ``yield_to``: see :class:`gateway.services.worker.PeriodicWorker` (at most
    ``settings.deliveries_max_defer_s`` between two rounds while the ingest is behind).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        connectors: Mapping[str, ShopConnector],
        yield_to: Callable[[], bool] | None = None,
    ) -> None:
        def job() -> bool:
            with sessions() as session:
                return deliver_round(session, settings, connectors).full

        super().__init__(
            "connectors",
            settings.connector_poll_s,
            job,
            yield_to=yield_to,
            max_defer_s=settings.deliveries_max_defer_s,
        )
