"""Credits from proof, per unit (issue 14): verified units only, exactly once, lead decides.

Service level on SQLite and PostgreSQL; the HTTP acceptance (concurrent leads, a multi-line
RMA over several parcels) is in ``test_gateway_credit_acceptance.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.models import Credit, RmaUnit, StationEvent
from gateway.services import credits
from gateway.services.events import ingest_event
from gateway.services.rmas import get_rma
from gateway.services.stock import stock_levels
from tests.gateway.test_gateway_returns import CFG, NOW, _event, order, rma


@pytest.fixture
def s(anydb: Database) -> Iterator[Session]:
    with anydb.session() as session:
        yield session


@pytest.fixture(autouse=True)
def _credits() -> Iterator[None]:
    credits.configure(CFG)
    yield
    credits.configure(None)


GTIN = "4006381333931"  # the identifier the test's GTIN reads name (as GTIN-14)
TWO_LINES = [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}]


def units(session: Session) -> list[tuple[str, int, str, str, str | None]]:
    rows = session.scalars(select(RmaUnit).order_by(RmaUnit.rma_line_id, RmaUnit.unit_no))
    return [(u.line.sku, u.unit_no, u.state, u.reason, u.location) for u in rows]


def amounts(session: Session) -> list[tuple[str, int, int, int]]:
    rows = session.scalars(select(Credit).order_by(Credit.id))
    return [(c.sku, c.unit_no, c.amount_cents, c.shipping_cost_cents) for c in rows]


def levels(session: Session) -> list[tuple[str, str, int]]:
    return [(x.sku, x.location, x.quantity) for x in stock_levels(session)]


def test_only_the_verified_unit_is_credited_the_other_waits_for_a_lead(s: Session) -> None:
    order(s)
    r = rma(s, "R1", TWO_LINES)
    event = _event("R1", "restock", units=[(1, "A", 1, "gtin"), (2, "B", 1, "label")])
    assert ingest_event(s, event) is True
    assert units(s) == [
        ("A", 1, "credited", "", "RESTOCK"),
        ("B", 1, "awaiting", "unverified", None),
    ]
    assert amounts(s) == [("A", 1, 1999, 250)]  # 100 % of 19.99; shipping 5.00 over 2 units
    assert levels(s) == [("A", "RESTOCK", 1)]
    r = get_rma(s, "R1")
    assert r is not None and (r.state, r.awaiting_decision) == ("received", True)
    credits.decide_unit(s, CFG, r, 2, 1, "verify", actor="user:lead", now=NOW)
    s.commit()
    assert amounts(s) == [("A", 1, 1999, 250), ("B", 1, 4250, 250)]  # minus 15 % restocking
    assert (r.state, r.grade, r.awaiting_decision) == ("refunded", "restock", False)
    assert levels(s) == [("A", "RESTOCK", 1), ("B", "RESTOCK", 1)]


def test_a_version_1_event_proves_nothing_and_credits_nothing(s: Session) -> None:
    order(s)
    rma(s, "R1", TWO_LINES)
    assert ingest_event(s, _event("R1", "restock", schema_version=1)) is True
    assert units(s) == [
        ("A", 1, "awaiting", "unproved_event", None),
        ("B", 1, "awaiting", "unproved_event", None),
    ]
    assert amounts(s) == [] and levels(s) == []


def test_an_unconfirmed_divert_is_booked_unconfirmed_until_a_lead_finds_it(s: Session) -> None:
    order(s)
    rma(s, "R1", [{"sku": "A", "quantity": 1}])
    event = _event("R1", "restock", units=[(1, "A", 1, "serial")], divert_confirmed=False)
    assert ingest_event(s, event) is True
    assert units(s) == [("A", 1, "awaiting", "divert_unconfirmed", "UNCONFIRMED")]
    assert amounts(s) == [] and levels(s) == [("A", "UNCONFIRMED", 1)]
    r = get_rma(s, "R1")
    assert r is not None
    credits.decide_unit(s, CFG, r, 1, 1, "confirm_location", grade="refurbish", actor="user:lead")
    s.commit()
    assert levels(s) == [("A", "REFURBISH", 1), ("A", "UNCONFIRMED", 0)]
    assert amounts(s) == [("A", 1, 1599, 500)]  # 80 % of 19.99 (verified by its serial)
    assert (r.state, r.grade) == ("refunded", "refurbish")


def test_confirming_where_an_unverified_unit_is_still_leaves_it_waiting(s: Session) -> None:
    order(s)
    rma(s, "R1", [{"sku": "A", "quantity": 1}])
    ingest_event(s, _event("R1", "restock", units=[(1, "A", 1, "label")], divert_confirmed=False))
    r = get_rma(s, "R1")
    assert r is not None
    credits.decide_unit(s, CFG, r, 1, 1, "confirm_location", grade="restock", actor="user:lead")
    s.commit()
    assert units(s) == [("A", 1, "awaiting", "unverified", "RESTOCK")]
    assert amounts(s) == []
    credits.decide_unit(s, CFG, r, 1, 1, "refuse", destination="return_to_vendor", actor="lead")
    s.commit()
    # refused: out of where it was found, into the lead's destination, written off
    assert units(s) == [("A", 1, "refused", "", "RTV")]
    assert levels(s) == [("A", "RESTOCK", 0), ("A", "RTV", 1), ("A", "UNCONFIRMED", 0)]
    assert (r.state, r.grade, amounts(s)) == ("closed", "refuse", [])
    with pytest.raises(credits.UnitDecisionError, match="already refused"):
        credits.decide_unit(s, CFG, r, 1, 1, "verify", grade="restock", actor="user:lead")


def test_the_same_unit_claimed_by_two_parcels_is_received_once(s: Session) -> None:
    order(s)
    rma(s, "R1", [{"sku": "A", "quantity": 1}])
    first = _event("R1", "restock", "p" * 16, units=[(1, "A", 1, "gtin")])
    second = _event("R1", "restock", "q" * 16, units=[(1, "A", 1, "gtin")])
    assert ingest_event(s, first) and ingest_event(s, second)
    assert units(s) == [("A", 1, "credited", "", "RESTOCK")]
    assert amounts(s) == [("A", 1, 1999, 500)]


def test_an_event_that_loses_the_race_to_a_lead_is_ingested_again_on_the_new_state(
    s: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.models import StationEvent
    from gateway.services.rma_writer import StaleRma, load_for_change

    order(s)
    rma(s, "R1", [{"sku": "A", "quantity": 1}])
    lost: list[str] = []

    def first_loses(session: Session, number: str) -> object:
        if not lost:
            lost.append(number)
            raise StaleRma(number)  # another writer changed R1 between read and write
        return load_for_change(session, number)

    monkeypatch.setattr(credits, "load_for_change", first_loses)
    assert ingest_event(s, _event("R1", "restock", units=[(1, "A", 1, "gtin")])) is True
    assert lost == ["R1"]
    assert len(s.scalars(select(StationEvent)).all()) == 1  # stored once, by the second try
    assert amounts(s) == [("A", 1, 1999, 500)]


def test_the_same_parcel_reported_again_under_a_new_event_id_is_refused_and_credited_once(
    s: Session,
) -> None:
    """A replay: the parcel (station, parcel id, induction time) under a fresh event id.

    The line has a second unit outstanding, which this parcel never held: the replay was
    received as unit 2 and credited. Now the screen refuses it, and the ingest stores
    nothing of it on either path (a replica storing it past the screen), across batches
    and within one.
    """
    from gateway.services import events as events_service
    from gateway.services.events import Outcome, ingest_events, screen_event, screen_events

    two_of_a = [
        {"sku": "A", "ordered_quantity": 2, "delivered_quantity": 2, "unit_price_cents": 1999}
    ]
    order(s, lines=two_of_a)
    order(s, "ORD-2", lines=two_of_a)
    rma(s, "R1", [{"sku": "A", "quantity": 2, "gtin": GTIN}])
    first = _event("R1", "restock", "a" * 16, units=[(1, "A", 1, "gtin")])
    again = first.model_copy(update={"event_id": "b" * 16})
    assert ingest_event(s, first) is True
    message = (
        f"parcel {first.parcel_id} of station st1 inducted at 2025-03-05T12:00:00+00:00 "
        f"is already recorded as event {'a' * 16}"
    )
    refusal = screen_event(s, again)
    assert refusal is not None and (refusal.code, refusal.message) == (
        "parcel_reported_again",
        message,
    )
    assert screen_event(s, first) is None  # a redelivery of the first: a duplicate
    with pytest.raises(events_service.ParcelReportedAgain) as raised:
        ingest_event(s, again)
    assert str(raised.value) == message
    assert [r.outcome for r in ingest_events(s, [again, first])] == [
        Outcome.REPORTED_AGAIN,
        Outcome.DUPLICATE,
    ]
    assert units(s) == [("A", 1, "credited", "", "RESTOCK")]
    assert amounts(s) == [("A", 1, 1999, 250)]
    # within one batch: the first stored, the replay refused (the screen says so too)
    rma(s, "R2", [{"sku": "A", "quantity": 2, "gtin": GTIN}], order_ref="ORD-2")
    other = _event("R2", "restock", "c" * 16, units=[(1, "A", 1, "gtin")])
    replay = other.model_copy(update={"event_id": "d" * 16})
    screened = screen_events(s, [other, replay])
    assert screened[0] is None and screened[1] is not None
    assert screened[1].code == "parcel_reported_again"
    results = ingest_events(s, [other, replay])
    assert [(r.event_id, r.outcome) for r in results] == [
        ("c" * 16, Outcome.STORED),
        ("d" * 16, Outcome.REPORTED_AGAIN),
    ]
    assert str(results[1].error).endswith(f"is already recorded as event {'c' * 16}")
    assert amounts(s) == [("A", 1, 1999, 250), ("A", 1, 1999, 250)]
    assert s.scalars(select(StationEvent.event_id).order_by(StationEvent.id)).all() == [
        "a" * 16,
        "c" * 16,
    ]


def test_a_parcel_restocked_after_its_rma_was_cancelled_is_not_lost(s: Session) -> None:
    """The station sorted on the RMA it knew (authorized); the shop cancelled meanwhile.

    Nothing is received or credited (the RMA takes no goods), but the goods are in the
    restock lane: a ``goods_not_received`` alarm names the RMA, parcel and lane, on the
    one-by-one ingest and in a batch. Before, the event was stored and nothing else.
    """
    from gateway.models import Alarm
    from gateway.services.events import Outcome, ingest_events
    from gateway.services.rmas import transition_rma

    two_of_a = [
        {"sku": "A", "ordered_quantity": 2, "delivered_quantity": 2, "unit_price_cents": 1999}
    ]
    order(s, lines=two_of_a)
    for number in ("R1", "R2"):
        rma(s, number, [{"sku": "A", "quantity": 1, "gtin": GTIN}])
        cancelled = get_rma(s, number)
        assert cancelled is not None
        transition_rma(s, CFG, cancelled, "cancel", actor="api-key:shop")
        s.commit()
    alone = _event("R1", "restock", "a" * 16, units=[(1, "A", 1, "gtin")])
    batched = _event("R2", "restock", "b" * 16, units=[(1, "A", 1, "gtin")])
    assert ingest_event(s, alone) is True
    assert [r.outcome for r in ingest_events(s, [batched])] == [Outcome.STORED]
    rows = s.execute(
        select(Alarm.key, Alarm.kind, Alarm.subject, Alarm.message).order_by(Alarm.id)
    ).all()
    assert rows == [
        (
            f"st1:goods_not_received:{event.event_id}",
            "goods_not_received",
            number,
            f"parcel {event.parcel_id} of RMA {number} (cancelled) sorted to lane restock "
            "(restock): nothing received, nothing credited; a lead must find it and decide",
        )
        for number, event in (("R1", alone), ("R2", batched))
    ]
    assert units(s) == [] and amounts(s) == [] and levels(s) == []
    assert ingest_event(s, alone) is False  # a redelivery raises nothing again
    assert len(s.execute(select(Alarm.id)).all()) == 2
