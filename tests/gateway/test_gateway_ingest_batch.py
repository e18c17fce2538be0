"""The set-based event batch (issue 17 item 4), straight on the service, on both backends.

Exactly once per event and per unit credit, whatever the batch mixes: duplicates in the
batch and from an earlier batch, a refused (untrusted) event, one whose crediting fails,
two parcels of one RMA, and an RMA that another writer (the other replica, a lead) is
changing while the batch runs.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from gateway.db import Database
from gateway.models import (
    AnnouncementRow,
    Credit,
    Rma,
    RmaLineRecord,
    RmaTransition,
    SiteRevision,
    StationEvent,
    StockMovement,
    WebhookDelivery,
)
from gateway.schemas import RmaDraft
from gateway.services import credits
from gateway.services import events as events_service
from gateway.services.events import (
    Outcome,
    ingest_event,
    ingest_events,
    screen_event,
    screen_events,
)
from gateway.services.rma_writer import load_for_change
from gateway.services.rmas import create_rma
from gateway.services.webhook_endpoints import ensure_configured
from protocol import Evidence, ParcelEvent, UnitReceipt
from simulator.load import PRODUCT_GTIN, parcel
from tests.gateway.test_gateway_mqtt_ingest import fail_ingest
from tests.gateway.test_gateway_returns import CFG


@pytest.fixture
def crediting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Automatic crediting on, by :data:`CFG` (restored at teardown)."""
    monkeypatch.setattr(credits._Config, "settings", CFG)


