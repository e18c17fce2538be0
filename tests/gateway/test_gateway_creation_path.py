"""The RMA creation path (issue 17): one transaction per creation, keys checked once per TTL.

``POST /api/v1/rmas`` commits the RMA, its writer-path rows (revision, announcement
outbox), the idempotent response and the request's audit row in one transaction; the
API key is looked up in the database once per :data:`KEY_CACHE_TTL_S`, and a revocation
is refused at once by the gateway that made it, within the TTL by another replica.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, text

from gateway.db import Database
from gateway.main import create_app
from gateway.models import (
    AnnouncementRow,
    AuditEntry,
    CatalogueItem,
    IdempotencyRecord,
    Rma,
    RmaLineRecord,
    RmaTransition,
    WebhookDelivery,
)
from gateway.schemas import OrderDraft, RmaDraft
from gateway.services.auth import KEY_CACHE_TTL_S, KeyCache, Principal, hash_key
from gateway.services.orders import create_order
from gateway.services.policies import PolicyViolation
from gateway.services.revisions import head_revision
from gateway.services.rmas import DuplicateRma, create_rma
from gateway.services.row_sink import add_row
from gateway.services.webhook_endpoints import create_endpoint, deactivate
from gateway.settings import Settings
from protocol.messages import decode_rma_change

KEY = "creation-admin-key-0123456789abcdef"


def _body(number: str) -> dict[str, Any]:
    return {
        "number": number,
        "order_ref": "O-1",
        "reason": "changed_mind",
        "resolution": "refund",
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 1999}],
    }


def _app_settings(url: str) -> Settings:
    # no broker: announcements stay queued in the outbox, which is what is looked at here
    return Settings(env="dev", database_url=url, mqtt_port=1, bootstrap_api_key=KEY, site="s1")


@pytest.fixture
def quiet() -> Iterator[None]:
    logger = logging.getLogger("gateway")
    level = logger.level
    logger.setLevel(logging.ERROR)  # "broker unreachable" while it retries
    yield
    logger.setLevel(level)


class _RequestSql:
    """Statements and commits made by request handling (the event loop and its workers),
    not by the gateway's background threads (live page, webhooks, bridge...)."""

    def __init__(self, engine: Any) -> None:
        self.statements: list[str] = []
        self.commits = 0
        self.on = False
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    @staticmethod
    def _ours() -> bool:
        name = threading.current_thread().name
        return name.startswith("AnyIO worker") or name.startswith("asyncio-portal")

    def _statement(self, _c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if self.on and self._ours():
            self.statements.append(" ".join(statement.split()))

    def writes(self) -> Counter[str]:
        """Tables written, by ``INSERT INTO t`` / ``UPDATE t`` (in WITH queries too)."""
        return Counter(
            f"{verb} {table}"
            for s in self.statements
            for verb, table in re.findall(r"\b(INSERT INTO|UPDATE) (\w+)", s)
        )

    def _commit(self, _conn: Any) -> None:
        if self.on and self._ours():
            self.commits += 1


def test_a_creation_is_one_transaction_with_its_audit_row(database_url: str, quiet: None) -> None:
    app = create_app(_app_settings(database_url))
    with TestClient(app, headers={"X-API-Key": KEY}) as client:
        assert client.post("/api/v1/rmas", json=_body("W-0")).status_code == 201  # key cached
        sql = _RequestSql(app.state.db.engine)
        sql.on = True
        made = client.post("/api/v1/rmas", json=_body("C-1"))
        sql.on = False
        assert made.status_code == 201, made.text
        assert sql.commits == 1
        assert sql.writes() == Counter(
            {
                "UPDATE site_revision": 1,
                "INSERT INTO rmas": 1,
                "INSERT INTO rma_lines": 1,
                "INSERT INTO rma_transitions": 1,
                "INSERT INTO announcement_outbox": 1,
                "INSERT INTO audit_log": 1,
                "INSERT INTO webhook_deliveries": 1,  # one per active endpoint: none here
            }
        )
        if not database_url.startswith("postgresql"):  # SQLite: the write lock first
            assert sql.statements.pop(0) == "BEGIN IMMEDIATE"  # (gateway.db.begin_writing)
        heads = [" ".join(s.split()[:3]) for s in sql.statements]
        # the order and the catalogue's entries in one read, then the lock, then the
        # writes; on PostgreSQL the read takes the lock (a single-site gateway knows the
        # site before the order is read) and the writes are one statement
        assert "FROM (SELECT" in sql.statements[0] and "catalogue_items.sku" in sql.statements[0]
        if database_url.startswith("postgresql"):
            assert heads == ["WITH rs_rev AS", "WITH rs_0 AS"]
            assert "UPDATE site_revision SET" in sql.statements[0]
        else:
            assert heads[:2] == ["SELECT orders.id, orders.order_ref,", "UPDATE site_revision SET"]
            assert not [h for h in heads[2:] if h.startswith("SELECT")]
        assert not [s for s in sql.statements if s.startswith("SELECT webhook_endpoints")]
        assert not [s for s in sql.statements if "api_keys" in s]  # the key was cached
        with app.state.db.session() as s:
            audit = [
                (a.principal, a.method, a.path, a.status_code)
                for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))
            ]
            outbox = [(r.rma_number, r.revision) for r in s.scalars(select(AnnouncementRow))]
        assert audit == [
            ("api-key:bootstrap", "POST", "/api/v1/rmas", 201),
            ("api-key:bootstrap", "POST", "/api/v1/rmas", 201),
        ]  # once each: the middleware does not write it again
        assert outbox == [("W-0", 1), ("C-1", 2)]
        assert made.json()["revision"] == 2
        assert made.headers["location"] == "/api/v1/rmas/C-1"


