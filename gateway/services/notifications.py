"""Customer e-mails: "return authorised", "return received", "refund issued".

:func:`enqueue_notification` is called by the RMA writer path inside its transaction: it
renders the e-mail (Jinja2 templates ``mail_templates/{kind}.txt`` and ``.html``, texts from
the gateway's catalogues in the customer's language: the RMA's ``customer_language``
nearest to English or French, else the shop's ``RS_DEFAULT_LANGUAGE``) and stores it in the
``notifications`` outbox with its Message-ID, so a change that is rolled back sends
nothing and a mail server outage loses nothing.

:func:`deliver_due` (run by :class:`NotificationWorker` every ``RS_NOTIFICATION_POLL_S``)
sends the due rows over SMTP (``smtplib``; STARTTLS, implicit TLS or none; login when a
user is set; the password is never logged). A row is *claimed* before it is sent, by one
conditional UPDATE committed first, so two workers (replicas) never send the same row,
and a restarted worker does not send what was sent: it is ``sent``. A claim lasts
:data:`CLAIM_S`; a worker that died holding one leaves the row to be sent again after
that, with the same Message-ID (the only window for a second copy is between the
server's acceptance and our commit). A failure is retried after
``RS_NOTIFICATION_BACKOFF_S * 2**(n-1)`` s (at most 1 h, :mod:`gateway.services.outbox`),
and after ``RS_NOTIFICATION_MAX_ATTEMPTS`` (or at once when the server refuses the
recipient for good, 5xx) the row is ``dead`` until a lead replays it.
"""

from __future__ import annotations

import functools
import logging
import smtplib
import ssl
from collections.abc import Callable
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import jinja2
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.models import Credit, Notification, OrderLine, Rma, utcnow
from gateway.returns.i18n import choose_language, money, translations
from gateway.services import outbox
from gateway.services.labels import LabelError, LabelFontsMissing, render_label
from gateway.services.worker import PeriodicWorker
from gateway.settings import NOTIFICATION_KINDS, NotificationKind, Settings

log = logging.getLogger(__name__)

Kind = NotificationKind
KINDS = NOTIFICATION_KINDS
#: how long a worker owns a claimed row before another may send it (a dead worker's)
CLAIM_S = 300.0
TEMPLATE_DIR = Path(__file__).resolve().parent / "mail_templates"
_N_LINES = 50


