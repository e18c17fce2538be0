"""Customer e-mails against a real local SMTP server (aiosmtpd): once, in the customer's
language, retried through an outage, dead after the limit, never twice after a restart."""

from __future__ import annotations

import email
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import ValidationError
from sqlalchemy import select

from gateway.db import Database
from gateway.models import Credit, Notification, Rma
from gateway.schemas import OrderDraft, RmaDraft
from gateway.services import notifications
from gateway.services.credits import apply_parcel
from gateway.services.notifications import (
    CLAIM_S,
    NotificationWorker,
    SmtpTransport,
    deliver_due,
    enqueue_notification,
)
from gateway.services.orders import create_order
from gateway.services.outbox import NotReplayable
from gateway.services.revisions import ensure_site
from gateway.services.rmas import create_rma, transition_rma
from gateway.settings import Settings
from protocol import ParcelEvent
from tests.gateway.conftest import parcel_for

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PASSWORD = "s3cret-Passw0rd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Inbox:
    """What the SMTP server accepted, and the logins it saw."""

    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=default_policy)
        with self.lock:
            self.messages.append(msg)  # type: ignore[arg-type]
            self.recipients.append(list(envelope.rcpt_tos))
        return "250 2.0.0 queued"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        # handled=False: the server answers (235, or 535 on a wrong password) itself
        return AuthResult(success=(login, password) == ("shop", PASSWORD), handled=False)


class SmtpServer:
    """A local aiosmtpd server on ``port`` that can be started late and stopped."""

    def __init__(self, port: int, inbox: Inbox, *, auth: bool = False) -> None:
        self.port, self.inbox = port, inbox
        kwargs: dict[str, Any] = {}
        if auth:
            kwargs = {"authenticator": inbox.authenticate, "auth_require_tls": False}
        self.controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def smtp(inbox: Inbox) -> Iterator[SmtpServer]:
    server = SmtpServer(free_port(), inbox).start()
    yield server
    server.stop()


def settings_for(port: int, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "site": "s1",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_from": "Maison Exemple <retours@maison.example>",
        "smtp_timeout_s": 5,
        "shop_name": "Maison Exemple",
        "notification_backoff_s": 60,
        "notification_max_attempts": 3,
        **over,
    }
    return Settings(**values)


def make_rma(
    db: Database,
    settings: Settings,
    ref: str = "ORD-1",
    quantity: int = 1,
    *,
    mail: bool = False,
    **customer: str,
) -> Rma:
    """An authorised RMA; ``mail`` False creates it without SMTP (its e-mail not queued)."""
    contact = {
        "customer": "Zoé Durand",
        "customer_email": "Zoe@Example.FR",
        "customer_language": "fr-FR",
        **customer,
    }
    with db.session() as s:
        ensure_site(s, settings.site)
        create_order(
            s,
            OrderDraft(
                order_ref=ref,
                currency="EUR",
                lines=[
                    {
                        "sku": "SHIRT-M",
                        "name": "Chemise en lin",
                        "ordered_quantity": quantity,
                        "delivered_quantity": quantity,
                        "unit_price_cents": 2990,
                    }
                ],
                **contact,
            ),
        )
        draft = RmaDraft(
            order_ref=ref,
            reason="size",
            resolution="refund",
            lines=[{"sku": "SHIRT-M", "quantity": quantity}],
        )
        quiet = settings.model_copy(update={"smtp_host": None})
        return create_rma(s, settings if mail else quiet, draft, now=T0)


def enqueue(db: Database, settings: Settings, number: str, kind: str, **kw: Any) -> Notification:
    with db.session() as s:
        rma = s.scalar(select(Rma).where(Rma.number == number))
        assert rma is not None
        row = enqueue_notification(s, settings, rma, kind, now=T0, **kw)  # type: ignore[arg-type]
        assert row is not None
        s.commit()
        return row


def deliver(db: Database, settings: Settings, now: datetime = T0) -> int:
    with db.session() as s, SmtpTransport(settings) as transport:
        return deliver_due(s, settings, transport, now=now)


def rows(db: Database) -> list[Notification]:
    with db.session() as s:
        return list(s.scalars(select(Notification).order_by(Notification.id)))


