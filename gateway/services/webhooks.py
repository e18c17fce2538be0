"""Outbound webhooks: a persisted outbox, HMAC-signed POSTs, backoff, dead letters.

Events (``rma.state_changed``, ``credit.issued``, ``stock.moved``) are added to the outbox
in the same transaction as the change they describe, so none is lost or sent for a change
that was rolled back. :func:`deliver_due` POSTs the due ones as JSON with the headers

- ``X-RS-Event``: the event type; ``X-RS-Delivery``: the delivery id (receivers dedupe on it);
- ``X-RS-Timestamp``: Unix seconds; ``X-RS-Signature``: ``sha256=`` + hex
  HMAC-SHA256(the endpoint's own secret, ``"{timestamp}.{body}"``), see :func:`sign`; after
  a rotation also ``X-RS-Signature-Previous`` with the old secret
  (:mod:`gateway.services.webhook_endpoints`).

A non-2xx answer or a network error schedules the next attempt after
``backoff_s * 2**(attempts-1)`` seconds (capped at one hour); after ``max_attempts`` the
delivery is ``dead`` and waits for a lead to replay it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.models import WebhookDelivery, WebhookEndpoint, utcnow
from gateway.services import outbox
from gateway.services.outbox import NotReplayable
from gateway.services.row_sink import FanOut, add_row, sink_of
from gateway.services.webhook_endpoints import active_endpoints, sign, signature_headers
from gateway.services.worker import PeriodicWorker
from gateway.settings import Settings

log = logging.getLogger(__name__)


__all__ = [
    "NotReplayable",
    "backoff_s",
    "deliver_due",
    "enqueue",
    "list_deliveries",
    "replay",
    "sign",
]


#: ``session.info`` key of the active endpoints a caller read for its whole transaction
ENDPOINTS_KEY = "webhooks.active_endpoints"


def enqueue(
    session: Session,
    settings: Settings,
    event_type: str,
    data: dict[str, Any],
    *,
    now: datetime | None = None,
    site: str | None = None,
) -> None:
    """Add an outbound event, due ``now``, for every active endpoint, to the transaction.

    ``site``: the site it happened at (the message's ``site``; default the gateway's).

    A no-op without endpoints. The endpoints are read once per call, unless the caller
    read them for its whole transaction (:data:`ENDPOINTS_KEY` in ``session.info``, as
    the batched event ingestion does). With a row sink open and no endpoints read, the
    sink writes one delivery per endpoint active when it writes (``INSERT ... SELECT``
    from the endpoints: no read of them first), as an RMA's creation does.
    """
    endpoints = session.info.get(ENDPOINTS_KEY)
    values: dict[str, Any] = {
        "event_type": event_type,
        "payload": {"type": event_type, "site": site or settings.site, "data": data},
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now or utcnow(),
        "created_at": now or utcnow(),
    }
    sink = sink_of(session)
    if endpoints is None and sink is not None:
        sink.add_fan_out(WebhookDelivery, values, _PER_ACTIVE_ENDPOINT)
        return
    for endpoint in active_endpoints(session) if endpoints is None else endpoints:
        add_row(session, WebhookDelivery, **values, url=endpoint.url, endpoint_id=endpoint.id)


#: a delivery's ``url`` and ``endpoint_id``, one per active endpoint, by id (as
#: :func:`gateway.services.webhook_endpoints.active_endpoints` lists them)
_PER_ACTIVE_ENDPOINT = FanOut(
    select(WebhookEndpoint.url, WebhookEndpoint.id)
    .where(WebhookEndpoint.active.is_(True))
    .order_by(WebhookEndpoint.id),
    ("url", "endpoint_id"),
)


def backoff_s(settings: Settings, attempts: int) -> float:
    """Delay before the next attempt after ``attempts`` failures (exponential, capped)."""
    return outbox.backoff_s(settings.webhook_backoff_s, attempts)


def deliver_due(
    session: Session,
    settings: Settings,
    client: httpx.Client,
    *,
    now: datetime | None = None,
    limit: int = 50,
    concurrency: int | None = None,
) -> int:
    """One round of :func:`deliver_round`; return how many were sent."""
    return deliver_round(
        session, settings, client, now=now, limit=limit, concurrency=concurrency
    ).delivered


def deliver_round(
    session: Session,
    settings: Settings,
    client: httpx.Client,
    *,
    now: datetime | None = None,
    limit: int = 50,
    concurrency: int | None = None,
) -> outbox.DeliveryRound:
    """Attempt the pending deliveries due at ``now``, oldest first, at most ``limit``; commit.

    Up to ``concurrency`` (default ``settings.webhook_concurrency``) POSTs are in flight at
    once (``client`` is shared by the threads; the rows are read and booked in the
    caller's thread only), so one slow or unreachable endpoint holds one of them for its
    timeout, not the round, and the round takes about ``limit / concurrency`` round trips.

    On PostgreSQL the due rows are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``
    until the commit, so several gateway replicas running this at once each deliver a
    different row and none twice. (SQLite serves one gateway process.)
    """
    now = now or utcnow()
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    due = session.scalars(stmt).all()
    ids = sorted({d.endpoint_id for d in due if d.endpoint_id is not None})
    # read once per round (and kept referenced: the identity map holds objects weakly)
    endpoints = (
        {
            e.id: e
            for e in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.id.in_(ids)))
        }
        if ids
        else {}
    )
    posts: list[_Post] = []
    for delivery in due:
        body = json.dumps(
            {**delivery.payload, "delivery_id": delivery.id}, separators=(",", ":")
        ).encode()
        ts = int(now.timestamp())
        endpoint = endpoints.get(delivery.endpoint_id) if delivery.endpoint_id else None
        signatures = signature_headers(endpoint, ts, body, now)
        headers = {
            "Content-Type": "application/json",
            "X-RS-Event": delivery.event_type,
            "X-RS-Delivery": str(delivery.id),
            "X-RS-Timestamp": str(ts),
            **(signatures or {}),
        }
        delivery.attempts += 1
        posts.append(_Post(delivery.url, body, headers, signed=signatures is not None))
    workers = min(concurrency or settings.webhook_concurrency, len(posts))
    if workers > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="webhook-post") as pool:
            errors = list(pool.map(lambda post: post.send(client), posts))
    else:
        errors = [post.send(client) for post in posts]
    sent = 0
    for delivery, error in zip(due, errors, strict=True):
        if not error:
            delivery.status = "delivered"
            delivery.delivered_at = now
            delivery.last_error = ""
            sent += 1
        elif outbox.record_failure(
            delivery,
            error,
            now=now,
            first_backoff_s=settings.webhook_backoff_s,
            max_attempts=settings.webhook_max_attempts,
        ):
            log.warning(
                "webhook dead id=%d type=%s error=%s", delivery.id, delivery.event_type, error
            )
    session.commit()
    return outbox.DeliveryRound(claimed=len(due), delivered=sent, limit=limit)


class _Post:
    """One webhook POST of a round, built in the caller's thread (no ORM object inside)."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str], *, signed: bool) -> None:
        self.url, self.body, self.headers, self.signed = url, body, headers, signed

    def send(self, client: httpx.Client) -> str:
        """POST it; return the error ("" when the endpoint answered 2xx)."""
        try:
            if not self.signed:  # never sent unsigned
                raise httpx.RequestError("its webhook endpoint no longer exists")
            response = client.post(self.url, content=self.body, headers=self.headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # e.g. httpx.InvalidURL (no HTTPError): this one fails
            log.exception("webhook post failed url=%s", self.url)  # not the whole round
            return f"{type(exc).__name__}: {exc}"[:500]
        return "" if response.is_success else f"HTTP {response.status_code}"


def list_deliveries(
    session: Session,
    *,
    status: str | None = None,
    limit: int = 100,
    sites: frozenset[str] | None = None,
) -> list[WebhookDelivery]:
    """Return deliveries (``status`` filter: pending, delivered, dead), newest first.

    ``sites``: only deliveries of these sites (the message's ``site``; None: every site).
    """
    stmt = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if sites is not None:
        stmt = stmt.where(WebhookDelivery.payload["site"].as_string().in_(sorted(sites)))
    return list(session.scalars(stmt))


def replay(session: Session, delivery: WebhookDelivery, *, now: datetime | None = None) -> None:
    """Put a dead delivery back in the queue with a fresh attempt budget; commit.

    Raises:
        NotReplayable: when it is not dead.
    """
    outbox.replay(delivery, what=f"delivery {delivery.id}", now=now or utcnow())
    session.commit()


class WebhookWorker(PeriodicWorker):
    """Background thread that delivers due webhooks every ``settings.webhook_poll_s``.

    ``leader``, ``yield_to``: see :class:`gateway.services.worker.PeriodicWorker` (at most
    ``settings.deliveries_max_defer_s`` between two rounds while the ingest is behind).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        client: httpx.Client,
        leader: Callable[[], bool] | None = None,
        yield_to: Callable[[], bool] | None = None,
    ) -> None:
        def job() -> bool:
            with sessions() as session:
                return deliver_round(session, settings, client).full

        super().__init__(
            "webhooks",
            settings.webhook_poll_s,
            job,
            leader,
            yield_to=yield_to,
            max_defer_s=settings.deliveries_max_defer_s,
        )