@functools.cache
def _environment(lang: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env


def language_of(rma: Rma, settings: Settings) -> str:
    """The catalogue language of ``rma``'s customer (``en``/``fr``), else the shop's."""
    return choose_language(None, None, rma.customer_language, settings.default_language)


def _subject(kind: Kind, rma: Rma, lang: str, resolution: str) -> str:
    _ = translations(lang).gettext
    number = {"number": rma.number}
    if kind == "return_authorised":
        return _("Your return %(number)s is authorized") % number
    if kind == "return_received":
        return _("We have received your return %(number)s") % number
    if resolution == "store_credit":
        return _("Store credit for your return %(number)s") % number
    if resolution == "exchange":
        return _("Your exchange for return %(number)s") % number
    return _("Your refund for return %(number)s") % number


def _credited(session: Session, rma: Rma) -> tuple[int, str]:
    """Credits of ``rma`` so far: total in cents, and their kind when all alike."""
    rows = session.execute(
        select(Credit.kind, func.sum(Credit.amount_cents))
        .where(Credit.rma_number == rma.number)
        .group_by(Credit.kind)
    ).all()
    total = sum(int(amount or 0) for _kind, amount in rows)
    kinds = {kind for kind, _amount in rows}
    return total, (kinds.pop() if len(kinds) == 1 else rma.resolution)


def _lines(session: Session, rma: Rma) -> list[dict[str, Any]]:
    names: dict[int, str] = {}
    ids = [line.order_line_id for line in rma.lines if line.order_line_id is not None]
    if ids:
        query = select(OrderLine.id, OrderLine.name).where(OrderLine.id.in_(ids))
        names = {line_id: name for line_id, name in session.execute(query)}
    return [
        {"sku": line.sku, "quantity": line.quantity, "name": names.get(line.order_line_id or 0)}
        for line in rma.lines[:_N_LINES]
    ]


def _recipient(rma: Rma) -> Address | None:
    try:
        name = " ".join(rma.customer.split())[:128]
        return Address(display_name=name, addr_spec=rma.customer_email)
    except (ValueError, IndexError, TypeError) as exc:
        log.warning("notification skipped rma=%s: bad e-mail address (%s)", rma.number, exc)
        return None


def enqueue_notification(
    session: Session,
    settings: Settings,
    rma: Rma,
    kind: Kind,
    *,
    event_key: str = "",
    now: datetime | None = None,
) -> Notification | None:
    """Add ``kind``'s e-mail to ``rma``'s customer to the caller's transaction; return it.

    Call it in the transaction of the change it announces (the caller commits). Once per
    RMA, kind and ``event_key`` (e.g. a credit id, for a second refund of a partly received
    return): again is a no-op returning the stored row. Nothing is written (None) without
    an SMTP host, for a kind not in ``settings.notification_kinds``, or when the RMA has
    no usable e-mail address.

    Raises:
        ValueError: for an unknown ``kind``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; one of {', '.join(KINDS)}")
    if not settings.smtp_host or kind not in settings.notification_kinds:
        return None
    event_key = event_key[:64]
    stored = session.scalar(
        select(Notification).where(
            Notification.rma_number == rma.number,
            Notification.kind == kind,
            Notification.event_key == event_key,
        )
    )
    if stored is not None:
        return stored
    if not rma.customer_email:
        log.info("notification skipped rma=%s kind=%s: no e-mail address", rma.number, kind)
        return None
    to = _recipient(rma)
    if to is None:
        return None
    lang = language_of(rma, settings)
    amount_cents, resolution = _credited(session, rma)
    subject = _subject(kind, rma, lang, resolution)
    context = {
        "lang": lang,
        "subject": subject,
        "shop_name": settings.shop_name,
        "customer": to.display_name,
        "number": rma.number,
        "order_ref": rma.order_ref,
        "lines": _lines(session, rma),
        "amount": money(amount_cents, rma.currency, lang),
        "resolution": resolution,
        "label_attached": kind == "return_authorised",
    }
    env = _environment(lang)
    _name, sender = parseaddr(settings.smtp_from)
    row = Notification(
        rma_number=rma.number,
        kind=kind,
        event_key=event_key,
        recipient=to.addr_spec,
        recipient_name=to.display_name,
        language=lang,
        message_id=make_msgid(idstring=f"{kind}.{rma.number}", domain=sender.rpartition("@")[2]),
        subject=subject[:255],
        body_text=env.get_template(f"{kind}.txt").render(context),
        body_html=env.get_template(f"{kind}.html").render(context),
        status="pending",
        attempts=0,
        next_attempt_at=now or utcnow(),
        created_at=now or utcnow(),
    )
    session.add(row)
    return row


def build_message(session: Session, settings: Settings, row: Notification) -> EmailMessage:
    """The e-mail of ``row``: text and HTML alternatives; the label PDF when authorised.

    Raises:
        LabelFontsMissing: the label of a "return authorised" e-mail cannot be drawn.
    """
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = Address(display_name=row.recipient_name, addr_spec=row.recipient)
    msg["Subject"] = row.subject
    msg["Message-ID"] = row.message_id
    msg["Date"] = format_datetime(utcnow())
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    msg.set_content(row.body_text)
    msg.add_alternative(row.body_html, subtype="html")
    if row.kind == "return_authorised":
        rma = session.scalar(select(Rma).where(Rma.number == row.rma_number))
        if rma is not None:
            pdf = render_label(
                rma,
                settings.site_address(rma.site),
                lang=row.language,
                carrier=rma.carrier,
                tracking_number=rma.tracking_number,
            )
            msg.add_attachment(
                pdf, maintype="application", subtype="pdf", filename=f"{rma.number}.pdf"
            )
    msg["Content-Language"] = row.language  # after the parts: Content-* headers move down
    return msg


class Transport(Protocol):
    """Sends e-mails on one connection (opened at the first message)."""

    def send(self, msg: EmailMessage) -> None:
        """Hand ``msg`` to the server; raises on refusal or a lost connection."""

    def close(self) -> None:
        """Close the connection (QUIT when it is still up)."""


class SmtpTransport:
    """SMTP client of the settings: STARTTLS / implicit TLS / plain, login when a user is set.

    The TLS context verifies the server's certificate and name (``ssl`` defaults).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        host = s.smtp_host or ""
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.smtp_security == "ssl":
            smtp = smtplib.SMTP_SSL(host, s.smtp_port, timeout=s.smtp_timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(host, s.smtp_port, timeout=s.smtp_timeout_s)
        try:
            if s.smtp_security == "starttls":
                smtp.starttls(context=context)
            if s.smtp_username:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                smtp.login(s.smtp_username, password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, msg: EmailMessage) -> None:
        """Send ``msg`` (connecting first when needed)."""
        if self._smtp is None:
            self._smtp = self._connect()
        self._smtp.send_message(msg)

    def close(self) -> None:
        """QUIT and close; errors on the way out are ignored."""
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()


def _failure(exc: Exception) -> tuple[str, bool, bool]:
    """What went wrong: the error text, whether it is permanent, whether the link is gone.

    Permanent: the server refused this recipient or message for good (5xx); a lost
    connection (or a refused login, an unreachable server) ends the round.
    """
    if isinstance(exc, LabelFontsMissing | LabelError):
        return f"label: {exc}", False, False
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _reply in exc.recipients.values()]
        text = "; ".join(f"{code} {reply!r}" for code, reply in exc.recipients.values())
        return f"recipient refused: {text}", all(code >= 500 for code in codes), False
    if isinstance(exc, smtplib.SMTPDataError):
        return f"message refused: {exc.smtp_code} {exc.smtp_error!r}", exc.smtp_code >= 500, False
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__}: {exc.smtp_code} {exc.smtp_error!r}", False, True
    return f"{type(exc).__name__}: {exc}", False, True


