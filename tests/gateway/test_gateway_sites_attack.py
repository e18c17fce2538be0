"""Hostile review of site-limited callers: nothing of another site through any endpoint.

A key limited to site B must neither read nor change what belongs to site A: webhook
deliveries (credit amounts, RMA numbers), customers' e-mails, RMAs expired in bulk.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from gateway.db import Database
from gateway.models import Alarm, ConnectorJob, Notification, Rma, Station, StationCommand
from tests.gateway.test_gateway_sites import _body, two  # noqa: F401 (a fixture)


def _key(client: TestClient, name: str, scopes: list[str], site: str) -> dict[str, str]:
    made = client.post("/api/v1/api-keys", json={"name": name, "scopes": scopes, "sites": [site]})
    assert made.status_code == 201, made.text
    return {"X-API-Key": made.json()["key"]}


@pytest.mark.broker
def test_a_key_limited_to_site_b_does_not_expire_site_a_rmas(
    two: tuple[TestClient, str, str],  # noqa: F811
) -> None:
    client, a, b = two
    for number, site in (("R-A1", a), ("R-B1", b)):
        assert client.post("/api/v1/rmas", json=_body(number, site=site)).status_code == 201
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:  # both authorised long ago: overdue
        s.execute(update(Rma).values(updated_at=datetime(2020, 1, 6, 12, tzinfo=UTC)))
        s.commit()
    lead_b = _key(client, "lead-b", ["lead", "read"], b)
    expired = client.post("/api/v1/rmas/expire-overdue", headers=lead_b)
    assert (expired.status_code, expired.json()) == (200, ["R-B1"])
    with db.session() as s:
        states = dict(s.execute(select(Rma.number, Rma.state)).all())
    assert states == {"R-A1": "authorized", "R-B1": "expired"}


@pytest.mark.broker
def test_a_key_limited_to_site_b_reads_no_webhook_delivery_of_site_a(
    two: tuple[TestClient, str, str],  # noqa: F811
) -> None:
    client, a, b = two
    made = client.post(
        "/api/v1/webhooks/endpoints", json={"name": "shop", "url": "http://127.0.0.1:9/hook"}
    )
    assert made.status_code == 201, made.text
    for number, site in (("R-A1", a), ("R-B1", b)):
        assert client.post("/api/v1/rmas", json=_body(number, site=site)).status_code == 201
    every = client.get("/api/v1/webhooks/deliveries").json()["deliveries"]
    assert {d["payload"]["site"] for d in every} == {a, b}
    read_b = _key(client, "read-b", ["read"], b)
    mine = client.get("/api/v1/webhooks/deliveries", headers=read_b).json()["deliveries"]
    assert {d["payload"]["site"] for d in mine} == {b}
    seen: list[Any] = [d["payload"]["data"].get("number") for d in mine]
    assert "R-A1" not in seen


def _outbox_rows(db: Database, numbers: dict[str, str]) -> None:
    """A dead customer e-mail and a dead connector refund job for each RMA number."""
    with db.session() as s:
        for number, email in numbers.items():
            s.add(
                Notification(
                    rma_number=number,
                    kind="return_authorised",
                    recipient=email,
                    language="en",
                    message_id=f"<{number}@test>",
                    subject=f"Return {number}",
                    body_text="",
                    body_html="",
                    status="dead",
                )
            )
            s.add(
                ConnectorJob(
                    connector="shop",
                    kind="refund",
                    key=f"credit:{number}:1:1",
                    payload={"rma_number": number, "amount_cents": 1000},
                    status="dead",
                )
            )
        s.commit()


@pytest.mark.broker
def test_a_key_limited_to_site_b_reads_no_customer_email_nor_refund_job_of_site_a(
    two: tuple[TestClient, str, str],  # noqa: F811
) -> None:
    client, a, b = two
    for number, site in (("R-A1", a), ("R-B1", b)):
        assert client.post("/api/v1/rmas", json=_body(number, site=site)).status_code == 201
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    _outbox_rows(db, {"R-A1": "ann@a.example", "R-B1": "bob@b.example"})
    lead_b = _key(client, "lead-b", ["lead", "read"], b)

    mails = client.get("/api/v1/notifications", headers=lead_b)
    assert mails.status_code == 200, mails.text
    assert [n["rma_number"] for n in mails.json()["notifications"]] == ["R-B1"]
    hidden = client.get("/api/v1/notifications", params={"rma": "R-A1"}, headers=lead_b)
    assert hidden.json()["notifications"] == []
    jobs = client.get("/api/v1/connectors/jobs", headers=lead_b)
    assert jobs.status_code == 200, jobs.text
    assert [j["payload"]["rma_number"] for j in jobs.json()["jobs"]] == ["R-B1"]
    admin = client.get("/api/v1/connectors/jobs").json()["jobs"]  # every site: both
    assert sorted(j["payload"]["rma_number"] for j in admin) == ["R-A1", "R-B1"]

    with db.session() as s:
        mail_a = s.scalar(select(Notification.id).where(Notification.rma_number == "R-A1"))
        job_a = s.scalar(select(ConnectorJob.id).where(ConnectorJob.key == "credit:R-A1:1:1"))
    replayed = client.post(f"/api/v1/notifications/{mail_a}/replay", headers=lead_b)
    assert replayed.status_code == 404
    replayed = client.post(f"/api/v1/connectors/jobs/{job_a}/replay", headers=lead_b)
    assert replayed.status_code == 404
    with db.session() as s:
        assert s.scalar(select(Notification.status).where(Notification.id == mail_a)) == "dead"
        assert s.scalar(select(ConnectorJob.status).where(ConnectorJob.id == job_a)) == "dead"


@pytest.mark.broker
def test_a_key_limited_to_site_b_sees_and_acks_nothing_of_site_a_stations(
    two: tuple[TestClient, str, str],  # noqa: F811
) -> None:
    client, a, b = two
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:
        for sid, site in (("stA", a), ("stB", b)):
            s.add(Station(id=sid, site=site, state="running", details={}))
        s.add(Alarm(key="stA:jam:", station="stA", kind="jam", message="jam on A"))
        s.add(
            StationCommand(request_id="cmd-a", station="stA", command="pause", issued_by="user:x")
        )
        s.commit()
        alarm_a = s.scalar(select(Alarm.id).where(Alarm.station == "stA"))
    lead_b = _key(client, "lead-b", ["lead", "read"], b)

    report = client.get("/api/v1/reports/shift", headers=lead_b)
    assert report.status_code == 200, report.text
    assert [r["station"] for r in report.json()["rows"]] == ["stB"]
    assert [r["station"] for r in client.get("/api/v1/reports/shift").json()["rows"]] == [
        "stA",
        "stB",
    ]
    commands = client.get("/api/v1/stations/stA/commands", headers=lead_b)
    assert (commands.status_code, commands.json()["detail"]) == (404, "unknown station 'stA'")
    ack = client.post(f"/api/v1/alarms/{alarm_a}/ack", headers=lead_b)
    assert ack.status_code == 404
    with db.session() as s:
        assert s.scalar(select(Alarm.acknowledged_by).where(Alarm.id == alarm_a)) is None
