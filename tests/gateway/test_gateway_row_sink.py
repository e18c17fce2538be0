"""The batch's row sink (gateway.services.row_sink): rows written as the ORM would write them.

On each backend: PostgreSQL takes the ``COPY`` path for groups of ``COPY_MIN_ROWS`` rows or
more and the Core executemany for smaller ones (both are run here, with the threshold
moved), SQLite the Core executemany. The rows read back are compared with values written
down here, not with what the code produced.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.db import Database
from gateway.models import (
    Credit,
    Rma,
    RmaLineRecord,
    RmaTransition,
    WebhookDelivery,
    WebhookEndpoint,
)
from gateway.services import row_sink
from gateway.services.row_sink import add_row, open_sink, sink_of
from gateway.services.webhook_endpoints import create_endpoint

T0 = datetime(2026, 12, 2, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(params=["copy", "insert"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every group COPYed on PostgreSQL, or every group INSERTed (SQLite: INSERT both)."""
    monkeypatch.setattr(row_sink, "COPY_MIN_ROWS", 1 if request.param == "copy" else 10**9)
    yield request.param


def _rma(db: Database) -> tuple[int, int]:
    """A stored RMA with one line: (rma id, line id)."""
    with db.session() as s:
        rma = Rma(
            number="R-SINK",
            order_ref="O-1",
            reason="changed_mind",
            resolution="refund",
            state="authorized",
            currency="EUR",
            site="site1",
            revision=1,
        )
        rma.lines.append(RmaLineRecord(line_no=1, sku="A", quantity=2, unit_price_cents=1999))
        s.add(rma)
        s.commit()
        return rma.id, rma.lines[0].id


def _credit(line_id: int, unit_no: int) -> dict[str, object]:
    return {
        "rma_line_id": line_id,
        "unit_no": unit_no,
        "rma_number": "R-SINK",
        "sku": "A",
        "category": "default",
        "kind": "refund",
        "grade": "restock",
        "quantity": 1,
        "paid_cents": 1999,
        "amount_cents": 1999,
        "restocking_fee_cents": 0,
        "recovered_value_cents": 1999,
        "shipping_cost_cents": 0,
        "currency": "EUR",
        "source": "station:st1",
        "created_at": T0,
    }


def test_sink_rows_are_written_in_order_with_defaults_json_and_utc_times(
    anydb: Database, path: str
) -> None:
    rma_id, _line = _rma(anydb)
    with anydb.session() as s, open_sink(s) as sink:
        for trigger, to in (("receive", "received"), ("grade", "graded"), ("refund", "refunded")):
            # note and at left out: the columns' defaults ("" and the clock) apply
            add_row(
                s,
                RmaTransition,
                rma_id=rma_id,
                trigger=trigger,
                from_state="x",
                to_state=to,
                actor="station:st1",
            )
        add_row(
            s,
            WebhookDelivery,
            event_type="credit.issued",
            payload={"type": "credit.issued", "data": {"cents": 1999, "note": "ä\t\\n"}},
            url="http://shop.example/hook",
            endpoint_id=None,
            status="pending",
            attempts=0,
            next_attempt_at=T0,
            created_at=T0,
        )
        assert sink.count == 4
        assert list(s.new) == []  # nothing went to the unit of work
        assert sink.write(s) == 4
        assert sink.count == 0
        s.commit()
    with anydb.session() as s:
        rows = s.scalars(select(RmaTransition).order_by(RmaTransition.id)).all()
        assert [r.trigger for r in rows] == ["receive", "grade", "refund"]
        assert [r.note for r in rows] == ["", "", ""]
        assert all(r.at is not None and r.at.tzinfo is not None for r in rows)
        hook = s.scalars(select(WebhookDelivery)).one()
        assert hook.payload == {"type": "credit.issued", "data": {"cents": 1999, "note": "ä\t\\n"}}
        assert hook.next_attempt_at == T0  # microseconds and zone kept
        assert hook.endpoint_id is None
        assert hook.delivered_at is None


