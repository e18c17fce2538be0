"""Attacks on RMA creation's locking read (one statement: order, catalogue, site lock, revision).

Each test runs on SQLite and PostgreSQL (``anydb`` / ``database_url``); the PostgreSQL
single-site or site-named cases take the folded path (``_locked_read``), the others the
old one (read, then ``next_revision_and``).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from gateway.api.routes import rmas as rmas_routes
from gateway.db import Database
from gateway.main import create_app
from gateway.models import (
    AnnouncementRow,
    CatalogueItem,
    IdempotencyRecord,
    OrderLine,
    Rma,
    SiteRevision,
)
from gateway.schemas import OrderDraft, RmaDraft
from gateway.services import rmas as rmas_service
from gateway.services.orders import InvalidOrder, create_order, upsert_order
from gateway.services.policies import PolicyViolation
from gateway.services.revisions import head_revision
from gateway.services.rmas import CreationConflict, DuplicateRma, SiteNotAllowed, create_rma
from gateway.services.tracking import TrackingNumberTaken
from gateway.settings import Settings
from protocol.messages import decode_rma_change

KEY = "attack-admin-key-0123456789abcdef"
NOW = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)


def _draft(number: str, site: str | None = None, **over: Any) -> RmaDraft:
    body: dict[str, Any] = {
        "number": number,
        "order_ref": "O-1",
        "reason": "changed_mind",
        "resolution": "refund",
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 1999}],
        "site": site,
    }
    body.update(over)
    return RmaDraft.model_validate(body)


def _pg(anydb: Database) -> bool:
    return anydb.engine.dialect.name == "postgresql"


def _order(s: Any, ref: str = "O-1", site: str | None = None, **over: Any) -> None:
    lines = over.pop(
        "lines",
        [
            {
                "sku": "SHOE",
                "ordered_quantity": 2,
                "delivered_quantity": 2,
                "unit_price_cents": 7900,
            },
            {
                "sku": "SOCKS",
                "ordered_quantity": 3,
                "delivered_quantity": 3,
                "unit_price_cents": 1200,
            },
            {
                "sku": "HAT",
                "ordered_quantity": 1,
                "delivered_quantity": 1,
                "unit_price_cents": 2500,
            },
        ],
    )
    body: dict[str, Any] = {
        "order_ref": ref,
        "customer": "Ann",
        "delivered_at": datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        "lines": lines,
    }
    if site is not None:
        body["site"] = site
    body.update(over)
    create_order(s, OrderDraft.model_validate(body))


def _run(n: int, work: Any) -> list[BaseException]:
    start = threading.Barrier(n)
    failed: list[BaseException] = []
    lock = threading.Lock()

    def target(t: int) -> None:
        try:
            start.wait(10)
            work(t)
        except BaseException as exc:
            with lock:
                failed.append(exc)

    threads = [threading.Thread(target=target, args=(t,)) for t in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return failed


# --- concurrency ----------------------------------------------------------------------


def test_many_concurrent_creations_on_one_site_get_revisions_without_gap(anydb: Database) -> None:
    settings = Settings(site="s1")
    with anydb.session() as s:
        create_rma(s, settings, _draft("W-0"))  # the counter exists: the read locks it

    def work(t: int) -> None:
        for i in range(4):
            with anydb.session() as s:
                create_rma(s, settings, _draft(f"C{t}-{i}"))

    assert _run(8, work) == []
    with anydb.session() as s:
        rows = s.execute(select(Rma.number, Rma.revision).order_by(Rma.revision)).all()
        assert [r for _n, r in rows] == list(range(1, 34))
        assert len({n for n, _r in rows}) == 33
        ann = s.execute(
            select(AnnouncementRow.rma_number, AnnouncementRow.revision, AnnouncementRow.site)
        ).all()
        assert sorted(ann) == sorted((n, r, "s1") for n, r in rows)
        for payload, number, revision in s.execute(
            select(AnnouncementRow.payload, AnnouncementRow.rma_number, AnnouncementRow.revision)
        ):
            change = decode_rma_change(payload)
            assert (change.number, change.revision) == (number, revision)  # type: ignore[union-attr]
        assert head_revision(s, "s1") == 33


def test_creations_racing_with_one_number_store_it_once(anydb: Database) -> None:
    settings = Settings(site="s1")
    with anydb.session() as s:
        create_rma(s, settings, _draft("W-0"))
    outcomes: list[str] = []
    lock = threading.Lock()

    def work(_t: int) -> None:
        with anydb.session() as s:
            try:
                create_rma(s, settings, _draft("SAME-1"))
                result = "made"
            except DuplicateRma:
                result = "dup"
            with lock:
                outcomes.append(result)

    assert _run(8, work) == []
    assert sorted(outcomes) == ["dup"] * 7 + ["made"]
    with anydb.session() as s:
        assert list(s.scalars(select(Rma.number).order_by(Rma.number))) == ["SAME-1", "W-0"]
        assert s.scalar(select(Rma.revision).where(Rma.number == "SAME-1")) == 2
        assert head_revision(s, "s1") == 2
        assert s.scalar(select(text("count(*)")).select_from(AnnouncementRow)) == 2
        assert create_rma(s, settings, _draft("AFTER")).revision == 3


def test_same_idempotency_key_racing_gives_one_rma_and_one_body(
    database_url: str, caplog: Any
) -> None:
    app = create_app(
        Settings(
            env="dev", database_url=database_url, mqtt_port=1, bootstrap_api_key=KEY, site="s1"
        )
    )
    body = {
        "order_ref": "O-1",
        "reason": "changed_mind",
        "resolution": "refund",
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 1999}],
    }
    responses: list[Any] = []
    lock = threading.Lock()
    with TestClient(app, headers={"X-API-Key": KEY}) as client:
        assert client.post("/api/v1/rmas", json={**body, "number": "W-0"}).status_code == 201

        def work(_t: int) -> None:
            r = client.post("/api/v1/rmas", json=body, headers={"Idempotency-Key": "k-race-1"})
            with lock:
                responses.append(r)

        assert _run(6, work) == []
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] * 6, [r.text for r in responses]
        assert len({r.text for r in responses}) == 1
        db = app.state.db
        with db.session() as s:
            numbers = list(s.scalars(select(Rma.number).where(Rma.number != "W-0")))
            assert len(numbers) == 1
            assert responses[0].json()["number"] == numbers[0]
            assert responses[0].json()["revision"] == 2
            assert head_revision(s, "s1") == 2
            assert s.scalar(select(text("count(*)")).select_from(IdempotencyRecord)) == 1


# --- refusals after the lock ----------------------------------------------------------


def _assert_lock_free_and_revision_back(anydb: Database, settings: Settings, head: int) -> None:
    with anydb.session() as other:
        if _pg(anydb):
            other.execute(text("SET lock_timeout = '2s'"))
        assert head_revision(other, "s1") == head
        made = create_rma(other, settings, _draft("NEXT-1", order_ref="NO-ORDER"))
        assert made.revision == head + 1


REFUSALS = [
    "unknown_order",
    "window_closed",
    "quantity",
    "sku_not_on_order",
    "tracking_taken",
    "duplicate",
    "not_allowed",
    "unknown_site",
]


@pytest.mark.parametrize("kind", REFUSALS)
def test_a_refusal_after_the_lock_stores_nothing_and_releases_the_lock(
    anydb: Database, kind: str
) -> None:
    settings = Settings(site="s1")
    with anydb.session() as s:
        _order(s)
        create_rma(
            s, settings, _draft("W-0", order_ref="NO-ORDER", tracking_number="1Z999AA10123456784")
        )
        create_rma(s, settings, _draft("W-1", lines=[{"sku": "SOCKS", "quantity": 2}]), now=NOW)
    drafts: dict[str, tuple[Settings, RmaDraft, type[BaseException], dict[str, Any]]] = {
        "unknown_order": (
            Settings(site="s1", require_order=True),
            _draft("X-1", order_ref="NOPE"),
            PolicyViolation,
            {},
        ),
        "window_closed": (
            settings,
            _draft("X-1", lines=[{"sku": "SHOE", "quantity": 1}]),
            PolicyViolation,
            {"now": datetime(2026, 3, 5, tzinfo=UTC)},
        ),
        "quantity": (
            settings,
            _draft("X-1", lines=[{"sku": "SOCKS", "quantity": 2}]),
            PolicyViolation,
            {},
        ),
        "sku_not_on_order": (
            settings,
            _draft("X-1", lines=[{"sku": "GLOVE", "quantity": 1}]),
            PolicyViolation,
            {},
        ),
        "tracking_taken": (
            settings,
            _draft("X-1", order_ref="NO-ORDER", tracking_number="1Z999AA10123456784"),
            TrackingNumberTaken,
            {},
        ),
        "duplicate": (settings, _draft("W-1", order_ref="NO-ORDER"), DuplicateRma, {}),
        "not_allowed": (
            settings,
            _draft("X-1", order_ref="NO-ORDER"),
            SiteNotAllowed,
            {"allowed_sites": frozenset({"s2"})},
        ),
        "unknown_site": (
            settings,
            _draft("X-1", site="zz", order_ref="NO-ORDER"),
            PolicyViolation,
            {},
        ),
    }
    st, draft, exc, kw = drafts[kind]
    kw.setdefault("now", NOW)
    with anydb.session() as s:
        with pytest.raises(exc):
            create_rma(s, st, draft, **kw)
        # the same session is usable at once, and the lock is free for another one
        _assert_lock_free_and_revision_back(anydb, settings, 2)
        assert create_rma(s, settings, _draft("SAME-SESSION", order_ref="NO-ORDER")).revision == 4
    with anydb.session() as s:
        assert sorted(s.scalars(select(Rma.number))) == ["NEXT-1", "SAME-SESSION", "W-0", "W-1"]
        assert sorted(s.scalars(select(AnnouncementRow.revision))) == [1, 2, 3, 4]


def test_a_second_creation_in_a_session_after_a_duplicate(anydb: Database) -> None:
    settings = Settings(site="s1")
    with anydb.session() as s:
        _order(s)
        create_rma(s, settings, _draft("D-1", lines=[{"sku": "SHOE", "quantity": 1}]), now=NOW)
        with pytest.raises(DuplicateRma):
            create_rma(s, settings, _draft("D-1", lines=[{"sku": "SHOE", "quantity": 1}]), now=NOW)
        rma = create_rma(
            s, settings, _draft("D-2", lines=[{"sku": "SHOE", "quantity": 1}]), now=NOW
        )
        assert rma.revision == 2
        with pytest.raises(PolicyViolation) as refused:  # both shoes now on open RMAs
            create_rma(s, settings, _draft("D-3", lines=[{"sku": "SHOE", "quantity": 1}]), now=NOW)
        assert refused.value.code == "quantity_exceeds_returnable"
        assert head_revision(s, "s1") == 2


# --- sites ----------------------------------------------------------------------------


def test_multi_site_order_site_and_draft_site(anydb: Database) -> None:
    settings = Settings(site="s1", sites=["s1", "s2"])
    with anydb.session() as s:
        _order(s, "O-2", site="s2")
        create_rma(s, settings, _draft("M-0", site="s1", order_ref="NO"))
        create_rma(s, settings, _draft("M-1", site="s2", order_ref="NO"))
        # no site: the order's (s2); a site named: that one, whatever the order's
        a = create_rma(
            s,
            settings,
            _draft("M-2", order_ref="O-2", lines=[{"sku": "HAT", "quantity": 1}]),
            now=NOW,
        )
        b = create_rma(
            s,
            settings,
            _draft("M-3", site="s1", order_ref="O-2", lines=[{"sku": "SHOE", "quantity": 1}]),
            now=NOW,
        )
        c = create_rma(
            s,
            settings,
            _draft("M-4", site="s2", order_ref="O-2", lines=[{"sku": "SOCKS", "quantity": 1}]),
            now=NOW,
        )
        assert (a.site, a.revision) == ("s2", 2)
        assert (b.site, b.revision) == ("s1", 2)
        assert (c.site, c.revision) == ("s2", 3)
        assert [ln.unit_price_cents for ln in b.lines] == [7900]
        assert head_revision(s, "s1") == 2 and head_revision(s, "s2") == 3
        ann = sorted(
            s.execute(
                select(AnnouncementRow.rma_number, AnnouncementRow.site, AnnouncementRow.revision)
            ).all()
        )
        assert ann == [
            ("M-0", "s1", 1),
            ("M-1", "s2", 1),
            ("M-2", "s2", 2),
            ("M-3", "s1", 2),
            ("M-4", "s2", 3),
        ]


# --- the fold path gives what the old path gives --------------------------------------


def _made(anydb: Database, settings: Settings, site: str | None) -> tuple[Any, ...]:
    lines = [
        {"sku": "SHOE", "quantity": 1},
        {"sku": "SOCKS", "quantity": 1, "order_line": 2},
        {"sku": "SOCKS", "quantity": 2, "order_line": 2},
        {"sku": "HAT", "quantity": 1, "gtin": "04006381333931"},
    ]
    with anydb.session() as s:
        s.add(CatalogueItem(sku="SHOE", name="Shoe", weight_g=850, gtins=["04006381333931"]))
        s.add(CatalogueItem(sku="BELT", name="Belt", weight_g=120))
        s.add(CatalogueItem(sku="SOCKS", name="Socks", weight_g=60))
        s.commit()
        _order(s, "O-1", site="s1")
        create_rma(s, settings, _draft("P-0", site=site, order_ref="NO"))
        rma = create_rma(s, settings, _draft("P-1", site=site, lines=lines), now=NOW)
        got = (
            rma.site,
            rma.revision,
            rma.customer,
            rma.currency,
            rma.delivered_on,
            [
                (
                    ln.line_no,
                    ln.sku,
                    ln.quantity,
                    ln.unit_price_cents,
                    ln.catalogue.name if ln.catalogue else None,
                )
                for ln in rma.lines
            ],
        )
        payload = s.scalar(
            select(AnnouncementRow.payload).where(AnnouncementRow.rma_number == "P-1")
        )
    change = decode_rma_change(payload)
    return got, [(ln.sku, ln.quantity, ln.weight_g, ln.gtin) for ln in change.lines]  # type: ignore[union-attr]


def test_folded_and_old_path_give_the_same_rma(anydb: Database) -> None:
    # the same creation: one-site gateway (folded on PostgreSQL) and a two-site gateway
    # without a site in the draft (old path everywhere), on fresh data each
    one = _made(anydb, Settings(site="s1"), None)
    with anydb.session() as s:
        for table in (
            "announcement_outbox",
            "rma_transitions",
            "rma_lines",
            "rmas",
            "order_lines",
            "orders",
            "catalogue_items",
            "webhook_deliveries",
        ):
            s.execute(text(f"DELETE FROM {table}"))
        s.execute(text("DELETE FROM site_revision"))
        s.commit()
    two = _made(anydb, Settings(site="s1", sites=["s1", "s2"]), None)
    assert one == two
    got, payload = one
    assert got[:3] == ("s1", 2, "Ann")
    assert got[5] == [
        (1, "SHOE", 1, 7900, "Shoe"),
        (2, "SOCKS", 1, 1200, "Socks"),
        (3, "SOCKS", 2, 1200, "Socks"),
        (4, "HAT", 1, 2500, None),
    ]
    assert payload == [
        ("SHOE", 1, 850, "04006381333931"),
        ("SOCKS", 1, 60, None),
        ("SOCKS", 2, 60, None),
        ("HAT", 1, None, "04006381333931"),
    ]


def test_no_order_no_catalogue_on_the_fold_path(anydb: Database) -> None:
    settings = Settings(site="s1")
    with anydb.session() as s:
        assert create_rma(s, settings, _draft("Z-0", order_ref="NO")).revision == 1
        rma = create_rma(
            s,
            settings,
            _draft(
                "Z-1",
                order_ref="NO",
                lines=[
                    {"sku": "A", "quantity": 1, "unit_price_cents": 5},
                    {"sku": "A", "quantity": 2, "unit_price_cents": 7},
                ],
            ),
        )
        assert rma.revision == 2
        assert [(ln.sku, ln.quantity, ln.unit_price_cents, ln.catalogue) for ln in rma.lines] == [
            ("A", 1, 5, None),
            ("A", 2, 7, None),
        ]
        assert rma.customer == "" and rma.currency == settings.currency
        assert s.get(SiteRevision, "s1").revision == 2  # type: ignore[union-attr]


# --- creations on two sites are not serialised with each other ------------------------


def _hold_first_then(
    anydb: Database, settings: Settings, first: RmaDraft, second: RmaDraft | Any
) -> tuple[list[BaseException], BaseException | None]:
    """``first`` created in a thread, held just before its commit while ``second`` is
    created here (in another site when the drafts say so), or while ``second(session)``
    runs here; the outcomes."""
    holding, release = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def run_first() -> None:
        try:
            with anydb.session() as s:
                create_rma(
                    s,
                    settings,
                    first,
                    now=NOW,
                    before_commit=lambda _r: (holding.set(), release.wait(10)),
                )
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run_first)
    thread.start()
    assert holding.wait(10)
    threading.Timer(0.5, release.set).start()  # SQLite: the second waits for this commit
    second_exc: BaseException | None = None
    try:
        with anydb.session() as s:
            if isinstance(second, RmaDraft):
                create_rma(s, settings, second, now=NOW)
            else:
                second(s)
    except BaseException as exc:
        second_exc = exc
    release.set()
    thread.join(20)
    return failed, second_exc


def test_one_order_line_returned_on_two_sites_at_once_is_not_over_returned(anydb: Database) -> None:
    # the order's only HAT (delivered 1) asked back twice at once, by drafts naming two
    # sites: the returnable check of the second does not see the first (not committed),
    # and nothing serialises them on PostgreSQL (each locks its own site's counter)
    settings = Settings(site="s1", sites=["s1", "s2"])
    with anydb.session() as s:
        _order(s, "O-1", site="s1")
        create_rma(s, settings, _draft("W-1", site="s1", order_ref="NO"))
        create_rma(s, settings, _draft("W-2", site="s2", order_ref="NO"))
    hat = [{"sku": "HAT", "quantity": 1}]
    failed, second = _hold_first_then(
        anydb, settings, _draft("H-1", site="s1", lines=hat), _draft("H-2", site="s2", lines=hat)
    )
    assert failed == []
    with anydb.session() as s:
        stored = sorted(s.scalars(select(Rma.number).where(Rma.order_ref == "O-1")))
    assert isinstance(second, PolicyViolation), (second, stored)
    assert second.code == "quantity_exceeds_returnable"
    assert stored == ["H-1"]


def test_one_tracking_number_on_two_sites_at_once_is_refused_as_taken(anydb: Database) -> None:
    # the tracking number's unique index catches the second, but the IntegrityError is
    # reported as DuplicateRma (409 "RMA already exists") for a number nobody has
    settings = Settings(site="s1", sites=["s1", "s2"])
    with anydb.session() as s:
        create_rma(s, settings, _draft("W-1", site="s1", order_ref="NO"))
        create_rma(s, settings, _draft("W-2", site="s2", order_ref="NO"))
    tn = "1Z999AA10123456784"
    failed, second = _hold_first_then(
        anydb,
        settings,
        _draft("T-1", site="s1", order_ref="NO", tracking_number=tn),
        _draft("T-2", site="s2", order_ref="NO", tracking_number=tn),
    )
    outcomes = [*failed, second]
    with anydb.session() as s:
        holder = s.scalar(select(Rma.number).where(Rma.tracking_number == tn))
    assert holder in ("T-1", "T-2")
    losers = [e for e in outcomes if e is not None]
    assert len(losers) == 1
    # what happens on PostgreSQL: the loser's INSERT breaks the unique index and it is
    # told its (free) RMA number is taken
    assert isinstance(losers[0], TrackingNumberTaken), repr(losers[0])


def test_an_order_line_deleted_under_a_creation_is_a_conflict_not_a_duplicate(
    anydb: Database,
) -> None:
    # the order line the RMA refers to goes (an order update dropping it) after the
    # creation read it: the foreign key breaks at the write, and that IntegrityError
    # was reported as DuplicateRma (409 "RMA 'F-1' already exists") for a free number
    settings = Settings(site="s1")
    with anydb.session() as s:
        _order(s, "O-1", site="s1")

    def drop_the_hat(_rma: Rma) -> None:
        s.execute(text("DELETE FROM order_lines WHERE sku = 'HAT'"))

    with anydb.session() as s, pytest.raises(CreationConflict) as caught:
        create_rma(
            s,
            settings,
            _draft("F-1", lines=[{"sku": "HAT", "quantity": 1}]),
            now=NOW,
            before_commit=drop_the_hat,
        )
    assert str(caught.value) == (
        "RMA 'F-1' not created: the order or data it refers to changed while it was being "
        "created; retry"
    )
    with anydb.session() as s:
        assert list(s.scalars(select(Rma.number))) == []
        assert s.scalar(select(OrderLine.id).where(OrderLine.sku == "HAT")) is not None
        # the number is free: the same request again is stored
        again = create_rma(
            s, settings, _draft("F-1", lines=[{"sku": "HAT", "quantity": 1}]), now=NOW
        )
        assert again.number == "F-1"


def test_an_order_line_deleted_under_a_creation_is_409_over_http(database_url: str) -> None:
    app = create_app(
        Settings(
            env="dev", database_url=database_url, mqtt_port=1, bootstrap_api_key=KEY, site="s1"
        )
    )
    with TestClient(app) as client:
        headers = {"X-API-Key": KEY}
        order = {
            "order_ref": "O-1",
            "lines": [
                {
                    "sku": "HAT",
                    "ordered_quantity": 1,
                    "delivered_quantity": 1,
                    "unit_price_cents": 2500,
                }
            ],
        }
        assert client.post("/api/v1/orders", json=order, headers=headers).status_code == 201
        real = rmas_service.create_rma

        def line_dropped_meanwhile(session: Any, *args: Any, **kwargs: Any) -> Any:
            inner = kwargs["before_commit"]

            def before_commit(rma: Rma) -> None:
                session.execute(text("DELETE FROM order_lines WHERE sku = 'HAT'"))
                inner(rma)

            return real(session, *args, **{**kwargs, "before_commit": before_commit})

        body = {
            "number": "F-1",
            "order_ref": "O-1",
            "reason": "changed_mind",
            "resolution": "refund",
            "lines": [{"sku": "HAT", "quantity": 1}],
        }
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(rmas_routes, "create_rma", line_dropped_meanwhile)
            r = client.post("/api/v1/rmas", json=body, headers=headers)
        assert r.status_code == 409, r.text
        assert r.json() == {
            "detail": "RMA 'F-1' not created: the order or data it refers to changed while "
            "it was being created; retry"
        }
        assert client.get("/api/v1/rmas/F-1", headers=headers).status_code == 404


def test_creations_and_transitions_racing_on_one_site_share_one_revision_sequence(
    anydb: Database,
) -> None:
    from gateway.services.rmas import get_rma, transition_rma

    settings = Settings(site="s1")
    with anydb.session() as s:
        for i in range(4):
            create_rma(s, settings, _draft(f"B-{i}", order_ref="NO"))  # revisions 1..4

    def work(t: int) -> None:
        if t < 4:  # ship then cancel B-t
            for trigger in ("ship", "cancel"):
                with anydb.session() as s:
                    rma = get_rma(s, f"B-{t}")
                    assert rma is not None
                    transition_rma(s, settings, rma, trigger, actor="t")
        else:
            for i in range(3):
                with anydb.session() as s:
                    create_rma(s, settings, _draft(f"N{t}-{i}", order_ref="NO"))

    assert _run(8, work) == []
    with anydb.session() as s:
        revisions = sorted(s.scalars(select(AnnouncementRow.revision)))
        assert revisions == list(range(1, 4 + 8 + 12 + 1))
        assert head_revision(s, "s1") == 24
        last: dict[str, int] = {}
        for number, revision in s.execute(
            select(AnnouncementRow.rma_number, AnnouncementRow.revision)
        ):
            last[number] = max(last.get(number, 0), revision)
        assert dict(s.execute(select(Rma.number, Rma.revision)).all()) == last
        assert len(last) == 16


@pytest.mark.parametrize("same_body", [True, False])
def test_one_idempotency_key_racing_with_numbered_bodies(
    database_url: str, same_body: bool
) -> None:
    app = create_app(
        Settings(
            env="dev", database_url=database_url, mqtt_port=1, bootstrap_api_key=KEY, site="s1"
        )
    )

    def body(t: int) -> dict[str, Any]:
        return {
            "number": "IK-1" if same_body else f"IK-{t}",
            "order_ref": "O-1",
            "reason": "changed_mind",
            "resolution": "refund",
            "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 1999}],
        }

    responses: dict[int, Any] = {}
    with TestClient(app, headers={"X-API-Key": KEY}) as client:
        assert client.post("/api/v1/rmas", json={**body(0), "number": "W-0"}).status_code == 201

        def work(t: int) -> None:
            responses[t] = client.post(
                "/api/v1/rmas", json=body(t), headers={"Idempotency-Key": "k2"}
            )

        assert _run(6, work) == []
        with app.state.db.session() as s:
            stored = sorted(s.scalars(select(Rma.number).where(Rma.number != "W-0")))
            assert head_revision(s, "s1") == 2
        assert len(stored) == 1
        codes = sorted(r.status_code for r in responses.values())
        if same_body:
            assert codes == [201] * 6
            assert len({r.text for r in responses.values()}) == 1
            assert stored == ["IK-1"]
        else:
            assert codes == [201] + [422] * 5, [r.text for r in responses.values()]
            winner = next(r for r in responses.values() if r.status_code == 201)
            assert winner.json()["number"] == stored[0]


def test_catalogue_without_order_and_an_order_of_an_unserved_site(anydb: Database) -> None:
    settings = Settings(site="s1")
    with anydb.session() as s:
        s.add(CatalogueItem(sku="SHOE", name="Shoe", weight_g=850, gtins=["04006381333931"]))
        s.commit()
        _order(s, "O-9", site="s9")  # another gateway's order: its data, this site
        create_rma(s, settings, _draft("U-0", order_ref="NO"))
        a = create_rma(
            s,
            settings,
            _draft(
                "U-1",
                order_ref="NO",
                lines=[{"sku": "SHOE", "quantity": 2, "unit_price_cents": 10}],
            ),
        )
        b = create_rma(
            s,
            settings,
            _draft("U-2", order_ref="O-9", lines=[{"sku": "SHOE", "quantity": 2}]),
            now=NOW,
        )
        assert (a.site, a.revision, b.site, b.revision) == ("s1", 2, "s1", 3)
        assert [(ln.unit_price_cents, ln.catalogue.weight_g) for ln in a.lines] == [(10, 850)]  # type: ignore[union-attr]
        assert [(ln.unit_price_cents, ln.order_line_id is not None) for ln in b.lines] == [
            (7900, True)
        ]
        payloads = dict(
            s.execute(select(AnnouncementRow.rma_number, AnnouncementRow.payload)).all()
        )
    (line,) = decode_rma_change(payloads["U-1"]).lines  # type: ignore[union-attr]
    assert (line.sku, line.quantity, line.weight_g, line.gtin) == ("SHOE", 2, 850, "04006381333931")


def test_an_order_update_racing_a_creation_counts_its_claims(anydb: Database) -> None:
    # the update lowers HAT's delivered units to 0 while a creation claiming the one HAT
    # waits to commit: it used to count the claims before that commit (none) and store an
    # order with 1 unit on an RMA and 0 delivered; on PostgreSQL it now waits for the
    # order's lock. SQLite: it used to as well (the driver began the update's transaction
    # at its first write, after the counts); it now begins with BEGIN IMMEDIATE and waits
    # for the creation's commit
    settings = Settings(site="s1")
    with anydb.session() as s:
        _order(s, "O-1", site="s1")
    hat = [{"sku": "HAT", "quantity": 1}]
    lowered = [
        {"sku": "SHOE", "ordered_quantity": 2, "delivered_quantity": 2, "unit_price_cents": 7900},
        {"sku": "SOCKS", "ordered_quantity": 3, "delivered_quantity": 3, "unit_price_cents": 1200},
        {"sku": "HAT", "ordered_quantity": 1, "delivered_quantity": 0, "unit_price_cents": 2500},
    ]
    draft = OrderDraft.model_validate(
        {
            "order_ref": "O-1",
            "customer": "Ann",
            "site": "s1",
            "delivered_at": datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
            "lines": lowered,
        }
    )
    # the update runs while the creation waits to commit (then commits while it waits)
    failed, outcome = _hold_first_then(
        anydb, settings, _draft("U-1", lines=hat), lambda s: upsert_order(s, draft)
    )
    assert failed == []
    with anydb.session() as s:
        hat_delivered = s.scalar(select(OrderLine.delivered_quantity).where(OrderLine.sku == "HAT"))
        claimed = list(s.scalars(select(Rma.number).where(Rma.order_ref == "O-1")))
    assert claimed == ["U-1"]
    assert hat_delivered == 1  # not lowered below what the RMA claims
    assert isinstance(outcome, InvalidOrder), repr(outcome)
    assert "1 unit(s) already returned or on open RMAs, more than the 0 delivered" in str(outcome)