def test_a_creation_writes_its_announcement_and_audit_rows_outside_the_unit_of_work(
    anydb: Database,
) -> None:
    settings = Settings(site="s1")
    audited: list[int] = []

    def audit(_rma: Rma) -> None:
        add_row(s, AuditEntry, principal="p", method="POST", path="/x", status_code=201)
        audited.append(sum(isinstance(o, AuditEntry | AnnouncementRow) for o in s.new))

    with anydb.session() as s:
        rma = create_rma(s, settings, _draft("U-1"), before_commit=audit)
        held = [type(o).__name__ for o in s.identity_map.values()]
    assert audited == [0]  # the audit row went to the creation's sink, not the session
    assert sorted(set(held)) == ["Rma", "RmaLineRecord", "RmaTransition"]  # persistent
    assert (rma.id, [line.rma_id for line in rma.lines]) == (1, [1])
    assert [(t.rma_id, t.to_state) for t in rma.transitions] == [(1, "authorized")]
    with anydb.session() as s:
        assert [(r.rma_number, r.revision) for r in s.scalars(select(AnnouncementRow))] == [
            ("U-1", rma.revision)
        ]
        assert [(a.principal, a.path) for a in s.scalars(select(AuditEntry))] == [("p", "/x")]


def _draft(number: str, site: str | None = None) -> RmaDraft:
    return RmaDraft.model_validate({**_body(number), "site": site})


def test_a_number_taken_while_waiting_for_the_lock_is_a_duplicate(anydb: Database) -> None:
    # the revision UPDATE also looks for the number; on PostgreSQL it reads from the
    # snapshot of before its wait for the lock, so the twin committed meanwhile is caught
    # by the unique constraint: DuplicateRma (409) all the same, nothing of it written
    settings = Settings(site="s1")
    holding, release = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def first() -> None:
        try:
            with anydb.session() as s:
                create_rma(
                    s,
                    settings,
                    _draft("D-1"),
                    before_commit=lambda _rma: (holding.set(), release.wait(10)),
                )
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    assert holding.wait(10)  # the first holds the site's write lock, not yet committed
    threading.Timer(0.3, release.set).start()  # commits while the second waits for it
    with anydb.session() as s, pytest.raises(DuplicateRma):
        create_rma(s, settings, _draft("D-1"))
    thread.join()
    assert not failed
    with anydb.session() as s:
        assert list(s.scalars(select(Rma.number))) == ["D-1"]
        assert head_revision(s, "s1") == 1  # the refused creation gave its revision back
        assert create_rma(s, settings, _draft("D-2")).revision == 2