def test_rows_of_one_table_keep_their_order_whatever_columns_they_set(
    anydb: Database, path: str
) -> None:
    # PostgreSQL runs a statement's WITH queries in no set order: rows of one table are
    # never split across them (one ordered INSERT ... SELECT, or statements of their own)
    rma_id, _line = _rma(anydb)
    with anydb.session() as s:
        create_endpoint(s, "shop", "http://shop.example/hook")
    with anydb.session() as s, open_sink(s) as sink:
        for i, trigger in enumerate(("a", "b", "c", "d", "e")):
            extra = {"note": f"n{i}"} if i % 2 else {}  # two sets of columns, interleaved
            add_row(
                s,
                RmaTransition,
                rma_id=rma_id,
                trigger=trigger,
                from_state="x",
                to_state="y",
                actor="t",
                **extra,
            )
        for kind in ("k1", "k2"):
            add_row(
                s,
                WebhookDelivery,
                event_type=kind,
                payload={},
                url="http://erp.example/hook",
                endpoint_id=None,
                next_attempt_at=T0,
            )
        for kind in ("f1", "f2"):  # once per active endpoint, after the rows of the table
            sink.add_fan_out(
                WebhookDelivery,
                {"event_type": kind, "payload": {"k": kind}, "next_attempt_at": T0},
                row_sink.FanOut(
                    select(WebhookEndpoint.url, WebhookEndpoint.id).where(
                        WebhookEndpoint.active.is_(True)
                    ),
                    ("url", "endpoint_id"),
                ),
            )
        assert sink.write(s) == 9
        s.commit()
    with anydb.session() as s:
        steps = s.scalars(select(RmaTransition).order_by(RmaTransition.id)).all()
        hooks = s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
    # per set of columns, in the order added (every path, as the sink's executemany did)
    assert [(t.trigger, t.note) for t in steps] == [
        ("a", ""),
        ("c", ""),
        ("e", ""),
        ("b", "n1"),
        ("d", "n3"),
    ]
    assert [(h.event_type, h.url, h.endpoint_id, h.status, h.last_error) for h in hooks] == [
        ("k1", "http://erp.example/hook", None, "pending", ""),
        ("k2", "http://erp.example/hook", None, "pending", ""),
        ("f1", "http://shop.example/hook", 1, "pending", ""),
        ("f2", "http://shop.example/hook", 1, "pending", ""),
    ]


def test_a_row_breaking_a_constraint_raises_integrity_error(anydb: Database, path: str) -> None:
    _rma_id, line_id = _rma(anydb)
    with anydb.session() as s, open_sink(s) as sink:
        add_row(s, Credit, **_credit(line_id, 1))
        add_row(s, Credit, **_credit(line_id, 1))  # the same unit twice: uq_credits_line_unit
        with pytest.raises(IntegrityError):
            sink.write(s)
        s.rollback()
    with anydb.session() as s:
        assert s.scalars(select(Credit)).all() == []


def test_without_an_open_sink_add_row_adds_the_orm_object(anydb: Database) -> None:
    _rma_id, line_id = _rma(anydb)
    with anydb.session() as s:
        with open_sink(s):
            assert sink_of(s) is not None
        assert sink_of(s) is None  # closed with its block
        add_row(s, Credit, **_credit(line_id, 2))
        (pending,) = s.new
        assert isinstance(pending, Credit) and pending.unit_no == 2
        s.commit()
    with anydb.session() as s:
        assert s.scalars(select(Credit.unit_no)).all() == [2]


def test_gateway_process_freezes_its_start_up_heap_and_sets_the_thresholds() -> None:
    # in a process of its own: freezing this one would keep the suite's garbage for good
    code = (
        "import gc; from gateway.main import tune_collector; "
        "d = tune_collector((12345, 7, 3)); "
        "print(d['threshold'], d['frozen'] > 1000, gc.get_threshold())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[12345, 7, 3] True (12345, 7, 3)"
