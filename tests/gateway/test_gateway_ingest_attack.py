"""Hostile review of the set-based event batch: it must store exactly what one by one does.

The same batch of events goes into two identical databases, once set-based
(:func:`ingest_events`) and once by the one-by-one fallback; every row either path wrote
(events, units, credits, stock movements, transitions, webhooks, announcements,
notifications, connector jobs, revisions) must be the same.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.db import Database
from gateway.models import Base, Credit, Rma, StationEvent
from gateway.schemas import OrderDraft, RmaDraft
from gateway.services import credits
from gateway.services import events as events_service
from gateway.services.events import Outcome, ingest_events
from gateway.services.orders import create_order
from gateway.services.reasons import seed_reasons
from gateway.services.rma_writer import load_for_change
from gateway.services.rmas import create_rma, transition_rma
from gateway.services.webhook_endpoints import ensure_configured
from protocol import Evidence, ParcelEvent, UnitReceipt
from simulator.load import PRODUCT_GTIN, parcel
from tests.gateway.conftest import parcel_id_for, pg_database
from tests.gateway.test_gateway_ingest_batch import crediting  # noqa: F401 (a fixture)
from tests.gateway.test_gateway_returns import CFG

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
#: tables whose rows depend on the process, not the batch (keys, sessions, ...)
SKIPPED = {
    "webhook_endpoints",
    "site_revision",
    "alembic_version",
    "api_keys",
    "users",
    "web_sessions",
    "audit_log",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def two_dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    """Two empty migrated, seeded databases on the same backend."""
    with contextlib.ExitStack() as stack:
        made = []
        for name in ("a", "b"):
            if request.param == "sqlite":
                url = f"sqlite:///{tmp_path / f'{name}.db'}"
            else:
                url = stack.enter_context(pg_database())
            database = Database(url)
            database.migrate()
            with database.session() as s:
                seed_reasons(s)
            stack.callback(database.dispose)
            made.append(database)
        yield made[0], made[1]


def _draft(number: str, quantity: int, reason: str = "changed_mind") -> RmaDraft:
    return RmaDraft.model_validate(
        {
            "number": number,
            "order_ref": f"O-{number}",
            "reason": reason,
            "resolution": "refund",
            "lines": [
                {"sku": "A", "quantity": quantity, "unit_price_cents": 1999, "gtin": PRODUCT_GTIN}
            ],
        }
    )


def setup_rmas(db: Database, rmas: list[tuple[str, int]], cancelled: list[str]) -> None:
    with db.session() as s:
        ensure_configured(s, CFG)
        for number, quantity in rmas:
            create_rma(s, CFG, _draft(number, quantity), actor="api-key:shop", now=T0)
    for number in cancelled:
        with db.session() as s:
            rma = load_for_change(s, number)
            assert rma is not None
            transition_rma(s, CFG, rma, "cancel", actor="user:lead", now=T0)


def unit_of(number: str, unit: int, *, station: str = "st1", **update: Any) -> ParcelEvent:
    """A parcel of ``number`` proving unit ``unit`` of line 1 by GTIN (fields overridden)."""
    receipt = UnitReceipt(
        line_no=1,
        sku="A",
        unit=unit,
        evidence=Evidence.GTIN,
        verified=True,
        identifier=PRODUCT_GTIN.zfill(14),
    )
    event_id = uuid.uuid4().hex  # another parcel each (the gateway keeps one event a parcel)
    base = parcel(number, station, unit).model_copy(
        update={
            "event_id": event_id,
            "parcel_id": parcel_id_for(event_id),
            "units": (receipt,),
            "inducted_at": T0,
        }
    )
    return base.model_copy(update=update)


def _plain(value: Any) -> Any:
    """A value with the site revisions it names blanked (their order may differ)."""
    if isinstance(value, str):
        return re.sub(r'"revision": ?\d+', '"revision":_', value)
    if isinstance(value, datetime) and value != T0:
        return "_t"  # one by one dates the credits by the clock, not received_at
    if isinstance(value, dict):
        return {k: "_" if k == "revision" else _plain(v) for k, v in value.items()}
    return value


def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, without surrogate ids nor creation-time stamps, sorted."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in SKIPPED:
                continue
            cols = [
                c
                for c in table.columns
                if c.name not in ("id", "revision", "rma_id", "unit_id", "event_row_id")
            ]
            rows = conn.execute(select(*cols)).all()
            out[table.name] = sorted(
                (tuple(zip([c.name for c in cols], map(_plain, row), strict=True)) for row in rows),
                key=repr,
            )
    return out


def _both(
    two_dbs: tuple[Database, Database],
    rmas: list[tuple[str, int]],
    batch: list[ParcelEvent],
    monkeypatch: pytest.MonkeyPatch,
    cancelled: list[str] = (),  # type: ignore[assignment]
) -> tuple[list[Any], list[Any], Callable[[], None]]:
    set_based, one_by_one = two_dbs
    for db in two_dbs:
        setup_rmas(db, rmas, list(cancelled))
    fallback: list[int] = []
    real = events_service._ingest_one_by_one

    def counted(session: Any, events: Any, *args: Any) -> Any:
        fallback.append(len(events))
        return real(session, events, *args)

    monkeypatch.setattr(events_service, "_ingest_one_by_one", counted)
    with set_based.session() as s:
        a = ingest_events(s, batch, received_at=T1)
    assert fallback == []  # really set-based
    with monkeypatch.context() as m:

        def refuse(*_a: Any) -> Any:
            raise RuntimeError("forced one by one")

        m.setattr(events_service, "_stage_batch", refuse)
        with one_by_one.session() as s:
            b = ingest_events(s, batch, received_at=T1)
    assert fallback == [len(batch)]

    def compare() -> None:
        da, db_ = dump(set_based), dump(one_by_one)
        diffs = {}
        for name in da:
            only_a = [r for r in da[name] if r not in db_[name]]
            only_b = [r for r in db_[name] if r not in da[name]]
            if only_a or only_b:
                diffs[name] = (only_a, only_b)
        assert diffs == {}

    return [r.outcome for r in a], [r.outcome for r in b], compare


def test_set_based_batch_writes_what_one_by_one_writes(
    two_dbs: tuple[Database, Database],
    crediting: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rmas = [("D001", 1), ("D002", 2), ("D003", 3), ("D004", 1), ("D005", 1), ("D006", 2)]
    first = unit_of("D001", 1)
    batch = [
        first,
        unit_of("D002", 1),
        unit_of("D002", 2, station="st2"),  # a second parcel of D002, another station
        unit_of("D003", 1, disposition="quarantine", lane="quarantine", divert_confirmed=None),
        unit_of("D003", 2, disposition="refurbish", lane="refurbish"),
        unit_of("D003", 1, station="st2"),  # unit 1 claimed again: takes unit 3
        unit_of("D004", 1, divert_confirmed=False),  # divert not seen
        unit_of("D005", 1, disposition="recycle", lane="recycle"),
        unit_of("D006", 1),
        unit_of("D006", 1, station="st2"),  # the same unit, another station
        unit_of("D006", 1, station="st3"),  # a third claim: the line is full
        first,  # redelivered in the batch
        unit_of("NOPE", 1),  # an RMA the gateway does not know
    ]
    a, b, compare = _both(two_dbs, rmas, batch, monkeypatch)
    assert a == b
    assert a.count(Outcome.STORED) == 12
    compare()


def test_same_event_id_with_other_content_in_a_batch_is_one_event(
    two_dbs: tuple[Database, Database],
    crediting: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours = unit_of("E001", 1)
    twin = unit_of("E001", 2, station="st2").model_copy(update={"event_id": ours.event_id})
    a, b, compare = _both(two_dbs, [("E001", 2)], [ours, twin], monkeypatch)
    assert a == b == [Outcome.STORED, Outcome.DUPLICATE]
    compare()


def test_cancelled_rma_in_a_batch_credits_nothing_like_one_by_one(
    two_dbs: tuple[Database, Database],
    crediting: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = [unit_of("K001", 1), unit_of("K002", 1), unit_of("K001", 2)]
    a, b, compare = _both(two_dbs, [("K001", 2), ("K002", 1)], batch, monkeypatch, ["K001"])
    assert a == b == [Outcome.STORED] * 3
    compare()
    with two_dbs[0].session() as s:
        assert s.scalar(select(Rma.state).where(Rma.number == "K001")) == "cancelled"


def _shared_order(db: Database, quantity: int) -> None:
    """Order O-SHARED: ``quantity`` units of SKU A at uneven shares (discount, voucher, tax)."""
    draft = OrderDraft.model_validate(
        {
            "order_ref": "O-SHARED",
            "customer": "Ann",
            "customer_email": "ann@example.com",
            "delivered_at": (T0 - timedelta(days=2)).isoformat(),
            "discount_cents": 7,
            "voucher_cents": 3,
            "shipping_paid_cents": 499,
            "lines": [
                {
                    "sku": "A",
                    "ordered_quantity": quantity,
                    "delivered_quantity": quantity,
                    "unit_price_cents": 1001,
                    "line_discount_cents": 5,
                    "tax_rate_bp": 1900,
                    "gtin": PRODUCT_GTIN,
                },
                {
                    "sku": "B",
                    "ordered_quantity": 1,
                    "delivered_quantity": 1,
                    "unit_price_cents": 333,
                },
            ],
        }
    )
    with db.session() as s:
        create_order(s, draft, site=CFG.site)


def _random_batch(rng: random.Random, rmas: dict[str, int]) -> list[ParcelEvent]:
    """Parcels claiming random units of ``rmas`` (number -> quantity), some twice."""
    batch: list[ParcelEvent] = []
    kinds = ["restock", "restock", "refurbish", "recycle", "quarantine", "unconfirmed", "label"]
    for _ in range(rng.randint(4, 12)):
        number = rng.choice(sorted(rmas))
        unit = rng.randint(1, rmas[number] + 1)  # now and then beyond the line
        kind = rng.choice(kinds)
        station = rng.choice(["st1", "st2"])
        if kind == "quarantine":
            event = unit_of(
                number, unit, station=station, disposition="quarantine", lane="quarantine"
            )
        elif kind == "unconfirmed":
            event = unit_of(number, unit, station=station, divert_confirmed=False)
        elif kind == "label":
            receipt = UnitReceipt(
                line_no=1, sku="A", unit=unit, evidence=Evidence.LABEL, verified=False
            )
            event = unit_of(number, unit, station=station).model_copy(update={"units": (receipt,)})
        else:
            event = unit_of(number, unit, station=station, disposition=kind, lane=kind)
        batch.append(event)
        if rng.random() < 0.15:
            batch.append(event)  # redelivered
    return batch


@pytest.mark.parametrize("seed", [1, 2])
def test_random_batches_on_rmas_sharing_an_order_line_write_what_one_by_one_writes(
    two_dbs: tuple[Database, Database],
    crediting: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    rng = random.Random(seed)  # nosec B311 (test data, not security)
    shared = {"S001": 2, "S002": 1, "S003": 2}  # 5 units of one order line
    for db in two_dbs:
        _shared_order(db, sum(shared.values()))
        with db.session() as s:
            for number, quantity in shared.items():
                draft = RmaDraft.model_validate(
                    {
                        "number": number,
                        "order_ref": "O-SHARED",
                        "reason": "changed_mind",
                        "resolution": "refund",
                        "lines": [{"sku": "A", "quantity": quantity, "gtin": PRODUCT_GTIN}],
                    }
                )
                create_rma(s, CFG, draft, actor="api-key:shop", now=T0)
    batch = _random_batch(rng, {**shared, "P001": 2, "P002": 1})
    a, b, compare = _both(two_dbs, [("P001", 2), ("P002", 1)], batch, monkeypatch)
    assert a == b
    compare()


def _shared_rmas(db: Database) -> None:
    _shared_order(db, 3)
    with db.session() as s:
        for number in ("S001", "S002", "S003"):
            draft = RmaDraft.model_validate(
                {
                    "number": number,
                    "order_ref": "O-SHARED",
                    "reason": "changed_mind",
                    "resolution": "refund",
                    "lines": [{"sku": "A", "quantity": 1, "gtin": PRODUCT_GTIN}],
                }
            )
            create_rma(s, CFG, draft, actor="api-key:shop", now=T0)


def _amounts(db: Database) -> dict[str, tuple[int, int]]:
    with db.session() as s:
        rows = s.execute(select(Credit.rma_number, Credit.paid_cents, Credit.amount_cents)).all()
    return {n: (p, a) for n, p, a in rows}


def test_two_writers_crediting_units_of_one_order_line_at_once_take_distinct_shares(
    two_dbs: tuple[Database, Database],
    crediting: None,  # noqa: F811
) -> None:
    """A lead (or the other replica) credits S001 while a batch credits S002, another RMA
    of the same order line: the shares must be those of the two credited one after the
    other (they sum to what was paid), not the same share twice."""
    together, in_turn = two_dbs
    if together.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: the batch waits for the lead's commit")
    theirs, ours, last = unit_of("S001", 1), unit_of("S002", 1), unit_of("S003", 1)
    for db in two_dbs:
        _shared_rmas(db)
    for event in (theirs, ours, last):  # one after the other
        with in_turn.session() as s:
            ingest_events(s, [event], received_at=T1)
    with together.session() as s_other:
        rma = load_for_change(s_other, "S001")
        assert rma is not None
        credits.apply_parcel(s_other, CFG, rma, theirs, actor="station:st1", now=T1)
        s_other.add(StationEvent(**events_service.event_row(theirs, T1, rma.site)))
        s_other.flush()
        outcomes: list[Outcome] = []

        def batch() -> None:  # meanwhile: another RMA, so its lock does not wait
            with together.session() as s:
                outcomes.extend(r.outcome for r in ingest_events(s, [ours], received_at=T1))

        worker = threading.Thread(target=batch)
        worker.start()
        worker.join(1.0)  # (it waits for the site revision row, its credit computed)
        s_other.commit()
    worker.join(20)
    assert not worker.is_alive()
    assert outcomes == [Outcome.STORED]
    with together.session() as s:
        ingest_events(s, [last], received_at=T1)
    expected = _amounts(in_turn)
    assert sum(p for p, _a in expected.values()) == sum(p for p, _a in _amounts(together).values())
    assert _amounts(together) == expected
