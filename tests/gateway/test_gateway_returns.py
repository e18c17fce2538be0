"""Return rules at the service layer, on SQLite and PostgreSQL (C8 and issue 6)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.models import Credit, RmaTransition, StockMovement
from gateway.schemas import OrderDraft, RmaDraft
from gateway.services import credits
from gateway.services.events import ingest_event
from gateway.services.lifecycle import IllegalTransition
from gateway.services.numbers import MistypedNumber
from gateway.services.orders import InvalidOrder, create_order, get_order
from gateway.services.policies import PolicyViolation
from gateway.services.reasons import UnknownReason
from gateway.services.reports import financial_impact, to_csv
from gateway.services.rmas import (
    DuplicateRma,
    ReceiptError,
    create_rma,
    get_rma,
    list_announcements,
    receive_units,
    transition_rma,
)
from gateway.services.stock import stock_levels
from gateway.settings import Settings
from protocol import ParcelEvent, UnitReceipt
from protocol.messages import RmaState
from tests.gateway.conftest import parcel_id_for

CFG = Settings(
    site="s1",
    shop_timezone="Pacific/Auckland",
    return_shipping_cents=500,
    webhook_url="http://hooks.test/rs",
    webhook_secret="whsec_test-receiver-secret",
)
DELIVERED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)  # 2025-03-02 01:00 in Auckland (NZDT)
NOW = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)  # 2025-03-06 01:00 in Auckland


@pytest.fixture
def s(anydb: Database) -> Iterator[Session]:
    with anydb.session() as session:
        yield session


@pytest.fixture(autouse=True)
def _credits() -> Iterator[None]:
    credits.configure(CFG)
    yield
    credits.configure(None)


def order(s: Session, ref: str = "ORD-1", **over: Any) -> None:
    body: dict[str, Any] = {
        "order_ref": ref,
        "customer": "Ann",
        "delivered_at": DELIVERED,
        "lines": [
            {
                "sku": "A",
                "category": "apparel",
                "ordered_quantity": 2,
                "delivered_quantity": 1,
                "unit_price_cents": 1999,
            },
            {
                "sku": "B",
                "category": "electronics",
                "ordered_quantity": 1,
                "delivered_quantity": 1,
                "unit_price_cents": 5000,
            },
        ],
    }
    body.update(over)
    create_order(s, OrderDraft.model_validate(body))


def rma(
    s: Session, number: str, lines: list[dict[str, Any]], *, now: datetime = NOW, **over: Any
) -> Any:
    body: dict[str, Any] = {
        "number": number,
        "order_ref": "ORD-1",
        "reason": "size",
        "resolution": "refund",
        "lines": lines,
    }
    body.update(over)
    return create_rma(s, CFG, RmaDraft.model_validate(body), actor="api-key:shop", now=now)


# -- C8 -----------------------------------------------------------------------------------


def test_c8_more_than_delivered_is_refused_with_the_numbers(s: Session) -> None:
    order(s)
    with pytest.raises(PolicyViolation) as err:
        rma(s, "R1", [{"sku": "A", "quantity": 2}])
    v = err.value
    assert v.code == "quantity_exceeds_returnable"
    assert (v.details["requested"], v.details["returnable"]) == (2, 1)
    assert (v.details["delivered"], v.details["returned"], v.details["on_open"]) == (1, 0, 0)
    assert "only 1 returnable" in v.message
    assert get_rma(s, "R1") is None
    assert rma(s, "R1", [{"sku": "A", "quantity": 1}]).state == "authorized"
    with pytest.raises(PolicyViolation) as err:  # the unit is on an open RMA now
        rma(s, "R2", [{"sku": "A", "quantity": 1}])
    assert (err.value.details["returnable"], err.value.details["on_open"]) == (0, 1)
    assert err.value.details["rmas"] == ["R1"]


def test_c8_second_rma_for_a_fully_returned_line_is_refused(s: Session) -> None:
    order(s)
    first = rma(s, "R1", [{"sku": "B", "quantity": 1}])
    event = _event("R1", "restock", units=[(1, "B", 1, "gtin")])
    assert credits.apply_parcel(s, CFG, first, event, actor="station:st1", now=NOW)
    s.commit()
    assert first.state == "refunded"
    with pytest.raises(PolicyViolation) as err:
        rma(s, "R2", [{"sku": "B", "quantity": 1}])
    assert err.value.code == "quantity_exceeds_returnable"
    assert (err.value.details["returned"], err.value.details["on_open"]) == (1, 0)


def test_c8_two_lines_of_one_draft_share_the_returnable(s: Session) -> None:
    order(s)
    with pytest.raises(PolicyViolation) as err:
        rma(s, "R1", [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 1}])
    assert (err.value.details["line_no"], err.value.details["requested"]) == (2, 2)


def test_cancelled_rma_frees_its_units(s: Session) -> None:
    order(s)
    first = rma(s, "R1", [{"sku": "A", "quantity": 1}])
    transition_rma(s, CFG, first, "cancel", actor="api-key:shop")
    assert rma(s, "R2", [{"sku": "A", "quantity": 1}]).state == "authorized"


def test_duplicate_number_and_mistyped_check_character(s: Session) -> None:
    order(s)
    rma(s, "R1", [{"sku": "A", "quantity": 1}])
    with pytest.raises(DuplicateRma):
        rma(s, "R1", [{"sku": "B", "quantity": 1}])
    generated = rma(s, None, [{"sku": "B", "quantity": 1}]).number  # type: ignore[arg-type]
    assert generated.startswith("RS") and len(generated) == 11
    typo = generated[:5] + ("0" if generated[5] != "0" else "1") + generated[6:]
    with pytest.raises(MistypedNumber):
        rma(s, typo, [{"sku": "B", "quantity": 1}])


def test_order_line_matching_errors(s: Session) -> None:
    order(s)
    with pytest.raises(PolicyViolation, match="not on order") as err:
        rma(s, "R1", [{"sku": "Z", "quantity": 1}])
    assert err.value.code == "sku_not_on_order"
    with pytest.raises(PolicyViolation) as err:
        rma(s, "R1", [{"sku": "B", "quantity": 1, "order_line": 1}])
    assert err.value.code == "sku_mismatch"
    with pytest.raises(InvalidOrder):
        order(
            s,
            "ORD-2",
            lines=[
                {"sku": "A", "ordered_quantity": 1, "delivered_quantity": 2, "unit_price_cents": 1}
            ],
        )
    with pytest.raises(UnknownReason, match="changed_mind"):
        rma(s, "R1", [{"sku": "B", "quantity": 1}], reason="bored")


def test_unknown_order_taken_on_the_shops_word_unless_required(s: Session) -> None:
    loose = rma(s, "R1", [{"sku": "X", "quantity": 5, "unit_price_cents": 700}])
    assert (loose.state, loose.lines[0].unit_price_cents) == ("authorized", 700)
    strict = CFG.model_copy(update={"require_order": True})
    draft = RmaDraft(
        number="R2",
        order_ref="nope",
        reason="size",
        resolution="refund",
        lines=[{"sku": "X", "quantity": 1}],
    )
    with pytest.raises(PolicyViolation) as err:
        create_rma(s, strict, draft, now=NOW)
    assert err.value.code == "unknown_order"


# -- window in the shop's time zone ---------------------------------------------------------


def test_window_counts_days_in_the_shops_calendar(s: Session) -> None:
    order(s)
    # delivered 2025-03-01 12:00 UTC = 2025-03-02 in Auckland; 30 days -> last day 04-01
    last_minute = datetime(2025, 4, 1, 10, 59, tzinfo=UTC)  # 23:59 on 04-01 in Auckland
    first = rma(s, "R1", [{"sku": "A", "quantity": 1}], now=last_minute)
    assert first.delivered_on == date(2025, 3, 2)
    transition_rma(s, CFG, first, "cancel", actor="t")
    too_late = datetime(2025, 4, 1, 11, 0, tzinfo=UTC)  # 04-02 00:00 in Auckland (NZDT)
    with pytest.raises(PolicyViolation) as err:
        rma(s, "R2", [{"sku": "A", "quantity": 1}], now=too_late)
    assert err.value.code == "window_closed"
    assert (err.value.details["last_day"], err.value.details["today"]) == (
        "2025-04-01",
        "2025-04-02",
    )


def test_window_per_category(s: Session) -> None:
    order(s)
    with pytest.raises(PolicyViolation) as err:  # electronics: 14 days -> last day 03-16
        rma(s, "R1", [{"sku": "B", "quantity": 1}], now=datetime(2025, 3, 16, 11, 0, tzinfo=UTC))
    assert (err.value.details["window_days"], err.value.details["last_day"]) == (14, "2025-03-16")
    ok = rma(s, "R1", [{"sku": "A", "quantity": 1}], now=datetime(2025, 3, 16, 11, 0, tzinfo=UTC))
    assert ok.state == "authorized"


# -- lifecycle ------------------------------------------------------------------------------


def test_every_transition_is_recorded_with_actor(s: Session) -> None:
    order(s)
    r = rma(s, "R1", [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}], authorize=False)
    assert r.state == "requested"
    assert list_announcements(s) == []  # not announced before authorisation
    transition_rma(s, CFG, r, "authorize", actor="user:lead", note="ok")
    transition_rma(s, CFG, r, "ship", actor="api-key:shop")
    receive_units(r, {1: 1}, actor="user:desk")
    assert r.state == "partially_received"
    with pytest.raises(ReceiptError):
        receive_units(r, {1: 1}, actor="user:desk")
    receive_units(r, {2: 1}, actor="user:desk")
    s.commit()
    steps = s.scalars(select(RmaTransition).order_by(RmaTransition.id)).all()
    assert [(t.trigger, t.from_state, t.to_state, t.actor) for t in steps] == [
        ("authorize", "requested", "authorized", "user:lead"),
        ("ship", "authorized", "in_transit", "api-key:shop"),
        ("receive_part", "in_transit", "partially_received", "user:desk"),
        ("receive", "partially_received", "received", "user:desk"),
    ]
    assert all(t.at.tzinfo is not None for t in steps)
    with pytest.raises(IllegalTransition, match="'cancel' is not allowed"):
        transition_rma(s, CFG, r, "cancel", actor="api-key:shop")


def test_cancel_and_expire_are_announced_with_a_new_revision(s: Session) -> None:
    order(s)
    r = rma(s, "R1", [{"sku": "A", "quantity": 1}])
    r2 = rma(s, "R2", [{"sku": "B", "quantity": 1}])
    transition_rma(s, CFG, r, "cancel", actor="api-key:shop")
    transition_rma(s, CFG, r2, "expire", actor="system:expiry")
    anns = list_announcements(s, after_revision=2)
    assert [(a.number, a.revision, a.state) for a in anns] == [
        ("R1", 3, RmaState.CANCELLED),
        ("R2", 4, RmaState.EXPIRED),
    ]


# -- accounting -----------------------------------------------------------------------------


Unit = tuple[int, str, int, str]  # line_no, sku, unit, evidence ("label" never verifies)
IDENTIFIERS = {"serial": "SN-1", "tag": "E2801160", "gtin": "04006381333931"}


def _event(
    number: str,
    disposition: str,
    event_id: str = "e" * 16,
    *,
    units: list[Unit] | None = None,
    divert_confirmed: bool | None = None,
    schema_version: int = 2,
) -> ParcelEvent:
    """A parcel event of RMA ``number`` claiming ``units`` (default: none)."""
    return ParcelEvent(
        schema_version=schema_version,
        event_id=event_id,
        station="st1",
        parcel_id=parcel_id_for(event_id),
        inducted_at=NOW,
        length_mm=300.0,
        barcode=number,
        rma_number=number,
        lane=disposition,
        disposition=disposition,
        reason="matched",
        diverted=disposition != "quarantine",
        units=[
            UnitReceipt(
                line_no=line_no,
                sku=sku,
                unit=unit,
                evidence=evidence,
                verified=evidence != "label",
                identifier=IDENTIFIERS.get(evidence),
            )
            for line_no, sku, unit, evidence in units or []
        ],
        divert_confirmed=divert_confirmed,
    )


def test_sorted_parcel_credits_each_verified_unit_exactly_once(s: Session) -> None:
    order(s)
    r = rma(s, "R1", [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}])
    both = [(1, "A", 1, "tag"), (2, "B", 1, "gtin")]
    assert ingest_event(s, _event("R1", "refurbish", units=both)) is True
    assert ingest_event(s, _event("R1", "refurbish", units=both)) is False  # redelivery
    again = _event("R1", "restock", "f" * 16, units=both)  # second parcel: no more
    assert ingest_event(s, again) is True
    s.expire_all()
    r = get_rma(s, "R1")
    assert r is not None and (r.state, r.grade) == ("refunded", "refurbish")
    credits = s.scalars(select(Credit).order_by(Credit.sku)).all()
    assert [
        (
            c.sku,
            c.kind,
            c.paid_cents,
            c.amount_cents,
            c.restocking_fee_cents,
            c.recovered_value_cents,
            c.shipping_cost_cents,
        )
        for c in credits
    ] == [
        ("A", "refund", 1999, 1599, 0, 1199, 250),  # 80 % of 19.99, no fee for apparel
        ("B", "refund", 5000, 3250, 750, 3000, 250),  # 80 % of 50.00 minus 15 % restocking
    ]
    assert [(x.sku, x.location, x.quantity) for x in stock_levels(s)] == [
        ("A", "REFURBISH", 1),
        ("B", "REFURBISH", 1),
    ]
    assert [t.actor for t in r.transitions][-3:] == ["station:st1"] * 3


def test_merchant_fault_gets_full_credit_as_store_credit(s: Session) -> None:
    order(s)
    r = rma(s, "R1", [{"sku": "B", "quantity": 1}], reason="defective", resolution="credit")
    event = _event("R1", "recycle", units=[(1, "B", 1, "serial")])
    credits.apply_parcel(s, CFG, r, event, actor="station:st1", now=NOW)
    s.commit()
    c = s.scalars(select(Credit)).one()
    assert (c.kind, c.amount_cents, c.restocking_fee_cents, c.recovered_value_cents) == (
        "store_credit",
        5000,
        0,
        250,
    )
    assert r.state == "credited"
    assert [(x.location, x.quantity) for x in stock_levels(s, sku="B")] == [("RECYCLE", 1)]


def test_quarantine_waits_for_a_lead(s: Session) -> None:
    order(s)
    r = rma(s, "R1", [{"sku": "A", "quantity": 1}])
    r2 = rma(s, "R2", [{"sku": "B", "quantity": 1}], resolution="exchange")
    ingest_event(s, _event("R1", "quarantine", units=[(1, "A", 1, "label")]))
    ingest_event(s, _event("R2", "quarantine", "g" * 16, units=[(1, "B", 1, "gtin")]))
    s.expire_all()
    r, r2 = get_rma(s, "R1"), get_rma(s, "R2")
    assert r is not None and r2 is not None
    assert (r.state, r.awaiting_decision) == ("received", True)
    assert s.scalar(select(func.count(Credit.id))) == 0
    credits.decide(s, CFG, r, "restock", actor="user:lead", now=NOW)
    credits.decide(s, CFG, r2, "refuse", actor="user:lead", now=NOW)
    s.commit()
    assert (r.state, r.awaiting_decision) == ("refunded", False)
    assert r2.state == "closed"
    assert [c.rma_number for c in s.scalars(select(Credit))] == ["R1"]
    # the refused goods go back to the customer (the default) in the ledger
    assert [(m.rma_number, m.kind, m.location) for m in s.scalars(select(StockMovement))] == [
        ("R1", "return_in", "RESTOCK"),
        ("R2", "refused", "CUSTOMER"),
    ]


def test_financial_report_by_day_and_category(s: Session) -> None:
    order(s)
    r = rma(s, "R1", [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}])
    event = _event("R1", "refurbish", units=[(1, "A", 1, "gtin"), (2, "B", 1, "gtin")])
    credits.apply_parcel(s, CFG, r, event, actor="station:st1", now=NOW)
    s.commit()
    rows = financial_impact(s, CFG.zone)
    got = [
        (
            x.day,
            x.category,
            x.units,
            x.refunds_cents,
            x.restocking_fees_cents,
            x.recovered_refurbish_cents,
            x.shipping_cents,
            x.net_loss_cents,
        )
        for x in rows
    ]
    assert got == [
        ("2025-03-06", "apparel", 1, 1599, 0, 1199, 250, 650),
        ("2025-03-06", "electronics", 1, 3250, 750, 3000, 250, 500),
        ("total", "all", 2, 4849, 750, 4199, 500, 1150),
    ]
    assert financial_impact(s, CFG.zone, start=date(2025, 3, 7)) == []
    csv_text = to_csv(rows)
    assert csv_text.splitlines()[0].startswith("currency,day,category,units,refused_units")
    assert csv_text.splitlines()[3] == "EUR,total,all,2,0,4849,0,0,0,750,0,4199,0,0,0,0,500,1150"


def test_overdue_rmas_expire_and_are_announced(s: Session) -> None:
    from gateway.services.expiry import expire_overdue

    order(s)
    authorized_at = datetime(2025, 3, 5, 12, 0, tzinfo=UTC)  # 03-06 in Auckland
    waiting = rma(s, "R1", [{"sku": "A", "quantity": 1}], now=authorized_at)
    shipped = rma(s, "R2", [{"sku": "B", "quantity": 1}], now=authorized_at)
    transition_rma(s, CFG, shipped, "ship", actor="api-key:shop", now=authorized_at)
    day_30 = datetime(2025, 4, 5, 10, 0, tzinfo=UTC)  # 04-05 23:00 NZDT: 30 days later
    assert expire_overdue(s, CFG, now=day_30) == []
    day_31 = datetime(2025, 4, 5, 11, 0, tzinfo=UTC)  # 04-06 00:00 NZDT
    assert expire_overdue(s, CFG, now=day_31) == ["R1"]
    assert (waiting.state, shipped.state) == ("expired", "in_transit")
    assert waiting.transitions[-1].actor == "system:expiry"
    (ann,) = list_announcements(s, after_revision=shipped.revision)
    assert (ann.number, ann.state) == ("R1", RmaState.EXPIRED)


def test_failing_accounting_never_loses_the_event(
    s: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.models import StationEvent

    order(s)
    rma(s, "R1", [{"sku": "A", "quantity": 1}])

    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("policy bug")

    monkeypatch.setattr(credits, "_credit", boom)
    assert ingest_event(s, _event("R1", "restock", units=[(1, "A", 1, "gtin")])) is True
    s.expire_all()
    r = get_rma(s, "R1")
    assert r is not None and (r.state, r.lines[0].received_quantity) == ("authorized", 0)
    assert s.scalar(select(func.count(StationEvent.id))) == 1
    assert s.scalar(select(func.count(Credit.id))) == 0


def test_an_rma_taken_on_the_shops_word_counts_once_its_order_is_known(s: Session) -> None:
    # the shop created R-EARLY before the order reached the gateway: its line claimed no
    # order line, so once the order came the same delivered unit was returned again
    early = {"sku": "A", "quantity": 1, "unit_price_cents": 5000}
    first = rma(s, "R-EARLY", [early], order_ref="O-LATE")
    assert first.lines[0].order_line_id is None
    rma(s, "R-EARLY-B", [{**early, "sku": "B"}], order_ref="O-LATE")
    late = {"sku": "A", "ordered_quantity": 1, "delivered_quantity": 1, "unit_price_cents": 5000}
    two_of_b = {**late, "sku": "B", "ordered_quantity": 2, "delivered_quantity": 2}
    order(s, "O-LATE", lines=[late, two_of_b, {**two_of_b, "unit_price_cents": 10}])
    s.expire_all()
    stored = get_order(s, "O-LATE")
    assert stored is not None
    linked = {n: get_rma(s, n).lines[0].order_line_id for n in ("R-EARLY", "R-EARLY-B")}  # type: ignore[union-attr]
    assert linked == {"R-EARLY": stored.lines[0].id, "R-EARLY-B": None}  # B: on two lines
    with pytest.raises(PolicyViolation) as refused:
        rma(s, "R-AGAIN", [{"sku": "A", "quantity": 1}], order_ref="O-LATE")
    assert refused.value.code == "quantity_exceeds_returnable"