def test_authorised_email_arrives_once_in_french_with_its_label(
    db: Database, smtp: SmtpServer, inbox: Inbox
) -> None:
    settings = settings_for(smtp.port)
    rma = make_rma(db, settings)
    first = enqueue(db, settings, rma.number, "return_authorised")
    again = enqueue(db, settings, rma.number, "return_authorised")  # the same event: no-op
    assert again.id == first.id
    assert deliver(db, settings) == 1
    assert deliver(db, settings, T0 + timedelta(hours=2)) == 0
    (msg,) = inbox.messages
    assert inbox.recipients == [["zoe@example.fr"]]
    assert msg["Subject"] == f"Votre retour {rma.number} est autorisé"
    assert str(msg["To"]) == "Zoé Durand <zoe@example.fr>"
    assert str(msg["From"]) == "Maison Exemple <retours@maison.example>"
    assert msg["Message-ID"] == first.message_id
    assert first.message_id.endswith("@maison.example>")
    assert (msg["Content-Language"], msg["Auto-Submitted"]) == ("fr", "auto-generated")
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content().replace("\r\n", "\n")
    assert text.startswith("Bonjour Zoé Durand,\n\n")
    assert f"Votre retour {rma.number} est autorisé." in text
    assert "Imprimez l'étiquette jointe et collez-la sur le colis." in text
    assert "1 × Chemise en lin" in text
    assert f"Retour {rma.number}, commande ORD-1" in text
    html = msg.get_body(preferencelist=("html",))
    assert html is not None
    assert f"<strong>Votre retour {rma.number} est autorisé.</strong>" in html.get_content()
    (label,) = [part for part in msg.iter_attachments()]
    assert label.get_filename() == f"{rma.number}.pdf"
    assert label.get_content().startswith(b"%PDF")
    (row,) = rows(db)
    assert (row.status, row.attempts, row.sent_at, row.language) == ("sent", 1, T0, "fr")


def test_english_is_the_fallback_and_html_escapes_the_name(
    db: Database, smtp: SmtpServer, inbox: Inbox
) -> None:
    settings = settings_for(smtp.port)
    rma = make_rma(db, settings, customer="Ann <b>Lee</b>", customer_language="de")
    enqueue(db, settings, rma.number, "return_received")
    assert deliver(db, settings) == 1
    (msg,) = inbox.messages
    assert msg["Subject"] == f"We have received your return {rma.number}"
    html = msg.get_body(preferencelist=("html",))
    assert html is not None
    assert "Hello Ann &lt;b&gt;Lee&lt;/b&gt;," in html.get_content()
    assert list(msg.iter_attachments()) == []


def test_refund_issued_says_the_credited_amount(
    db: Database, smtp: SmtpServer, inbox: Inbox
) -> None:
    settings = settings_for(smtp.port)
    rma = make_rma(db, settings)
    with db.session() as s:
        line_id = s.scalar(select(Rma).where(Rma.number == rma.number)).lines[0].id  # type: ignore[union-attr]
        s.add(
            Credit(
                rma_line_id=line_id,
                rma_number=rma.number,
                sku="SHIRT-M",
                category="apparel",
                kind="refund",
                grade="restock",
                quantity=1,
                paid_cents=2990,
                amount_cents=2990,
                restocking_fee_cents=0,
                recovered_value_cents=2990,
                shipping_cost_cents=0,
                currency="EUR",
                source="test",
            )
        )
        s.commit()
    enqueue(db, settings, rma.number, "refund_issued")
    assert deliver(db, settings) == 1
    (msg,) = inbox.messages
    assert msg["Subject"] == f"Votre remboursement pour le retour {rma.number}"
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    assert (
        f"Nous vous avons remboursé 29,90\u00a0€ pour le retour {rma.number} sur votre moyen "
        "de paiement d'origine."
    ) in body.get_content()


def one_unit(rma: Rma, unit: int) -> ParcelEvent:
    """A parcel of ``rma``'s first line's unit ``unit`` alone, proved, restocked."""
    whole = parcel_for(rma, "restock")
    return whole.model_copy(update={"units": (whole.units[unit - 1],), "parcel_id": unit})


def test_the_writer_path_mails_authorised_received_and_refunded_once_each(
    db: Database, smtp: SmtpServer, inbox: Inbox
) -> None:
    settings = settings_for(smtp.port)
    rma = make_rma(db, settings, quantity=2, mail=True)  # created authorised: one e-mail queued
    assert [(r.kind, r.status) for r in rows(db)] == [("return_authorised", "pending")]
    for unit in (1, 2):  # partly received, then received, graded and refunded
        with db.session() as s:
            stored = s.scalar(select(Rma).where(Rma.number == rma.number))
            assert stored is not None
            apply_parcel(s, settings, stored, one_unit(stored, unit), actor="station:st1", now=T0)
            s.commit()
    with db.session() as s:  # a later change (closing) mails nothing more
        stored = s.scalar(select(Rma).where(Rma.number == rma.number))
        assert stored is not None and stored.state == "refunded"
        transition_rma(s, settings, stored, "close", actor="user:lead", now=T0)
    assert deliver(db, settings) == 3
    assert [m["Subject"] for m in inbox.messages] == [
        f"Votre retour {rma.number} est autorisé",
        f"Nous avons reçu votre retour {rma.number}",
        f"Votre remboursement pour le retour {rma.number}",
    ]
    assert inbox.recipients == [["zoe@example.fr"]] * 3
    refund = inbox.messages[2].get_body(preferencelist=("plain",))
    assert refund is not None
    assert f"Nous vous avons remboursé 59,80\u00a0€ pour le retour {rma.number}" in (
        refund.get_content()
    )
    assert [(r.kind, r.status, r.language) for r in rows(db)] == [
        ("return_authorised", "sent", "fr"),
        ("return_received", "sent", "fr"),
        ("refund_issued", "sent", "fr"),
    ]


