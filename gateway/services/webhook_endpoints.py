"""Webhook endpoints, each with its own signing secret, and rotation with an overlap window.

No endpoint shares a key with anything else (not ``RS_SECRET_KEY``, not another endpoint),
so a receiver that knows its secret can forge nothing but its own deliveries. The secret
is random (``whsec_`` + 32 bytes, URL-safe base64), stored as it is (the receiver needs the
same value to check the HMAC) and returned only when the endpoint is created or rotated.

Rotation makes a new secret; the old one keeps signing for ``overlap_s`` seconds, so each
delivery then carries two signatures (``X-RS-Signature`` with the new secret,
``X-RS-Signature-Previous`` with the old): the receiver can switch whenever it likes
within the window. ``RS_WEBHOOK_URL`` + ``RS_WEBHOOK_SECRET`` ensure an endpoint named
``default`` at start (a new ``RS_WEBHOOK_SECRET`` rotates it the same way).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.models import WebhookEndpoint, utcnow
from gateway.services.auth import DuplicateName, UnknownName
from gateway.settings import Settings

log = logging.getLogger(__name__)
SECRET_PREFIX = "whsec_"  # a prefix, not a secret  # nosec B105
CONFIGURED = "default"
"""Name of the endpoint that ``RS_WEBHOOK_URL`` ensures."""


def new_secret() -> str:
    """A fresh random signing secret."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return ``sha256=<hex>`` of HMAC-SHA256(secret, ``b"{timestamp}." + body``)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def create_endpoint(
    session: Session, name: str, url: str, *, secret: str | None = None
) -> tuple[str, WebhookEndpoint]:
    """Create an endpoint; commit; return its secret (shown this once) and its record.

    Raises:
        DuplicateName: an endpoint has this name.
    """
    plain = secret or new_secret()
    endpoint = WebhookEndpoint(name=name, url=url, secret=plain, active=True)
    session.add(endpoint)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateName(f"webhook endpoint {name!r} already exists") from exc
    log.info("webhook endpoint created name=%s", name)
    return plain, endpoint


def get_endpoint(session: Session, name: str) -> WebhookEndpoint:
    """The endpoint called ``name``.

    Raises:
        UnknownName: none has this name.
    """
    endpoint = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.name == name))
    if endpoint is None:
        raise UnknownName(f"no webhook endpoint named {name!r}")
    return endpoint


def rotate(
    session: Session,
    name: str,
    overlap_s: float,
    *,
    secret: str | None = None,
    now: datetime | None = None,
) -> tuple[str, WebhookEndpoint]:
    """Give ``name`` a new secret; the old one also signs for ``overlap_s`` s; commit.

    Returns the new secret (shown this once) and the record.

    Raises:
        UnknownName: no such endpoint.
    """
    now = now or utcnow()
    endpoint = get_endpoint(session, name)
    plain = secret or new_secret()
    endpoint.previous_secret = endpoint.secret if overlap_s > 0 else None
    endpoint.previous_until = now + timedelta(seconds=overlap_s) if overlap_s > 0 else None
    endpoint.secret = plain
    endpoint.rotated_at = now
    session.commit()
    log.info("webhook endpoint rotated name=%s overlap_s=%s", name, overlap_s)
    return plain, endpoint


def deactivate(session: Session, name: str) -> WebhookEndpoint:
    """Stop sending to ``name`` (nothing new is queued for it); commit.

    Raises:
        UnknownName: no such endpoint.
    """
    endpoint = get_endpoint(session, name)
    endpoint.active = False
    session.commit()
    return endpoint


#: built once: every RMA change reads it
_ACTIVE = (
    select(WebhookEndpoint).where(WebhookEndpoint.active.is_(True)).order_by(WebhookEndpoint.id)
)


def active_endpoints(session: Session) -> list[WebhookEndpoint]:
    """The endpoints new events are queued for, by id."""
    return list(session.scalars(_ACTIVE))


def ensure_configured(session: Session, settings: Settings) -> None:
    """Make ``RS_WEBHOOK_URL`` / ``RS_WEBHOOK_SECRET`` the ``default`` endpoint (if set)."""
    if not settings.webhook_url or not settings.webhook_secret:
        return
    found = session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.name == CONFIGURED))
    if found is None:
        create_endpoint(session, CONFIGURED, settings.webhook_url, secret=settings.webhook_secret)
        return
    found.url = settings.webhook_url
    found.active = True
    session.commit()
    if found.secret != settings.webhook_secret:
        rotate(
            session,
            CONFIGURED,
            settings.webhook_rotation_overlap_s,
            secret=settings.webhook_secret,
        )


def signature_headers(
    endpoint: WebhookEndpoint | None, timestamp: int, body: bytes, now: datetime
) -> dict[str, str] | None:
    """The signature headers of one delivery attempt, or None when it has no endpoint.

    ``endpoint``: the delivery's endpoint as stored now (None: deleted since). Headers:
    ``X-RS-Signature`` with the endpoint's secret and, within the overlap window after a
    rotation, ``X-RS-Signature-Previous`` with the old one.
    """
    if endpoint is None:
        return None
    headers = {"X-RS-Signature": sign(endpoint.secret, timestamp, body)}
    if endpoint.previous_secret and endpoint.previous_until and endpoint.previous_until > now:
        headers["X-RS-Signature-Previous"] = sign(endpoint.previous_secret, timestamp, body)
    return headers
