"""Status page (issue 7): sign-in, roles and CSRF, quarantine decisions, alarms, search."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.main import create_app
from gateway.services.events import ingest_event
from gateway.settings import Settings
from gateway.web.session import COOKIE
from protocol import ParcelEvent
from tests.gateway.conftest import PROD_SECRET, claimed_units

pytestmark = pytest.mark.broker
ADMIN = {"X-API-Key": "test-admin-key-0123456789abcdef"}
HTML = {"Accept": "text/html"}


def add_user(client: TestClient, name: str, role: str) -> None:
    body = {"username": name, "password": f"{name} long password", "role": role}
    assert client.post("/api/v1/users", json=body, headers=ADMIN).status_code == 201


def browser(app: Any, name: str) -> TestClient:
    """A cookie-carrying client (no API key) signed in as ``name``."""
    c = TestClient(app, headers=HTML)
    r = c.post(
        "/login",
        data={"username": name, "password": f"{name} long password"},
        follow_redirects=False,
    )
    assert (r.status_code, r.headers["location"]) == (303, "/")
    return c


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def quarantined(
    client: TestClient,
    rma_body: Callable[..., dict[str, Any]],
    make_event: Callable[..., ParcelEvent],
    number: str,
) -> None:
    body = rma_body(number)
    assert client.post("/api/v1/rmas", json=body, headers=ADMIN).status_code == 201
    event = make_event(
        rma_number=number,
        units=claimed_units(body),
        lane="quarantine",
        disposition="quarantine",
        reason="grade_required",
        diverted=False,
        explanation="camera grade missing: a lead decides",
    )
    with client.app.state.db.session() as session:  # type: ignore[attr-defined]
        assert ingest_event(session, event)


def test_prod_page_needs_sign_in_and_wrong_password_is_refused(settings: Settings) -> None:
    prod = settings.model_copy(update={"env": "prod", "secret_key": PROD_SECRET})
    with TestClient(create_app(prod)) as c:
        r = c.get("/", headers=HTML, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/login")
        assert c.get("/partials/parcels").status_code == 401
        assert c.get("/api/v1/stream").status_code == 401
        add_user(c, "vera", "viewer")
        bad = c.post("/login", data={"username": "vera", "password": "nope"})
        assert bad.status_code == 401 and "Wrong user name or password." in bad.text
        v = browser(c.app, "vera")
        page = v.get("/")
        assert page.status_code == 200 and "user:vera · viewer" in page.text
        v.cookies.set(COOKIE, "forged-" + "x" * 40)  # not a session the server holds
        assert v.get("/", follow_redirects=False).status_code == 303


def test_lead_releases_quarantined_parcel_viewer_cannot(
    client: TestClient,
    rma_body: Callable[..., dict[str, Any]],
    make_event: Callable[..., ParcelEvent],
) -> None:
    quarantined(client, rma_body, make_event, "RMA-Q1")
    add_user(client, "vera", "viewer")
    add_user(client, "lee", "lead")
    viewer, lead = browser(client.app, "vera"), browser(client.app, "lee")

    seen = viewer.get("/partials/quarantine").text
    assert '<th scope="row">RMA-Q1</th>' in seen and "grade_required" in seen
    assert "camera grade missing: a lead decides" in seen
    assert "Release</button>" not in seen and "Only a lead can decide." in seen
    refused = viewer.post("/quarantine/RMA-Q1", data={"grade": "restock", "csrf": "x"})
    assert refused.status_code == 403

    page = lead.get("/").text
    assert "Release</button>" in page
    no_token = lead.post("/quarantine/RMA-Q1", data={"grade": "restock"}, follow_redirects=False)
    assert no_token.status_code == 403
    done = lead.post(
        "/quarantine/RMA-Q1",
        data={"grade": "refurbish", "csrf": csrf_of(page)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/?notice=released-refurbish&rma=RMA-Q1#quarantine"
    assert "RMA-Q1: released as refurbish" in lead.get(done.headers["location"]).text
    rma = client.get("/api/v1/rmas/RMA-Q1").json()
    assert (rma["state"], rma["grade"], rma["awaiting_decision"]) == (
        "refunded",
        "refurbish",
        False,
    )
    credited = client.get("/api/v1/credits").json()["credits"]
    assert [(c["rma_number"], c["sku"]) for c in credited] == [  # one per unit, newest first
        ("RMA-Q1", "SKU-2"),
        ("RMA-Q1", "SKU-2"),
        ("RMA-Q1", "SKU-1"),
    ]
    assert "Nothing is waiting for a decision." in lead.get("/partials/quarantine").text


def test_lead_closes_case_without_credit(
    client: TestClient,
    rma_body: Callable[..., dict[str, Any]],
    make_event: Callable[..., ParcelEvent],
) -> None:
    quarantined(client, rma_body, make_event, "RMA-Q2")
    add_user(client, "lee", "lead")
    lead = browser(client.app, "lee")
    token = csrf_of(lead.get("/").text)
    page = lead.get("/partials/quarantine").text
    assert '<option value="return_to_vendor">return to vendor</option>' in page
    odd = {"grade": "refuse", "destination": "moon", "csrf": token}
    assert lead.post("/quarantine/RMA-Q2", data=odd).status_code == 422
    lead.post(
        "/quarantine/RMA-Q2",
        data={"grade": "refuse", "destination": "return_to_vendor", "csrf": token},
    )
    rma = client.get("/api/v1/rmas/RMA-Q2").json()
    assert (rma["state"], rma["grade"]) == ("closed", "refuse")
    assert client.get("/api/v1/credits").json()["credits"] == []
    moved = client.get("/api/v1/stock").json()["movements"]
    # one movement per refused unit (line 1: one unit, line 2: two)
    assert sorted((m["rma_number"], m["sku"], m["location"], m["kind"]) for m in moved) == [
        ("RMA-Q2", "SKU-1", "RTV", "refused"),
        ("RMA-Q2", "SKU-2", "RTV", "refused"),
        ("RMA-Q2", "SKU-2", "RTV", "refused"),
    ]


def test_recent_parcels_show_sku_explanation_and_photo(
    client: TestClient,
    rma_body: Callable[..., dict[str, Any]],
    make_event: Callable[..., ParcelEvent],
) -> None:
    assert client.post("/api/v1/rmas", json=rma_body("RMA-P1"), headers=ADMIN).status_code == 201
    event = make_event(rma_number="RMA-P1", explanation="grade A: restock", policy_version="p7")
    sha = "ab" * 32
    raw_with_photo = event.model_dump(mode="json") | {
        "photo": {"sha256": sha, "taken_at": "2026-11-29T10:00:00Z", "size": 1234}
    }
    with client.app.state.db.session() as session:  # type: ignore[attr-defined]
        assert ingest_event(session, event)
        from gateway.models import StationEvent

        row = session.query(StationEvent).one()
        row.raw = raw_with_photo
        session.commit()
    html = client.get("/partials/parcels").text
    assert "<td>SKU-1, SKU-2</td>" in html
    assert "grade A: restock" in html and "policy p7" in html
    assert f'<a href="/api/v1/photos/{sha}" target="_blank" rel="noopener">Photo</a>' in html


def test_rma_search_by_number_order_and_serial(
    client: TestClient, rma_body: Callable[..., dict[str, Any]]
) -> None:
    assert client.post("/api/v1/rmas", json=rma_body("RMA-S1"), headers=ADMIN).status_code == 201
    assert (
        client.post(
            "/api/v1/rmas",
            json=rma_body("RMA-S2", lines=[{"sku": "X", "quantity": 1}]),
            headers=ADMIN,
        ).status_code
        == 201
    )
    for q in ("RMA-S1", "ORD-RMA-S1", "SN42"):
        html = client.get("/rmas", params={"q": q}).text
        assert re.findall(r'<h3 id="rma-([^"]+)"', html) == ["RMA-S1"], q
        assert "<strong>authorize</strong>: requested → authorized · api-key:bootstrap" in html
    assert re.findall(r'<h3 id="rma-([^"]+)"', client.get("/rmas?q=rma-s").text) == [
        "RMA-S1",
        "RMA-S2",
    ]
    assert "No RMA matches “nothing”" in client.get("/rmas?q=nothing").text


def test_lead_acknowledges_an_alarm_viewer_cannot(client: TestClient) -> None:
    from gateway.services.stations import upsert_station
    from protocol import StationStatus

    with client.app.state.db.session() as session:  # type: ignore[attr-defined]
        upsert_station(session, "site", StationStatus(station="st1", state="offline"))
    add_user(client, "vera", "viewer")
    add_user(client, "lee", "lead")
    viewer, lead = browser(client.app, "vera"), browser(client.app, "lee")
    [alarm] = client.get("/api/v1/alarms").json()["alarms"]
    assert (alarm["kind"], alarm["station"], alarm["acknowledged_by"]) == (
        "station_offline",
        "st1",
        None,
    )
    seen = viewer.get("/partials/alarms").text
    assert "Station offline</strong> · st1" in seen and "Acknowledge</button>" not in seen
    assert viewer.post(f"/alarms/{alarm['id']}/ack", data={"csrf": "x"}).status_code == 403
    token = csrf_of(lead.get("/").text)
    done = lead.post(f"/alarms/{alarm['id']}/ack", data={"csrf": token}, follow_redirects=False)
    assert done.status_code == 303
    [after] = client.get("/api/v1/alarms").json()["alarms"]  # still active: station offline
    assert (after["id"], after["acknowledged_by"], after["cleared_at"]) == (
        alarm["id"],
        "user:lee",
        None,
    )
    assert "acknowledged by user:lee" in lead.get("/partials/alarms").text


def test_lead_decides_unit_by_unit_and_a_stale_page_changes_nothing(
    client: TestClient,
    rma_body: Callable[..., dict[str, Any]],
    make_event: Callable[..., ParcelEvent],
) -> None:
    quarantined(client, rma_body, make_event, "RMA-Q3")  # 3 units, label only, photo-less
    add_user(client, "lee", "lead")
    lead = browser(client.app, "lee")
    page = lead.get("/partials/quarantine").text
    for unit in ("RMA-Q3/1/1", "RMA-Q3/2/1", "RMA-Q3/2/2"):
        assert f'data-unit="{unit}"' in page
    assert "<code>quarantine</code>" in page and "<code>label</code>" in page
    token = csrf_of(lead.get("/").text)
    revision = client.get("/api/v1/rmas/RMA-Q3").json()["revision"]

    def post(unit: str, action: str, grade: str, rev: int) -> str:
        done = lead.post(
            f"/quarantine/RMA-Q3/units/{unit}",
            data={"csrf": token, "action": action, "grade": grade, "revision": str(rev)},
            follow_redirects=False,
        )
        assert done.status_code == 303
        return str(done.headers["location"])

    assert post("2/1", "verify", "refurbish", revision).startswith("/?notice=unit-decided")
    # a second lead's page still shows the old revision: refused, nothing written
    assert post("1/1", "verify", "restock", revision).startswith("/?notice=stale")
    assert "changed by someone else meanwhile" in lead.get("/?notice=stale&rma=RMA-Q3").text
    assert post("2/2", "refuse", "", revision + 1).startswith("/?notice=unit-decided")
    assert post("1/1", "verify", "restock", revision + 2).startswith("/?notice=unit-decided")
    rma = client.get("/api/v1/rmas/RMA-Q3").json()
    assert (rma["state"], rma["grade"], rma["awaiting_decision"]) == ("refunded", "mixed", False)
    credited = client.get("/api/v1/credits").json()["credits"]
    assert sorted((c["sku"], c["unit_no"], c["grade"]) for c in credited) == [
        ("SKU-1", 1, "restock"),
        ("SKU-2", 1, "refurbish"),
    ]
    decided = [(u["unit_no"], u["state"], u["decided_by"]) for u in rma["lines"][1]["units"]]
    assert decided == [(1, "credited", "user:lee"), (2, "refused", "user:lee")]
    assert "Nothing is waiting for a decision." in lead.get("/partials/quarantine").text


def test_a_release_from_a_stale_page_changes_nothing(
    client: TestClient,
    rma_body: Callable[..., dict[str, Any]],
    make_event: Callable[..., ParcelEvent],
) -> None:
    quarantined(client, rma_body, make_event, "RMA-Q4")
    add_user(client, "lee", "lead")
    lead = browser(client.app, "lee")
    page = lead.get("/partials/quarantine").text
    revision = client.get("/api/v1/rmas/RMA-Q4").json()["revision"]
    assert f'name="revision" value="{revision}"' in page
    token = csrf_of(lead.get("/").text)
    stale = lead.post(
        "/quarantine/RMA-Q4",
        data={"grade": "restock", "csrf": token, "revision": str(revision - 1)},
        follow_redirects=False,
    )
    assert stale.headers["location"] == "/?notice=stale&rma=RMA-Q4#quarantine"
    rma = client.get("/api/v1/rmas/RMA-Q4").json()
    assert (rma["state"], rma["revision"], rma["awaiting_decision"]) == ("received", revision, True)
    assert client.get("/api/v1/credits").json()["credits"] == []


def test_a_user_name_with_nul_is_a_wrong_credential_on_either_backend(database_url: str) -> None:
    # PostgreSQL refuses NUL in text: the user lookup of the sign-in form and of HTTP
    # Basic raised DataError, a 500 to anyone (found by posting one); SQLite said 401
    settings = Settings(
        env="dev", database_url=database_url, mqtt_port=1, bootstrap_api_key=ADMIN["X-API-Key"]
    )
    with TestClient(create_app(settings)) as c:
        add_user(c, "vera", "viewer")
        form = {"username": "vera\x00", "password": "vera long password"}
        r = c.post("/login", data=form, headers=HTML, follow_redirects=False)
        assert r.status_code == 401 and "Wrong user name or password." in r.text
        basic = c.get("/api/v1/rmas", auth=("vera\x00", "vera long password"))
        assert basic.status_code == 401
        assert c.get("/api/v1/rmas", auth=("vera", "vera long password")).status_code == 200


def test_a_csrf_token_with_non_ascii_text_is_a_wrong_token(client: TestClient) -> None:
    # hmac.compare_digest raises TypeError for str arguments holding non-ASCII: a 500
    add_user(client, "lee", "lead")
    lead = browser(client.app, "lee")
    r = lead.post("/rmas/RMA-X/approval", data={"csrf": "é", "decision": "authorize"})
    assert (r.status_code, r.json()) == (
        403,
        {"detail": "missing or wrong CSRF token: reload the page"},
    )