def test_server_down_is_retried_later_then_delivered_once(db: Database, inbox: Inbox) -> None:
    port = free_port()
    settings = settings_for(port)
    rma = make_rma(db, settings)
    enqueue(db, settings, rma.number, "return_authorised")
    assert deliver(db, settings) == 0
    (row,) = rows(db)
    assert (row.status, row.attempts, row.next_attempt_at) == (
        "pending",
        1,
        T0 + timedelta(seconds=60),
    )
    assert row.last_error.startswith("ConnectionRefusedError")
    server = SmtpServer(port, inbox).start()
    try:
        assert deliver(db, settings, T0 + timedelta(seconds=59)) == 0  # not due yet
        assert inbox.messages == []
        assert deliver(db, settings, T0 + timedelta(seconds=60)) == 1
        assert deliver(db, settings, T0 + timedelta(hours=5)) == 0
    finally:
        server.stop()
    assert len(inbox.messages) == 1
    (row,) = rows(db)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, "")


def test_dead_after_the_limit_then_replayed_once(db: Database, inbox: Inbox) -> None:
    port = free_port()
    settings = settings_for(port, notification_max_attempts=2)
    rma = make_rma(db, settings)
    enqueue(db, settings, rma.number, "return_received")
    deliver(db, settings)
    deliver(db, settings, T0 + timedelta(seconds=60))
    (row,) = rows(db)
    assert (row.status, row.attempts) == ("dead", 2)
    assert deliver(db, settings, T0 + timedelta(days=1)) == 0
    with db.session() as s:
        stored = s.get(Notification, row.id)
        assert stored is not None
        notifications.replay(s, stored, now=T0 + timedelta(days=1))
        with pytest.raises(NotReplayable):
            notifications.replay(s, stored)
    server = SmtpServer(port, inbox).start()
    try:
        assert deliver(db, settings, T0 + timedelta(days=1)) == 1
    finally:
        server.stop()
    assert len(inbox.messages) == 1


def test_a_recipient_refused_for_good_is_dead_at_once_and_others_still_go(
    db: Database, smtp: SmtpServer, inbox: Inbox
) -> None:
    settings = settings_for(smtp.port)
    gone = make_rma(db, settings, "ORD-1", customer_email="gone@example.fr")
    fine = make_rma(db, settings, "ORD-2", customer_email="fine@example.fr")
    inbox.refuse.add("gone@example.fr")
    enqueue(db, settings, gone.number, "return_received")
    enqueue(db, settings, fine.number, "return_received")
    assert deliver(db, settings) == 1
    dead, sent = rows(db)
    assert (dead.status, dead.attempts) == ("dead", 1)
    assert dead.last_error == "recipient refused: 550 b'5.1.1 mailbox unavailable'"
    assert sent.status == "sent"
    assert inbox.recipients == [["fine@example.fr"]]


def test_never_sent_twice_after_a_worker_restart(
    anydb: Database, smtp: SmtpServer, inbox: Inbox
) -> None:
    settings = settings_for(smtp.port, notification_poll_s=0.05)
    rma = make_rma(anydb, settings)
    with anydb.session() as s:
        stored = s.scalar(select(Rma).where(Rma.number == rma.number))
        assert stored is not None
        enqueue_notification(s, settings, stored, "return_received")
        s.commit()
    first = NotificationWorker(anydb.sessions, settings)
    first.start()
    try:
        deadline = time.monotonic() + 10
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        first.stop()
    second = NotificationWorker(anydb.sessions, settings)
    second.start()
    time.sleep(0.5)  # ten rounds of the restarted worker
    second.stop()
    assert len(inbox.messages) == 1
    # a worker that died holding a claim: the row waits out the claim, then goes once
    with anydb.session() as s:
        rma_row = s.scalar(select(Rma).where(Rma.number == rma.number))
        assert rma_row is not None
        row = enqueue_notification(s, settings, rma_row, "return_authorised", now=T0)
        assert row is not None
        row.status, row.attempts, row.claimed_until = "sending", 1, T0 + timedelta(seconds=CLAIM_S)
        s.commit()
    assert deliver(anydb, settings, T0 + timedelta(seconds=CLAIM_S - 1)) == 0
    assert deliver(anydb, settings, T0 + timedelta(seconds=CLAIM_S)) == 1
    assert deliver(anydb, settings, T0 + timedelta(seconds=3 * CLAIM_S)) == 0
    assert len(inbox.messages) == 2