def _due(now: datetime) -> Any:
    return or_(
        and_(Notification.status == "pending", Notification.next_attempt_at <= now),
        and_(Notification.status == "sending", Notification.claimed_until <= now),
    )


def _claim(session: Session, row_id: int, now: datetime) -> bool:
    """Take ``row_id`` for this worker (one conditional UPDATE, committed); False if taken."""
    result = session.execute(
        update(Notification)
        .where(Notification.id == row_id, _due(now))
        .values(
            status="sending",
            claimed_until=now + timedelta(seconds=CLAIM_S),
            attempts=Notification.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(getattr(result, "rowcount", 0) == 1)


def deliver_due(
    session: Session,
    settings: Settings,
    transport: Transport,
    *,
    now: datetime | None = None,
    limit: int = 50,
) -> int:
    """One round of :func:`deliver_round`; return how many e-mails were sent."""
    return deliver_round(session, settings, transport, now=now, limit=limit).delivered


def deliver_round(
    session: Session,
    settings: Settings,
    transport: Transport,
    *,
    now: datetime | None = None,
    limit: int = 50,
) -> outbox.DeliveryRound:
    """Send the e-mails due at ``now`` (oldest first, at most ``limit``).

    Each row is claimed, sent, then booked (``sent``, or a failure with its retry), each
    step committed. A lost connection ends the round after booking its row; a refusal
    of one recipient or message does not.
    """
    now = now or utcnow()
    ids = session.scalars(
        select(Notification.id).where(_due(now)).order_by(Notification.id).limit(limit)
    ).all()
    sent = 0
    for row_id in ids:
        if not _claim(session, row_id, now):
            continue
        row = session.get(Notification, row_id, populate_existing=True)
        if row is None:  # pragma: no cover - rows are never deleted
            continue
        if row.attempts > 1:
            log.info("notification retry id=%d attempt=%d", row.id, row.attempts)
        try:
            transport.send(build_message(session, settings, row))
        except (smtplib.SMTPException, OSError, LabelFontsMissing, LabelError) as exc:
            error, permanent, connection_lost = _failure(exc)
            row.claimed_until = None
            dead = outbox.record_failure(
                row,
                error,
                now=now,
                first_backoff_s=settings.notification_backoff_s,
                max_attempts=settings.notification_max_attempts,
                permanent=permanent,
            )
            session.commit()
            log.warning(
                "notification %s id=%d rma=%s kind=%s attempt=%d server=%s:%d error=%s",
                "dead" if dead else "failed",
                row.id,
                row.rma_number,
                row.kind,
                row.attempts,
                settings.smtp_host,
                settings.smtp_port,
                error,
            )
            if connection_lost:
                transport.close()
                return outbox.DeliveryRound(claimed=0, delivered=sent, limit=limit)  # not full
            continue
        row.status = "sent"
        row.sent_at = now
        row.claimed_until = None
        row.last_error = ""
        session.commit()
        sent += 1
        log.info("notification sent id=%d rma=%s kind=%s", row.id, row.rma_number, row.kind)
    return outbox.DeliveryRound(claimed=len(ids), delivered=sent, limit=limit)


def list_notifications(
    session: Session,
    *,
    status: str | None = None,
    rma_number: str | None = None,
    limit: int = 100,
    sites: frozenset[str] | None = None,
) -> list[Notification]:
    """Notifications, newest first (``status``: pending, sending, sent, dead).

    ``sites``: only the e-mails of these sites' RMAs (None: every site).
    """
    stmt = select(Notification).order_by(Notification.id.desc()).limit(limit)
    if sites is not None:
        theirs = select(Rma.number).where(Rma.site.in_(sorted(sites)))
        stmt = stmt.where(Notification.rma_number.in_(theirs))
    if status is not None:
        stmt = stmt.where(Notification.status == status)
    if rma_number is not None:
        stmt = stmt.where(Notification.rma_number == rma_number)
    return list(session.scalars(stmt))


def replay(session: Session, row: Notification, *, now: datetime | None = None) -> None:
    """Queue a dead e-mail again with a fresh attempt budget; commit.

    Raises:
        gateway.services.outbox.NotReplayable: when it is not dead.
    """
    outbox.replay(row, what=f"notification {row.id}", now=now or utcnow())
    session.commit()


class NotificationWorker(PeriodicWorker):
    """Background thread sending due customer e-mails every ``settings.notification_poll_s``.

    Each round opens at most one SMTP connection and closes it. ``leader``, ``yield_to``:
    see :class:`gateway.services.worker.PeriodicWorker` (at most
    ``settings.deliveries_max_defer_s`` between two rounds while the ingest is behind).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        leader: Callable[[], bool] | None = None,
        yield_to: Callable[[], bool] | None = None,
    ) -> None:
        def job() -> bool:
            with sessions() as session, SmtpTransport(settings) as transport:
                return deliver_round(session, settings, transport).full

        super().__init__(
            "notifications",
            settings.notification_poll_s,
            job,
            leader,
            yield_to=yield_to,
            max_defer_s=settings.deliveries_max_defer_s,
        )