@pytest.fixture
def one_by_one(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the batches that went the one-by-one way (the fallback) meanwhile."""
    sizes: list[int] = []
    real = events_service._ingest_one_by_one

    def counted(session: Any, events: Any, *args: Any) -> Any:
        sizes.append(len(events))
        return real(session, events, *args)

    monkeypatch.setattr(events_service, "_ingest_one_by_one", counted)
    return sizes


def make_rmas(db: Database, numbers: list[str], *, quantity: int = 1) -> None:
    """One RMA per number, ``quantity`` units of SKU A (GTIN declared), authorised."""
    with db.session() as s:
        ensure_configured(s, CFG)  # a webhook endpoint: credit / stock webhooks are queued
        for n in numbers:
            draft = RmaDraft.model_validate(
                {
                    "number": n,
                    "order_ref": f"O-{n}",
                    "reason": "changed_mind",
                    "resolution": "refund",
                    "lines": [
                        {
                            "sku": "A",
                            "quantity": quantity,
                            "unit_price_cents": 1999,
                            "gtin": PRODUCT_GTIN,
                        }
                    ],
                }
            )
            create_rma(s, CFG, draft, actor="api-key:shop")


def second_unit(number: str, station: str = "st1") -> ParcelEvent:
    """A parcel of RMA ``number`` proving its unit 2 (a second parcel of the return)."""
    first = parcel(number, station, 2)
    receipt = UnitReceipt(
        line_no=1,
        sku="A",
        unit=2,
        evidence=Evidence.GTIN,
        verified=True,
        identifier=PRODUCT_GTIN.zfill(14),
    )
    return first.model_copy(update={"event_id": uuid.uuid4().hex, "units": (receipt,)})


def credits_by_rma(db: Database) -> Counter[str]:
    with db.session() as s:
        return Counter(s.scalars(select(Credit.rma_number)))


def count(db: Database, model: Any, *where: Any) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_mixed_batch_outcomes_are_exact_and_every_unit_credited_once(
    anydb: Database, crediting: None, one_by_one: list[int]
) -> None:
    numbers = [f"M{i:03d}" for i in range(8)]
    make_rmas(anydb, numbers)
    events = [parcel(n, "st1", i + 1) for i, n in enumerate(numbers)]
    with anydb.session() as s:  # an earlier batch stored the first one
        assert [r.outcome for r in ingest_events(s, events[:1])] == [Outcome.STORED]
    batch = [*events, events[3], events[0]]  # a redelivery in the batch, one of before
    with anydb.session() as s:
        results = ingest_events(s, batch)
    assert [(r.event_id, r.outcome) for r in results] == [
        (events[0].event_id, Outcome.DUPLICATE),
        *[(e.event_id, Outcome.STORED) for e in events[1:]],
        (events[3].event_id, Outcome.DUPLICATE),
        (events[0].event_id, Outcome.DUPLICATE),
    ]
    assert credits_by_rma(anydb) == Counter(numbers)  # each once
    assert count(anydb, StationEvent) == 8
    assert count(anydb, StockMovement, StockMovement.kind == "return_in") == 8
    assert count(anydb, WebhookDelivery, WebhookDelivery.event_type == "credit.issued") == 8
    with anydb.session() as s:
        rmas = {r.number: r for r in s.scalars(select(Rma))}
        revisions = sorted(r.revision for r in rmas.values())
        head = s.scalar(select(SiteRevision.revision).where(SiteRevision.site == CFG.site))
        announced = sorted(
            s.scalars(select(AnnouncementRow.revision).where(AnnouncementRow.revision > 8))
        )
    assert {r.state for r in rmas.values()} == {"refunded"}
    # 8 creations, then 8 receipts: one revision each, none skipped or shared
    assert (revisions, head) == (list(range(9, 17)), 16)
    assert announced == list(range(9, 17))  # each change's announcement, in its transaction
    assert one_by_one == []  # all of it set-based


def test_refused_event_is_screened_out_of_the_batch_like_one_by_one(
    anydb: Database, crediting: None
) -> None:
    make_rmas(anydb, ["R001", "R002"])
    good = parcel("R001", "st1", 1)
    unannounced = parcel("R999", "st1", 2)  # an RMA the site never heard of
    unverified = parcel("R002", "st1", 3).model_copy(
        update={
            "units": (
                UnitReceipt(line_no=1, sku="A", unit=1, evidence=Evidence.LABEL, verified=False),
            )
        }
    )
    batch = [good, unannounced, unverified]
    with anydb.session() as s:
        refusals = screen_events(s, batch)
        one_by_one = [screen_event(s, e) for e in batch]
    assert [None if r is None else r.code for r in refusals] == [
        None,
        "rma_not_announced",
        "restock_unverified",
    ]
    assert [str(r) for r in refusals] == [str(r) for r in one_by_one]


def test_event_that_fails_sends_the_batch_one_by_one_nothing_else_lost(
    anydb: Database, crediting: None, monkeypatch: pytest.MonkeyPatch, one_by_one: list[int]
) -> None:
    numbers = [f"F{i:03d}" for i in range(5)]
    make_rmas(anydb, numbers)
    events = [parcel(n, "st1", i + 1) for i, n in enumerate(numbers)]
    poison = events[2]
    calls: Counter[str] = Counter()

    def fail(event: ParcelEvent) -> None:
        calls[event.event_id] += 1
        if event is poison:
            raise ValueError("bad value")

    fail_ingest(monkeypatch, fail)
    with anydb.session() as s:
        results = ingest_events(s, [*events, events[0]])
    assert [(r.event_id, r.outcome) for r in results] == [
        *[(e.event_id, Outcome.POISON if e is poison else Outcome.STORED) for e in events],
        (events[0].event_id, Outcome.DUPLICATE),
    ]
    poisoned = results[2].error
    assert isinstance(poisoned, ValueError) and str(poisoned) == "bad value"
    assert credits_by_rma(anydb) == Counter(n for n in numbers if n != poison.rma_number)
    with anydb.session() as s:
        assert sorted(s.scalars(select(StationEvent.event_id))) == sorted(
            e.event_id for e in events if e is not poison
        )
    # the set-based attempt stopped at the poison; the fallback did every event once more
    assert calls == Counter({e.event_id: 2 if i <= 2 else 1 for i, e in enumerate(events)})
    assert one_by_one == [6]


def test_two_parcels_of_one_rma_in_a_batch_credit_both_units_in_order(
    anydb: Database, crediting: None, one_by_one: list[int]
) -> None:
    make_rmas(anydb, ["T001"], quantity=2)
    make_rmas(anydb, ["T002"])
    first, second = parcel("T001", "st1", 1), second_unit("T001")
    between = parcel("T002", "st1", 3)
    with anydb.session() as s:
        results = ingest_events(s, [first, between, second, first])
    assert [r.outcome for r in results] == [
        Outcome.STORED,
        Outcome.STORED,
        Outcome.STORED,
        Outcome.DUPLICATE,
    ]
    with anydb.session() as s:
        units = sorted(
            s.execute(
                select(Credit.unit_no, Credit.amount_cents)
                .join(RmaLineRecord, RmaLineRecord.id == Credit.rma_line_id)
                .where(Credit.rma_number == "T001")
                .order_by(Credit.unit_no)
            ).all()
        )
        revisions = list(
            s.scalars(
                select(AnnouncementRow.revision)
                .where(AnnouncementRow.rma_number == "T001")
                .order_by(AnnouncementRow.id)
            )
        )
        rma = s.scalar(select(Rma).where(Rma.number == "T001"))
        assert rma is not None
        states = [t.to_state for t in rma.transitions]
    assert [u for u, _a in units] == [1, 2]
    # created at 1, then (T002 created at 2) first parcel at 3 with T002 at 4, second at 5
    assert revisions == [1, 3, 5]
    assert states[-2:] == ["graded", "refunded"]  # partly received, then received
    assert "partially_received" in states
    assert one_by_one == []  # set-based, in two rounds: each change with the state it reached


def test_rma_changed_by_another_writer_meanwhile_is_credited_once(
    anydb: Database, crediting: None, one_by_one: list[int]
) -> None:
    """The other replica (or a lead) holds the RMA while the batch comes: the batch waits
    for its commit, sees its result, and credits nothing twice."""
    make_rmas(anydb, ["C001", "C002"])
    theirs = parcel("C001", "st2", 1)  # the other replica's parcel of C001, unit 1
    ours = parcel("C001", "st1", 2)  # the same unit again, seen by another station
    other = parcel("C002", "st1", 3)
    results: list[Any] = []
    with anydb.session() as s_other:
        rma = load_for_change(s_other, "C001")  # locked (PG) / write lock (SQLite)
        assert rma is not None
        credits.apply_parcel(s_other, CFG, rma, theirs, actor="station:st2")
        s_other.add(StationEvent(**events_service.event_row(theirs, rma.updated_at, rma.site)))
        s_other.flush()

        def batch() -> None:
            with anydb.session() as s:
                results.extend(ingest_events(s, [ours, other]))

        worker = threading.Thread(target=batch)
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()  # waiting for the other writer's transaction
        s_other.commit()
    worker.join(20)
    assert not worker.is_alive()
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.STORED]
    assert credits_by_rma(anydb) == Counter({"C001": 1, "C002": 1})
    with anydb.session() as s:
        source = s.scalar(select(Credit.source).where(Credit.rma_number == "C001"))
    assert source == "station:st2"  # theirs, not ours again
    assert one_by_one == []


@pytest.fixture
def statements(anydb: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement the database is sent meanwhile (an executemany counts once).

    With the ``COPY ... FROM STDIN`` the batch's row sink sends past SQLAlchemy's events
    (psycopg's ``Cursor.copy``) on PostgreSQL.
    """
    sent: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        sent.append(statement.split(None, 1)[0])

    if anydb.engine.dialect.name == "postgresql":
        import psycopg

        copy = psycopg.Cursor.copy

        def recorded_copy(self: psycopg.Cursor[Any], statement: Any, *a: Any, **k: Any) -> Any:
            sent.append(str(statement).split(None, 1)[0])
            return copy(self, statement, *a, **k)

        monkeypatch.setattr(psycopg.Cursor, "copy", recorded_copy)
    sa_event.listen(anydb.engine, "before_cursor_execute", record)
    yield sent
    sa_event.remove(anydb.engine, "before_cursor_execute", record)


def test_batch_statements_do_not_grow_with_the_batch_on_postgresql(
    anydb: Database, crediting: None, statements: list[str], one_by_one: list[int]
) -> None:
    if anydb.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's driver inserts row by row (in process: cheap)")
    numbers = [f"S{i:03d}" for i in range(60)]
    make_rmas(anydb, numbers)
    sent = []
    for chunk in (numbers[:20], numbers[20:]):  # 20 events, then 40
        statements.clear()
        with anydb.session() as s:
            ingest_events(s, [parcel(n, "st1", i + 1) for i, n in enumerate(chunk)])
        sent.append(Counter(statements))
    assert credits_by_rma(anydb) == Counter(numbers)
    assert sent[1] == sent[0]  # 40 events cost what 20 do
    # reads: the RMAs locked, their lines, units, catalogue, the endpoints, the reasons,
    # the credited counts (not their stored transitions: the batch only appends); one
    # INSERT per table of rows read back (events, units) and one COPY per table of rows
    # only appended (credits, stock, transitions, webhooks, announcements); one UPDATE
    # each (executemany) of the RMAs (version-checked), their lines, the site revision,
    # the station
    assert sent[0] == Counter({"SELECT": 7, "INSERT": 2, "COPY": 5, "UPDATE": 4})
    assert one_by_one == []


def test_batch_writes_the_transitions_of_the_one_by_one_path_and_keeps_the_stored_ones(
    anydb: Database, crediting: None, one_by_one: list[int]
) -> None:
    # the batch does not read the stored transitions (it only appends): the RMA's history
    # must still be what the one-event path leaves, the earlier rows kept once each
    make_rmas(anydb, ["H001", "H002"], quantity=2)
    make_rmas(anydb, ["K001", "K002"], quantity=2)
    with anydb.session() as s:
        ingest_events(s, [parcel("H001", "st1", 1), second_unit("H001"), parcel("H002", "st1", 3)])
    for event in (parcel("K001", "st1", 4), second_unit("K001"), parcel("K002", "st1", 6)):
        with anydb.session() as s:
            assert ingest_event(s, event)

    def history(number: str) -> list[tuple[str, str, str]]:
        with anydb.session() as s:
            rows = s.execute(
                select(RmaTransition.trigger, RmaTransition.from_state, RmaTransition.to_state)
                .join(Rma, Rma.id == RmaTransition.rma_id)
                .where(Rma.number == number)
                .order_by(RmaTransition.id)
            ).all()
        return [(t, f, to) for t, f, to in rows]

    assert history("H001") == history("K001")
    assert history("H002") == history("K002")
    # created and authorised once each, then the two parcels (partly, then fully received)
    h001 = [r[2] for r in history("H001")]
    assert h001.count("authorized") == 1
    assert h001[-2:] == ["graded", "refunded"]
    assert "partially_received" in h001
    assert one_by_one == []


def test_a_batch_naming_one_unknown_rma_costs_what_a_batch_of_distinct_numbers_costs(
    anydb: Database, crediting: None, statements: list[str], one_by_one: list[int]
) -> None:
    """A station reporting every parcel under one number that names no RMA (quarantine
    ``unknown_rma``, a fact the checks let through) split the batch in one round per
    parcel: 200 events, each round its own reads, inserts and flush, while the other
    stations' events of the batch waited. A number naming no RMA changes nothing: one
    round, the statements of a batch of 200 distinct numbers and the one read of which
    repeated numbers name an RMA."""
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def unknown(number: str, parcel_id: int) -> ParcelEvent:
        return ParcelEvent(
            event_id=uuid.uuid4().hex,
            station="st1",
            parcel_id=parcel_id,
            inducted_at=at,
            length_mm=300.0,
            barcode=number,
            rma_number=number,
            lane="quarantine",
            disposition="quarantine",
            reason="unknown_rma",
            diverted=False,
        )

    sent: list[Counter[str]] = []
    for batch in (
        [unknown(f"RMA-X{i}", i + 1) for i in range(200)],
        [unknown("RMA-NOPE", 1000 + i) for i in range(200)],
    ):
        statements.clear()
        with anydb.session() as s:
            results = ingest_events(s, batch)
        assert [r.outcome for r in results] == [Outcome.STORED] * 200
        sent.append(Counter(statements))
    assert sent[1] == sent[0] + Counter({"SELECT": 1})  # + which repeated numbers exist
    assert count(anydb, StationEvent) == 400
    assert one_by_one == []