def test_a_taken_number_is_a_duplicate_on_a_site_without_a_counter_yet(anydb: Database) -> None:
    settings = Settings(site="s1", sites=["s1", "s2"])
    with anydb.session() as s:
        create_rma(s, settings, _draft("E-1", "s1"))
        with pytest.raises(DuplicateRma):
            create_rma(s, settings, _draft("E-1", "s2"))  # s2's counter does not exist yet
        assert head_revision(s, "s2") == 0
        assert create_rma(s, settings, _draft("E-2", "s2")).revision == 1
        assert list(s.scalars(select(Rma.number).order_by(Rma.number))) == ["E-1", "E-2"]


def test_idempotent_replay_and_refusals_are_audited_once(database_url: str, quiet: None) -> None:
    app = create_app(_app_settings(database_url))
    with TestClient(app, headers={"X-API-Key": KEY}) as client:
        headers = {"Idempotency-Key": "k-1"}
        first = client.post("/api/v1/rmas", json=_body("I-1"), headers=headers)
        again = client.post("/api/v1/rmas", json=_body("I-1"), headers=headers)
        dup = client.post("/api/v1/rmas", json=_body("I-1"))
        bad = client.post("/api/v1/rmas", json={**_body("I-2"), "reason": "no-such-reason"})
        assert (first.status_code, again.status_code, dup.status_code) == (201, 201, 409)
        assert bad.status_code == 422
        assert again.json() == first.json()
        with app.state.db.session() as s:
            audit = [a.status_code for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
            stored = s.scalars(select(IdempotencyRecord)).one()
            numbers = list(s.scalars(select(Rma.number)))
        assert audit == [201, 201, 409, 422]
        assert (stored.status_code, stored.response) == (201, first.json())
        assert numbers == ["I-1"]


def test_a_revoked_key_is_refused_here_at_once_and_elsewhere_within_the_ttl(
    tmp_path: Path, quiet: None
) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    here, there = create_app(_app_settings(url)), create_app(_app_settings(url))
    now = [1000.0]
    with (
        TestClient(here, headers={"X-API-Key": KEY}) as admin,
        TestClient(there) as replica,
    ):
        there.state.key_cache = KeyCache(clock=lambda: now[0])  # the other replica's clock
        made = admin.post("/api/v1/api-keys", json={"name": "shop", "scopes": ["read"]})
        shop = {"X-API-Key": made.json()["key"]}
        assert admin.get("/api/v1/stations", headers=shop).status_code == 200
        assert replica.get("/api/v1/stations", headers=shop).status_code == 200  # cached there
        assert admin.delete("/api/v1/api-keys/shop").json()["revoked"] is True
        assert admin.get("/api/v1/stations", headers=shop).status_code == 401  # at once here
        now[0] += KEY_CACHE_TTL_S - 0.5
        assert replica.get("/api/v1/stations", headers=shop).status_code == 200  # within TTL
        now[0] += 0.5
        assert replica.get("/api/v1/stations", headers=shop).status_code == 401  # TTL over
        now[0] += 60
        assert replica.get("/api/v1/stations", headers=shop).status_code == 401  # not cached


def test_key_cache_keeps_valid_keys_for_the_ttl_only_and_never_undoes_a_forget() -> None:
    now = [0.0]
    cache = KeyCache(ttl_s=5.0, clock=lambda: now[0], max_entries=2)
    shop = Principal("api-key:shop", frozenset({"read"}))
    cache.put(hash_key("k-shop"), shop, cache.generation)
    assert cache.get("k-shop") == shop
    assert cache.get("k-other") is None
    now[0] = 4.999
    assert cache.get("k-shop") == shop
    now[0] = 5.0
    assert cache.get("k-shop") is None  # expired: the database is asked again
    # a look-up that read the key before its revocation here puts nothing afterwards
    begun = cache.generation
    cache.forget("shop")
    cache.put(hash_key("k-shop"), shop, begun)
    assert cache.get("k-shop") is None
    # bounded: the oldest entry goes first
    for name in ("a", "b", "c"):
        cache.put(
            hash_key(f"k-{name}"), Principal(f"api-key:{name}", frozenset()), cache.generation
        )
    assert [cache.get(f"k-{n}") is not None for n in ("a", "b", "c")] == [False, True, True]


def _rows(s: Any, table: Any, rma_id: int) -> list[dict[str, Any]]:
    key = table.c.rma_id if "rma_id" in table.c else table.c.id
    order = table.c.id
    return [
        {k: v for k, v in row._mapping.items() if k not in ("id", "rma_id", "number")}
        for row in s.execute(select(table).where(key == rma_id).order_by(order))
    ]


def test_the_sink_writes_an_rma_as_the_unit_of_work_does(anydb: Database) -> None:
    # B-1 is added to the session and flushed by its before_commit (the unit of work
    # writes it, as for any RMA the sink cannot write); B-2 is written by the row sink
    settings = Settings(site="s1")
    now = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    body = {
        **_body("B-0"),
        "customer": "Ada Lovelace",
        "customer_email": "ada@example.com",
        "tracking_number": "1Z999AA10123456784",
        "notes": "left at the door",
        "lines": [
            {"sku": "SKU-1", "quantity": 1, "unit_price_cents": 1999, "gtin": "4006381333931"},
            {"sku": "SKU-2", "quantity": 2, "serial": "SN-7", "rfid_uid": "dd:17:38:0a"},
        ],
    }
    made: dict[str, Rma] = {}
    flushed_new: list[list[str]] = []  # what each flush of the session inserted
    with anydb.session() as s:
        event.listen(
            s,
            "before_flush",
            lambda ss, *_: flushed_new.append(sorted(type(o).__name__ for o in ss.new)),
        )
        for number, flush, tracking in (
            ("B-1", True, "1Z999AA10123456784"),
            ("B-2", False, "1Z879E930346834440"),
        ):
            draft = RmaDraft.model_validate({**body, "number": number, "tracking_number": tracking})
            made[number] = create_rma(
                s,
                settings,
                draft,
                now=now,
                before_commit=(lambda r: (s.add(r), s.flush())) if flush else None,
            )
    flushed, sunk = made["B-1"], made["B-2"]
    assert (flushed.id, sunk.id) == (1, 2)
    counter = [["SiteRevision"]] if anydb.engine.dialect.name == "sqlite" else []
    assert flushed_new == [
        *counter,  # the site's first change creates its counter (PostgreSQL: by Core)
        ["Rma", "RmaLineRecord", "RmaLineRecord", "RmaTransition"],  # B-1, by the flush
    ]  # and B-2 by no flush: the sink wrote it
    assert [line.id for line in sunk.lines] == [3, 4]
    assert [line.rma_id for line in sunk.lines] == [2, 2]
    assert [t.id for t in sunk.transitions] == [2]
    with anydb.session() as s:
        for model in (Rma, RmaLineRecord, RmaTransition):
            table = model.__table__
            first, second = _rows(s, table, 1), _rows(s, table, 2)
            for row in first + second:
                row.pop("tracking_number", None)
                row.pop("revision", None)
            assert first == second, model.__name__
        stored = s.scalars(select(Rma).where(Rma.number == "B-2")).one()
        assert (stored.customer, stored.customer_email, stored.notes) == (
            "Ada Lovelace",
            "ada@example.com",
            "left at the door",
        )
        assert [
            (ln.line_no, ln.sku, ln.quantity, ln.gtin, ln.serial, ln.rfid_uid)
            for ln in stored.lines
        ] == [
            (1, "SKU-1", 1, "4006381333931", None, None),
            (2, "SKU-2", 2, None, "SN-7", "DD17380A"),
        ]
        assert [(t.trigger, t.from_state, t.to_state, t.at) for t in stored.transitions] == [
            ("authorize", "requested", "authorized", now)
        ]


def test_a_creation_queues_one_delivery_per_active_endpoint_in_their_order(
    anydb: Database,
) -> None:
    settings = Settings(site="s1")
    with anydb.session() as s:
        create_endpoint(s, "erp", "https://erp.example/hook")
        create_endpoint(s, "old", "https://old.example/hook")
        create_endpoint(s, "shop", "https://shop.example/hook")
        deactivate(s, "old")
        rma = create_rma(s, settings, _draft("H-1"), actor="api-key:shop")
    with anydb.session() as s:
        queued = [
            (d.endpoint_id, d.url, d.event_type, d.status, d.attempts, d.last_error, d.payload)
            for d in s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))
        ]
    data = {"number": "H-1", "state": "authorized", "revision": 1, "actor": "api-key:shop"}
    payload = {"type": "rma.state_changed", "site": "s1", "data": data}
    assert rma.revision == 1
    assert queued == [
        (1, "https://erp.example/hook", "rma.state_changed", "pending", 0, "", payload),
        (3, "https://shop.example/hook", "rma.state_changed", "pending", 0, "", payload),
    ]


