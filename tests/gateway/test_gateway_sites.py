"""Issue 17 item 1: sites as data.

The migration gives rows from before sites the one site the gateway served; RMAs are
created for a site (announced on its topics, numbered by its revision counter); the API
filters by site and a key limited to sites sees and changes only theirs; a station of one
site cannot claim another site's RMA; the status page shows one site or all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.db import Database
from gateway.main import create_app
from gateway.migrate import upgrade
from gateway.models import (
    AnnouncementRow,
    Base,
    DeadLetter,
    Rma,
    SiteRevision,
    Station,
    StationEvent,
    StockMovement,
)
from gateway.schemas import OrderDraft, RmaDraft
from gateway.services import credits
from gateway.services import events as events_service
from gateway.services.catch_up import answer
from gateway.services.events import Outcome, ingest_event, ingest_events
from gateway.services.orders import upsert_order
from gateway.services.policies import PolicyViolation
from gateway.services.rmas import SiteNotAllowed, create_rma
from gateway.services.stations import StationOfAnotherSite, upsert_station
from gateway.settings import Settings
from protocol import (
    HeadRevision,
    ParcelEvent,
    StationStatus,
    SyncBatch,
    SyncRequest,
    Topics,
    decode,
    encode,
)
from simulator.testing import wait_until
from tests.gateway.conftest import ADMIN_KEY, MqttProbe, parcel_for
from tests.returns.support import line, open_order, order_body, submit

T = Base.metadata.tables
OLD = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


# -- the migration ------------------------------------------------------------------------


def _old_rows(conn: sa.Connection) -> None:
    """One row of each table that gets a site, as a gateway at 0013 stored them."""
    conn.execute(T["site_revision"].insert().values(site="east", revision=3))
    conn.execute(
        T["rmas"]
        .insert()
        .values(
            id=1,
            number="R-OLD",
            order_ref="O-OLD",
            customer="Ann",
            reason="size",
            resolution="refund",
            notes="",
            currency="EUR",
            state="authorized",
            awaiting_decision=False,
            revision=3,
            created_at=OLD,
            updated_at=OLD,
        )
    )
    conn.execute(
        T["orders"]
        .insert()
        .values(order_ref="O-OLD", customer="Ann", currency="EUR", created_at=OLD)
    )
    conn.execute(
        T["station_events"]
        .insert()
        .values(
            event_id="e-old",
            station="st1",
            parcel_id=1,
            rma_number="R-OLD",
            lane="restock",
            disposition="restock",
            reason="matched",
            diverted=True,
            length_mm=300.0,
            inducted_at=OLD,
            received_at=OLD,
            raw={},
        )
    )
    conn.execute(
        T["stock_movements"]
        .insert()
        .values(sku="A", location="RESTOCK", quantity=1, kind="return_in", created_at=OLD)
    )
    conn.execute(
        T["announcement_outbox"]
        .insert()
        .values(rma_number="R-OLD", revision=3, payload="{}", created_at=OLD)
    )
    for table, values in (  # by hand: the models' tables would insert ``sites`` too
        ("api_keys", ("shop", "rsk_abcd", "0" * 64, "read", False, OLD)),
        ("users", ("lea", "x", "lead", True, OLD)),
    ):
        names = (
            "name, prefix, key_hash, scopes, revoked, created_at"
            if table == "api_keys"
            else "username, password_hash, role, active, created_at"
        )
        marks = ", ".join(f":v{i}" for i in range(len(values)))
        conn.execute(
            sa.text(f"INSERT INTO {table} ({names}) VALUES ({marks})"),  # nosec B608
            {f"v{i}": v for i, v in enumerate(values)},
        )


def test_upgrade_from_0013_gives_existing_rows_the_site_it_served(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RS_SITE", raising=False)  # the site comes from its revision counter
    db = Database(database_url)
    try:
        upgrade(db.engine, "0013")
        with db.engine.begin() as conn:
            _old_rows(conn)
        db.migrate()
        with db.engine.connect() as conn:
            sites = {
                table: conn.execute(sa.text(f"SELECT site FROM {table}")).scalars().all()  # nosec B608
                for table in (
                    "rmas",
                    "orders",
                    "station_events",
                    "stock_movements",
                    "announcement_outbox",
                )
            }
            limits = [
                conn.execute(sa.text(f"SELECT sites FROM {t}")).scalar_one()  # nosec B608
                for t in ("api_keys", "users")
            ]
            columns = {
                table: {c["name"]: c for c in sa.inspect(conn).get_columns(table)}
                for table in sites
            }
            indexes = {
                table: {tuple(i["column_names"]) for i in sa.inspect(conn).get_indexes(table)}
                for table in ("rmas", "orders", "station_events", "stock_movements", "stations")
            }
        assert sites == {
            "rmas": ["east"],
            "orders": ["east"],
            "station_events": ["east"],
            "stock_movements": ["east"],
            "announcement_outbox": ["east"],
        }
        assert limits == ["", ""]  # existing keys and users stay unlimited
        assert {t: c["site"]["nullable"] for t, c in columns.items()} == dict.fromkeys(sites, False)
        assert all(("site",) in found for found in indexes.values()), indexes
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("counter_kept", "expected"),
    [
        # an installer who sets the new name before upgrading must not move the old rows
        # away from the site their stations' topics named ("east", its revision counter)
        (True, "east"),
        (False, "west"),  # no counter: RS_SITE says which site the rows were served under
    ],
)
def test_upgrade_takes_the_served_site_before_rs_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counter_kept: bool, expected: str
) -> None:
    monkeypatch.setenv("RS_SITE", "west")
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        upgrade(db.engine, "0013")
        with db.engine.begin() as conn:
            _old_rows(conn)
            if not counter_kept:
                conn.execute(sa.text("DELETE FROM site_revision"))
        db.migrate()
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT site FROM rmas")).scalars().all() == [expected]
    finally:
        db.dispose()


# -- services: the RMA's site, the event's site, stock moves ------------------------------

TWO = Settings(site="s1", sites=["s1", "s2"], site_addresses={"s2": "Dock B\nNorth Town"})


@pytest.fixture
def sdb(anydb: Database) -> Iterator[Database]:
    credits.configure(TWO)
    yield anydb
    credits.configure(None)


def _draft(number: str, **over: Any) -> RmaDraft:
    body: dict[str, Any] = {
        "number": number,
        "order_ref": f"O-{number}",
        "reason": "size",
        "resolution": "refund",
        "lines": [{"sku": "A", "quantity": 1, "unit_price_cents": 1000, "gtin": "4006381333931"}],
    }
    return RmaDraft.model_validate({**body, **over})


def test_rma_site_revisions_and_outbox_per_site(sdb: Database) -> None:
    with sdb.session() as s:
        a1 = create_rma(s, TWO, _draft("R-A1"))
        b1 = create_rma(s, TWO, _draft("R-B1", site="s2"))
        a2 = create_rma(s, TWO, _draft("R-A2", site="s1"))
        assert [(r.number, r.site, r.revision) for r in (a1, b1, a2)] == [
            ("R-A1", "s1", 1),
            ("R-B1", "s2", 1),  # its own site's counter
            ("R-A2", "s1", 2),
        ]
        rows = s.execute(
            select(
                AnnouncementRow.rma_number, AnnouncementRow.site, AnnouncementRow.revision
            ).order_by(AnnouncementRow.id)
        ).all()
        assert [tuple(r) for r in rows] == [("R-A1", "s1", 1), ("R-B1", "s2", 1), ("R-A2", "s1", 2)]
        with pytest.raises(PolicyViolation) as refused:
            create_rma(s, TWO, _draft("R-X", site="nowhere"))
        assert refused.value.code == "unknown_site"


def test_catch_up_answers_a_station_with_its_own_sites_rmas(sdb: Database) -> None:
    with sdb.session() as s:
        for number, site in (("R-A1", "s1"), ("R-B1", "s2"), ("R-A2", "s1"), ("R-B2", "s2")):
            create_rma(s, TWO, _draft(number, site=site))
        request = SyncRequest(station="stB", after_revision=0, request_id="q1")
        batches = [decode(data, SyncBatch) for data in answer(s, "s2", request, 200)]
        assert [(a.number, a.revision) for b in batches for a in b.announcements] == [
            ("R-B1", 1),
            ("R-B2", 2),
        ]
        assert [(b.head_revision, b.last) for b in batches] == [(2, True)]


def test_event_and_stock_movement_take_the_site(sdb: Database) -> None:
    with sdb.session() as s:
        rma = create_rma(s, TWO, _draft("R-B2", site="s2"))
        assert ingest_event(s, parcel_for(rma, "restock"), site="s2") is True
        assert [(e.event_id != "", e.site) for e in s.scalars(select(StationEvent))] == [
            (True, "s2")
        ]
        moves = s.execute(select(StockMovement.site, StockMovement.sku, StockMovement.quantity))
        assert [tuple(m) for m in moves] == [("s2", "A", 1)]


@pytest.mark.parametrize("set_based", [True, False], ids=["set-based", "one-by-one"])
def test_one_batch_of_two_sites_records_each_event_at_its_topics_site(
    sdb: Database, monkeypatch: pytest.MonkeyPatch, set_based: bool
) -> None:
    with sdb.session() as s:
        rmas = [
            create_rma(s, TWO, _draft("R-A1")),  # s1 revision 1
            create_rma(s, TWO, _draft("R-B1", site="s2")),  # s2 revision 1
            create_rma(s, TWO, _draft("R-B2", site="s2")),  # s2 revision 2
        ]
        parcels = [parcel_for(rma, "restock") for rma in rmas]
    if not set_based:

        def refuse(*_args: Any) -> None:
            raise RuntimeError("not stageable at once")

        monkeypatch.setattr(events_service, "_stage_batch", refuse)  # the fallback then
    # the central gateway's batch mixes sites; a redelivery from another site's topic
    batch = [*parcels, parcels[1]]
    with sdb.session() as s:
        results = ingest_events(s, batch, sites=["s1", "s2", "s2", "s1"])
    assert [r.outcome for r in results] == [Outcome.STORED] * 3 + [Outcome.DUPLICATE]
    with sdb.session() as s:
        recorded = s.execute(
            select(StationEvent.rma_number, StationEvent.site).order_by(StationEvent.rma_number)
        )
        assert [tuple(r) for r in recorded] == [("R-A1", "s1"), ("R-B1", "s2"), ("R-B2", "s2")]
        moves = s.execute(
            select(StockMovement.rma_number, StockMovement.site).order_by(StockMovement.rma_number)
        )
        assert [tuple(m) for m in moves] == [("R-A1", "s1"), ("R-B1", "s2"), ("R-B2", "s2")]
        changed = s.execute(select(Rma.number, Rma.site, Rma.revision).order_by(Rma.number))
        # each RMA's receipt took the next revision of its own site's counter
        assert [tuple(r) for r in changed] == [
            ("R-A1", "s1", 2),
            ("R-B1", "s2", 3),
            ("R-B2", "s2", 4),
        ]
        heads = s.execute(
            select(SiteRevision.site, SiteRevision.revision).order_by(SiteRevision.site)
        )
        assert [tuple(h) for h in heads] == [("s1", 2), ("s2", 4)]
    with sdb.session() as s, pytest.raises(ValueError, match="one site per event: 1 sites for 2"):
        ingest_events(s, parcels[:2], sites=["s1"])


def test_a_caller_limited_to_a_site_cannot_return_goods_of_another_sites_order(
    sdb: Database,
) -> None:
    # an RMA "received at s2" for an order of s1 was created for a key limited to s2: it
    # read s1's customer and prices in the answer and used up s1's returnable units
    with sdb.session() as s:
        order = {"order_ref": "O-1", "customer_email": "ann@s1.example", "lines": [
            {"sku": "A", "ordered_quantity": 1, "delivered_quantity": 1, "unit_price_cents": 7777}
        ]}  # fmt: skip
        upsert_order(s, OrderDraft.model_validate(order), site="s1")
        s.commit()
        draft = _draft("R-1", order_ref="O-1", site="s2")
        with pytest.raises(SiteNotAllowed) as refused:
            create_rma(s, TWO, draft, allowed_sites=frozenset({"s2"}))
        assert (str(refused.value), refused.value.site) == (
            "this caller may not return goods of order 'O-1'",
            "s1",
        )
        s.rollback()
        assert s.scalar(select(sa.func.count(Rma.id))) == 0
        # a caller of both sites may have s1's goods received at s2
        rma = create_rma(s, TWO, draft, allowed_sites=frozenset({"s1", "s2"}))
        assert (rma.site, rma.lines[0].unit_price_cents) == ("s2", 7777)


def test_settings_sites_and_addresses() -> None:
    assert (TWO.site, TWO.sites) == ("s1", ["s1", "s2"])
    assert TWO.site_address("s2") == "Dock B\nNorth Town"
    assert TWO.site_address("s1") == TWO.return_address
    assert Settings(sites=["x", "y"]).site == "x"
    assert Settings(site="y", sites=["x", "y"]).sites == ["y", "x"]  # the default first
    with pytest.raises(ValueError, match="is not one of RS_SITES"):
        Settings(site="z", sites=["x"])
    with pytest.raises(ValueError, match="names sites not in RS_SITES"):
        Settings(sites=["x"], site_addresses={"y": "Dock"})


# -- the API, the bridge and the page on two sites ----------------------------------------


@pytest.fixture
def two(tmp_path: Path, mqtt_broker: Any) -> Iterator[tuple[TestClient, str, str]]:
    """The gateway serving two fresh sites (A the default), with its bridge subscribed."""
    a, b = (f"t{uuid.uuid4().hex[:8]}{x}" for x in "ab")
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'gateway.db'}",
        mqtt_host=mqtt_broker.host,
        mqtt_port=mqtt_broker.port,
        sites=[a, b],
        bootstrap_api_key=ADMIN_KEY,
        site_addresses={b: "Dock B\nNorth Town"},
    )
    app = create_app(settings)
    with TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as client:
        assert app.state.bridge.wait_ready(10)
        yield client, a, b


def _body(number: str, **over: Any) -> dict[str, Any]:
    return {
        "number": number,
        "order_ref": f"O-{number}",
        "reason": "damaged",
        "resolution": "refund",
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 1000}],
        **over,
    }


def _numbers(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["number"] for r in response.json()["rmas"]]


@pytest.mark.broker
def test_api_filters_by_site_and_a_limited_key_sees_only_its_sites(
    two: tuple[TestClient, str, str],
) -> None:
    client, a, b = two
    assert client.post("/api/v1/rmas", json=_body("R-A1")).json()["site"] == a  # the default
    assert client.post("/api/v1/rmas", json=_body("R-B1", site=b)).json()["site"] == b
    assert client.post("/api/v1/rmas", json=_body("R-A2", site=a)).status_code == 201
    unknown = client.post("/api/v1/rmas", json=_body("R-X", site="nowhere"))
    assert unknown.status_code == 422
    assert unknown.json()["detail"]["code"] == "unknown_site"

    first = ["R-A1", "R-B1"] if a < b else ["R-B1", "R-A1"]  # revision 1 of each, by site
    assert _numbers(client.get("/api/v1/rmas")) == [*first, "R-A2"]
    assert _numbers(client.get("/api/v1/rmas", params={"site": a})) == ["R-A1", "R-A2"]
    only_b = client.get("/api/v1/rmas", params={"site": b})
    assert (_numbers(only_b), only_b.json()["head_revision"]) == (["R-B1"], 1)
    assert client.get("/api/v1/rmas", params={"site": "nowhere"}).status_code == 422

    made = client.post(
        "/api/v1/api-keys", json={"name": "shop-b", "scopes": ["rmas:write", "read"], "sites": [b]}
    )
    assert made.status_code == 201, made.text
    assert made.json()["sites"] == [b]
    bad = client.post("/api/v1/api-keys", json={"name": "x", "scopes": ["read"], "sites": ["no"]})
    assert bad.status_code == 422
    key_b = {"X-API-Key": made.json()["key"]}
    assert _numbers(client.get("/api/v1/rmas", headers=key_b)) == ["R-B1"]
    assert client.get("/api/v1/rmas", params={"site": a}, headers=key_b).status_code == 403
    assert client.get("/api/v1/rmas/R-B1", headers=key_b).status_code == 200
    hidden = client.get("/api/v1/rmas/R-A1", headers=key_b)
    assert (hidden.status_code, hidden.json()["detail"]) == (404, "RMA 'R-A1' not found")
    cancel = client.post("/api/v1/rmas/R-A1/transitions", json={"trigger": "cancel"}, headers=key_b)
    assert cancel.status_code == 404  # nor changed
    denied = client.post("/api/v1/rmas", json=_body("R-A3", site=a), headers=key_b)
    assert denied.status_code == 403
    assert client.post("/api/v1/rmas", json=_body("R-A4"), headers=key_b).status_code == 403
    ok = client.post("/api/v1/rmas", json=_body("R-B2", site=b), headers=key_b)
    assert (ok.status_code, ok.json()["site"], ok.json()["revision"]) == (201, b, 2)
    assert _numbers(client.get("/api/v1/rmas", headers=key_b)) == ["R-B1", "R-B2"]
    keys = {k["name"]: k["sites"] for k in client.get("/api/v1/api-keys").json()}
    assert (keys["shop-b"], keys["bootstrap"]) == (b, "")
    order = order_body("O-A", "ann@a.example", 2, [line("SKU-1", 1, 7777)])
    assert client.put("/api/v1/orders/O-A", json={**order, "site": a}).status_code == 201
    assert client.get("/api/v1/orders/O-A", headers=key_b).status_code == 404
    steal = client.post("/api/v1/rmas", json=_body("R-B3", order_ref="O-A", site=b), headers=key_b)
    assert (steal.status_code, steal.json()["detail"]) == (
        403,
        "this caller may not return goods of order 'O-A'",
    )


@pytest.mark.broker
def test_stations_events_and_commands_by_site(
    two: tuple[TestClient, str, str], mqtt_broker: Any
) -> None:
    client, a, b = two
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:
        for sid, site in (("stA", a), ("stB", b)):
            s.add(Station(id=sid, site=site, state="running", details={}))
            s.add(
                StationEvent(
                    event_id=f"e-{sid}",
                    site=site,
                    station=sid,
                    parcel_id=1,
                    rma_number=None,
                    lane="quarantine",
                    disposition="quarantine",
                    reason="no_read",
                    diverted=False,
                    length_mm=300.0,
                    inducted_at=OLD,
                    raw={},
                )
            )
        s.commit()

    def ids(path: str, key: str, field: str, **params: str) -> list[str]:
        r = client.get(path, params=params)
        assert r.status_code == 200, r.text
        return [row[field] for row in r.json()[key]]

    assert ids("/api/v1/stations", "stations", "id") == ["stA", "stB"]
    assert ids("/api/v1/stations", "stations", "id", site=b) == ["stB"]
    assert ids("/api/v1/events", "events", "station", site=a) == ["stA"]
    assert ids("/api/v1/events", "events", "site", site=b) == [b]
    lanes = client.get("/api/v1/lanes", params={"site": b}).json()
    assert (lanes["total"], [st["station"] for st in lanes["stations"]]) == (1, ["stB"])

    probe = MqttProbe(mqtt_broker.host, mqtt_broker.port)
    try:
        probe.subscribe("rs/v1/+/stB/cmd")
        sent = client.post("/api/v1/stations/stB/commands", json={"command": "resume"})
        assert sent.status_code == 202, sent.text
        wait_until(lambda: probe.payloads(Topics(b, "stB").command), what="command on B's topic")
        assert probe.payloads(Topics(a, "stB").command) == []
    finally:
        probe.close()
    made = client.post(
        "/api/v1/api-keys", json={"name": "lead-a", "scopes": ["lead", "read"], "sites": [a]}
    )
    key_a = {"X-API-Key": made.json()["key"]}
    other = client.post("/api/v1/stations/stB/commands", json={"command": "resume"}, headers=key_a)
    assert (other.status_code, other.json()["detail"]) == (404, "unknown station 'stB'")
    mine = client.get("/api/v1/stations", headers=key_a).json()["stations"]
    assert [st["id"] for st in mine] == ["stA"]


def test_a_status_of_another_sites_station_of_the_same_id_never_moves_it(
    sdb: Database,
) -> None:
    # both sites ran the shipped id "station1": the second site's status moved the row
    # to its site, and the first site's lead then commanded the other site's belt
    with sdb.session() as s:
        upsert_station(s, "s1", StationStatus(station="station1", state="online"))
    with sdb.session() as s, pytest.raises(StationOfAnotherSite) as refused:
        upsert_station(s, "s2", StationStatus(station="station1", state="degraded"))
    assert str(refused.value) == (
        "station 'station1' is site 's1''s: a station on site 's2' must have another id"
        " (station ids are unique across sites)"
    )
    with sdb.session() as s:
        station = s.get(Station, "station1")
        assert station is not None and (station.site, station.state) == ("s1", "online")


@pytest.mark.broker
def test_a_command_of_site_a_never_reaches_site_bs_station_of_the_same_id(
    two: tuple[TestClient, str, str], mqtt_broker: Any
) -> None:
    client, a, b = two
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    probe = MqttProbe(mqtt_broker.host, mqtt_broker.port)
    try:
        online = encode(StationStatus(station="station1", state="online"))
        probe.publish(Topics(a, "station1").status, online)
        wait_until(lambda: client.get("/api/v1/stations").json()["stations"], what="A's station1")
        probe.publish(Topics(b, "station1").status, online)

        def refused() -> list[str]:
            with db.session() as s:
                return list(s.scalars(select(DeadLetter.error)))

        wait_until(refused, what="B's status dead-lettered")
        assert refused() == [
            f"station 'station1' is site {a!r}'s: a station on site {b!r} must have another"
            " id (station ids are unique across sites)"
        ]
        [station] = client.get("/api/v1/stations").json()["stations"]
        assert (station["id"], station["site"]) == ("station1", a)
        probe.subscribe("rs/v1/+/station1/cmd")
        sent = client.post("/api/v1/stations/station1/commands", json={"command": "resume"})
        assert sent.status_code == 202, sent.text
        wait_until(lambda: probe.payloads(Topics(a, "station1").command), what="on A's topic")
        assert probe.payloads(Topics(b, "station1").command) == []
    finally:
        probe.close()


@pytest.mark.broker
def test_a_station_of_site_a_cannot_claim_an_rma_of_site_b(
    two: tuple[TestClient, str, str], mqtt_broker: Any
) -> None:
    client, a, b = two
    probe = MqttProbe(mqtt_broker.host, mqtt_broker.port)
    try:
        probe.subscribe(Topics(b).rma)
        probe.subscribe(Topics(b).head)
        probe.subscribe(Topics(a).rma)
        assert client.post("/api/v1/rmas", json=_body("R-B1", site=b)).status_code == 201

        def heads() -> list[HeadRevision]:
            return [decode(p, HeadRevision) for p in probe.payloads(Topics(b).head)]

        wait_until(lambda: HeadRevision(site=b, revision=1) in heads(), what="B's head at 1")
        assert len(probe.payloads(Topics(b).rma)) == 1
        assert probe.payloads(Topics(a).rma) == []  # announced to site B's stations only

        def claim(site: str, station: str, event_id: str) -> None:
            event = ParcelEvent(
                event_id=event_id,
                station=station,
                parcel_id=1,
                inducted_at=OLD,
                length_mm=300.0,
                rma_number="R-B1",
                lane="quarantine",
                disposition="quarantine",
                reason="unverified",
                diverted=False,
            )
            probe.publish(Topics(site, station).event, event.model_dump_json().encode())

        claim(a, "stA", "e-from-a")
        claim(b, "stB", "e-from-b")
        db: Database = client.app.state.db  # type: ignore[attr-defined]

        def stored() -> list[tuple[str, str]]:
            with db.session() as s:
                rows = s.execute(select(StationEvent.event_id, StationEvent.site))
                return [tuple(r) for r in rows]  # type: ignore[misc]

        def dead() -> list[tuple[str, str]]:
            with db.session() as s:
                return [(d.topic, d.error) for d in s.scalars(select(DeadLetter))]

        wait_until(lambda: stored() == [("e-from-b", b)], what="site B's event stored")
        wait_until(dead, what="site A's claim dead-lettered")
        assert stored() == [("e-from-b", b)]  # nothing of site A's claim
        assert dead() == [
            (
                Topics(a, "stA").event,
                f"untrusted event: rma_of_another_site: RMA R-B1 is received at site {b}, not {a}",
            )
        ]
    finally:
        probe.close()


@pytest.mark.broker
def test_status_page_shows_one_site_or_all(two: tuple[TestClient, str, str]) -> None:
    client, a, b = two
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:
        s.add(Station(id="stA", site=a, state="running", details={}))
        s.add(Station(id="stB", site=b, state="running", details={}))
        s.commit()
    every = client.get("/")
    assert every.status_code == 200
    assert 'data-testid="site-shown">all sites<' in every.text
    assert 'data-station="stA"' in every.text and 'data-station="stB"' in every.text
    assert f'<option value="{b}">{b}</option>' in every.text
    one = client.get("/", params={"site": b})
    assert f'data-testid="site-shown">{b}<' in one.text
    assert 'data-station="stB"' in one.text and 'data-station="stA"' not in one.text
    part = client.get("/partials/stations", params={"site": a})
    assert 'data-station="stA"' in part.text and 'data-station="stB"' not in part.text
    assert client.get("/", params={"site": ""}).status_code == 200  # "All sites" chosen
    assert client.get("/", params={"site": "nowhere"}).status_code == 422


@pytest.mark.broker
def test_the_return_form_sends_the_parcel_to_the_orders_site(
    two: tuple[TestClient, str, str],
) -> None:
    client, a, b = two
    lines = [line("SHIRT", 1, 2990, "apparel")]
    body = {**order_body("O-B", "ann@example.com", 2, lines), "site": b}
    stored = client.put("/api/v1/orders/O-B", json=body)
    assert (stored.status_code, stored.json()["site"]) == (201, b)
    found = open_order(client, "O-B", "ann@example.com")
    assert found.status_code == 303
    chosen = submit(
        client,
        found.headers["location"],
        **{"qty-1": "1", "reason": "size", "resolution": "refund"},
    )
    assert chosen.status_code == 303, chosen.text
    outcome = client.get(chosen.headers["location"])
    assert f'id="receiving-address" data-site="{b}">Dock B<br>North Town<br></address>' in (
        outcome.text
    )
    assert [(r["order_ref"], r["site"]) for r in client.get("/api/v1/rmas").json()["rmas"]] == [
        ("O-B", b)
    ]
    made = client.post(
        "/api/v1/api-keys", json={"name": "a", "scopes": ["orders:write", "read"], "sites": [a]}
    )
    key_a = {"X-API-Key": made.json()["key"]}
    assert client.get("/api/v1/orders/O-B", headers=key_a).status_code == 404
    assert client.put("/api/v1/orders/O-B", json=body, headers=key_a).status_code == 404
    other = {**order_body("O-B2", "bo@example.com", 2, lines), "site": b}
    assert client.post("/api/v1/orders", json=other, headers=key_a).status_code == 403
    mine = client.post("/api/v1/orders", json={**other, "site": None}, headers=key_a)
    assert (mine.status_code, mine.json()["site"]) == (201, a)