def test_two_workers_share_the_queue_without_sending_twice(
    anydb: Database, smtp: SmtpServer, inbox: Inbox
) -> None:
    settings = settings_for(smtp.port)
    for n in range(12):
        rma = make_rma(anydb, settings, f"ORD-{n}", customer_email=f"c{n}@example.fr")
        enqueue(anydb, settings, rma.number, "return_received")
    start = threading.Barrier(2)
    counts: list[int] = []

    def worker() -> None:
        start.wait()
        counts.append(deliver(anydb, settings))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(counts) == 12
    ids = [msg["Message-ID"] for msg in inbox.messages]
    assert len(ids) == len(set(ids)) == 12
    assert {row.status for row in rows(anydb)} == {"sent"}


def test_login_is_used_and_the_password_never_logged(
    db: Database, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    server = SmtpServer(free_port(), inbox, auth=True).start()
    caplog.set_level(logging.DEBUG)
    try:
        good = settings_for(server.port, smtp_username="shop", smtp_password=PASSWORD)
        bad = settings_for(server.port, smtp_username="shop", smtp_password="wrong-" + PASSWORD)
        rma = make_rma(db, good)
        enqueue(db, good, rma.number, "return_received")
        assert deliver(db, bad) == 0
        (row,) = rows(db)
        assert row.last_error.startswith("SMTPAuthenticationError: 535")
        assert deliver(db, good, T0 + timedelta(seconds=60)) == 1
    finally:
        server.stop()
    # smtplib tries each mechanism the server offers (PLAIN, LOGIN) before giving up
    assert inbox.logins == [("shop", "wrong-" + PASSWORD)] * 2 + [("shop", PASSWORD)]
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(good) and PASSWORD not in str(good.model_dump())


def test_nothing_is_written_without_smtp_a_kind_or_an_address(db: Database) -> None:
    settings = settings_for(25)
    rma = make_rma(db, settings, customer_email="")
    with db.session() as s:
        stored = s.scalar(select(Rma).where(Rma.number == rma.number))
        assert stored is not None
        assert enqueue_notification(s, settings, stored, "return_received") is None
        stored.customer_email = "ann@example.fr"
        no_smtp = settings.model_copy(update={"smtp_host": None})
        assert enqueue_notification(s, no_smtp, stored, "return_received") is None
        no_refunds = settings.model_copy(update={"notification_kinds": ["return_received"]})
        assert enqueue_notification(s, no_refunds, stored, "refund_issued") is None
        with pytest.raises(ValueError, match="unknown notification kind 'shipped'"):
            enqueue_notification(s, settings, stored, "shipped")  # type: ignore[arg-type]
        s.rollback()


def test_settings_refuse_a_clear_text_login_in_prod_and_a_bad_sender() -> None:
    prod = {"env": "prod", "secret_key": secrets.token_urlsafe(32), "smtp_host": "mail.example"}
    with pytest.raises(ValidationError, match="RS_SMTP_SECURITY=none would send"):
        Settings(**prod, smtp_security="none", smtp_username="shop")
    assert Settings(**prod, smtp_security="starttls", smtp_username="shop").smtp_port == 587
    with pytest.raises(ValidationError, match="is not an address"):
        Settings(smtp_from="Maison Exemple")


@pytest.mark.broker
def test_leads_list_and_replay_dead_emails_over_the_api(client: Any) -> None:
    with client.app.state.db.session() as s:
        s.add(
            Notification(
                rma_number="RMA-9",
                kind="return_received",
                event_key="",
                recipient="ann@example.fr",
                recipient_name="Ann",
                language="en",
                message_id="<x.1@maison.example>",
                subject="We have received your return RMA-9",
                body_text="t",
                body_html="h",
                status="dead",
                attempts=8,
                last_error="recipient refused",
            )
        )
        s.commit()
    listed = client.get("/api/v1/notifications", params={"status": "dead", "rma": "RMA-9"})
    assert listed.status_code == 200
    (row,) = listed.json()["notifications"]
    assert (row["kind"], row["recipient"], row["attempts"]) == (
        "return_received",
        "ann@example.fr",
        8,
    )
    replayed = client.post(f"/api/v1/notifications/{row['id']}/replay")
    assert (replayed.status_code, replayed.json()["status"], replayed.json()["attempts"]) == (
        200,
        "pending",
        0,
    )
    again = client.post(f"/api/v1/notifications/{row['id']}/replay")
    assert again.status_code == 409 and "not dead" in again.json()["detail"]
    assert client.post("/api/v1/notifications/999/replay").status_code == 404
    anonymous = client.get("/api/v1/notifications", headers={"X-API-Key": ""})
    assert anonymous.status_code in (401, 403)