@pytest.mark.parametrize("with_order", [True, False])
def test_a_creation_reads_its_order_and_catalogue_entries_in_one_query(
    anydb: Database, with_order: bool
) -> None:
    settings = Settings(site="s1")
    now = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)
    lines = [
        {"sku": "SHOE", "quantity": 1, "unit_price_cents": 100},
        {"sku": "SOCKS", "quantity": 1, "unit_price_cents": 100},
    ]
    with anydb.session() as s:
        s.add(CatalogueItem(sku="SHOE", name="Shoe", weight_g=850, gtins=["04006381333931"]))
        s.add(CatalogueItem(sku="HAT", name="Hat", weight_g=90))
        s.commit()
        if with_order:
            order_lines = [
                {"sku": sku, "ordered_quantity": 1, "delivered_quantity": 1, "unit_price_cents": p}
                for sku, p in (("SHOE", 7900), ("SOCKS", 1200))
            ]
            create_order(
                s,
                OrderDraft.model_validate(
                    {
                        "order_ref": "O-1",
                        "customer": "Ann",
                        "delivered_at": datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
                        "lines": order_lines,
                    }
                ),
            )
        draft = RmaDraft.model_validate({**_body("K-1"), "lines": lines})
        rma = create_rma(s, settings, draft, now=now)
        assert [
            (ln.sku, ln.unit_price_cents, ln.order_line_id is not None) for ln in rma.lines
        ] == [
            ("SHOE", 7900 if with_order else 100, with_order),
            ("SOCKS", 1200 if with_order else 100, with_order),
        ]
        assert rma.customer == ("Ann" if with_order else "")
        payload = s.scalars(select(AnnouncementRow.payload)).one()
    shoe, socks = decode_rma_change(payload).lines  # type: ignore[union-attr]
    assert (shoe.sku, shoe.weight_g, shoe.gtin) == ("SHOE", 850, "04006381333931")
    assert (socks.sku, socks.weight_g, socks.gtin) == ("SOCKS", None, None)  # not catalogued


def test_a_new_sites_first_creations_racing_are_all_stored(anydb: Database) -> None:
    # each finds no counter row for the site and creates one: the losers used to get a
    # DuplicateRma (409) from the counter's primary key (found by attacking the path)
    settings = Settings(site="s1", sites=["s1", "s9"])
    start = threading.Barrier(6)
    failed: list[BaseException] = []

    def work(t: int) -> None:
        try:
            start.wait(10)
            for i in range(3):
                with anydb.session() as s:
                    create_rma(s, settings, _draft(f"N{t}-{i}", site="s9"))
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failed == []
    with anydb.session() as s:
        revisions = sorted(s.scalars(select(Rma.revision).where(Rma.site == "s9")))
        assert revisions == list(range(1, 19))
        assert head_revision(s, "s9") == 18


def _heads(anydb: Database, work: Any) -> list[str]:
    """The first three words of each statement ``work()`` makes in this thread (but the
    reasons' cache filling itself)."""
    seen: list[str] = []
    me = threading.get_ident()

    def statement(_c: Any, _cur: Any, sql: str, *_a: Any) -> None:
        head = " ".join(sql.split()[:3])
        if threading.get_ident() == me and not head.startswith("SELECT return_reasons"):
            seen.append(head)

    event.listen(anydb.engine, "before_cursor_execute", statement)
    try:
        work()
    finally:
        event.remove(anydb.engine, "before_cursor_execute", statement)
    return seen


def test_the_site_known_before_the_order_is_locked_by_the_read_on_postgresql(
    anydb: Database,
) -> None:
    # a single-site gateway, or a draft naming its site: the order cannot change the site,
    # so on PostgreSQL the read takes the site's lock too (one round trip fewer); with
    # several sites and none named, the order's site decides: read first, then the lock
    settings = Settings(site="s1", sites=["s1", "s2"])
    postgres = anydb.engine.dialect.name == "postgresql"
    with anydb.session() as s:
        line = {"sku": "SKU-1", "ordered_quantity": 3, "delivered_quantity": 3}
        line["unit_price_cents"] = 1999
        order = {"order_ref": "O-1", "site": "s2", "lines": [line]}
        create_order(s, OrderDraft.model_validate(order))
        named = _heads(anydb, lambda: create_rma(s, settings, _draft("F-1", site="s1")))
        by_order = _heads(anydb, lambda: create_rma(s, settings, _draft("F-2")))
        alone = _heads(anydb, lambda: create_rma(s, Settings(site="s1"), _draft("F-3")))
        sites = dict(s.execute(select(Rma.number, Rma.site)).all())
        revisions = dict(s.execute(select(Rma.number, Rma.revision)).all())
    assert sites == {"F-1": "s1", "F-2": "s2", "F-3": "s1"}
    assert revisions == {"F-1": 1, "F-2": 1, "F-3": 2}
    if not postgres:  # SQLite: the write lock first (gateway.db.begin_writing)
        assert [h[0] for h in (named, by_order, alone)] == ["BEGIN IMMEDIATE"] * 3
        named, by_order, alone = named[1:], by_order[1:], alone[1:]
    read, lock = "SELECT orders.id, orders.order_ref,", "UPDATE site_revision SET"
    assert by_order[0] == read and lock in by_order  # (its order's lines read between)
    assert not [h for h in by_order if h.startswith("WITH rs_rev")]
    # F-1 is s1's first change: no counter to lock, created after the read as before
    assert named[0] == ("WITH rs_rev AS" if postgres else read) and lock in named
    assert alone[0] == ("WITH rs_rev AS" if postgres else read)
    assert (lock in alone) is not postgres


def test_a_creation_refused_after_the_locking_read_gives_back_the_lock_and_revision(
    anydb: Database,
) -> None:
    settings = Settings(site="s1")
    strict = Settings(site="s1", require_order=True)
    with anydb.session() as s:
        create_rma(s, settings, _draft("G-1"))  # s1's counter exists: the read locks it
    with anydb.session() as s, anydb.session() as other:
        with pytest.raises(PolicyViolation) as refused:
            create_rma(s, strict, _draft("G-2"))  # order O-1 is unknown
        assert refused.value.code == "unknown_order"
        if anydb.engine.dialect.name == "postgresql":
            other.execute(text("SET lock_timeout = '2s'"))  # a held lock: fails, not waits
        assert create_rma(other, settings, _draft("G-3")).revision == 2
        assert head_revision(s, "s1") == 2
    with anydb.session() as s:
        assert list(s.scalars(select(Rma.number).order_by(Rma.number))) == ["G-1", "G-3"]
