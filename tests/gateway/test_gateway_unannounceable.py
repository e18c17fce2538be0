"""An RMA the protocol cannot carry is left out of what stations are told, not sent.

A NUL character (U+0000) stored on SQLite before the gateway refused it at every entry:
stations refuse a message holding one (:func:`protocol.messages.decode`), so the catch-up
batch carrying that RMA was refused whole, every time the station asked again, and the
station never caught up on the other RMAs of the batch. PostgreSQL cannot store NUL, so
the stored data are SQLite's (the ``db`` fixture).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, text

from gateway.db import Database
from gateway.models import AnnouncementRow
from gateway.schemas import RmaDraft
from gateway.services.catch_up import answer
from gateway.services.events import screen_event
from gateway.services.rmas import create_rma, get_rma, list_announcements, transition_rma
from gateway.settings import Settings
from protocol import Evidence, ParcelEvent, SyncBatch, SyncRequest, UnitReceipt, decode

SITE = Settings(site="s1")
LOGGED = "rma 'R-2': lines.0.serial: NUL character (U+0000): not announced"


def _draft(number: str) -> RmaDraft:
    body: dict[str, Any] = {
        "number": number,
        "order_ref": f"O-{number}",
        "reason": "changed_mind",
        "resolution": "refund",
        "authorize": True,
        "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price_cents": 1999, "serial": "SN1"}],
    }
    return RmaDraft.model_validate(body)


def _event(number: str) -> ParcelEvent:
    return ParcelEvent(
        event_id="e" * 16,
        station="st1",
        parcel_id=1,
        inducted_at=datetime(2026, 12, 1, tzinfo=UTC),
        length_mm=300.0,
        barcode=number,
        rma_number=number,
        lane="restock",
        disposition="restock",
        reason="matched",
        diverted=True,
        units=(
            UnitReceipt(
                line_no=1,
                sku="SKU-1",
                unit=1,
                evidence=Evidence.SERIAL,
                verified=True,
                identifier="SN1",
            ),
        ),
    )


def test_an_rma_holding_nul_is_left_out_and_the_others_reach_the_station(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="gateway.services.announcements")
    with db.session() as s:
        for n in ("R-1", "R-2", "R-3"):
            create_rma(s, SITE, _draft(n))
        s.execute(
            text(
                "UPDATE rma_lines SET serial = 'SN' || char(0) || '1'"
                " WHERE rma_id = (SELECT id FROM rmas WHERE number = 'R-2')"
            )
        )
        s.commit()
        s.expire_all()
        request = SyncRequest(station="st1", request_id="r-1", after_revision=0)
        batches = [decode(data, SyncBatch) for data in answer(s, "s1", request, 2)]
        told = [([a.number for a in b.announcements], b.last, b.head_revision) for b in batches]
        assert told == [(["R-1"], False, 3), (["R-3"], True, 3)]
        assert LOGGED in caplog.messages
        assert [a.number for a in list_announcements(s)] == ["R-1", "R-3"]
        # the ingest's check sees what the station could know: an RMA never announced
        unknown, held = screen_event(s, _event("R-9")), screen_event(s, _event("R-2"))
        assert unknown is not None and held is not None
        assert (held.code, held.message) == (unknown.code, unknown.message.replace("R-9", "R-2"))
        # a change of it commits, and announces nothing that stations would refuse
        outbox = select(AnnouncementRow.rma_number).order_by(AnnouncementRow.id)
        assert list(s.scalars(outbox)) == ["R-1", "R-2", "R-3"]  # before the NUL was stored
        rma = get_rma(s, "R-2")
        assert rma is not None
        transition_rma(s, SITE, rma, "cancel", actor="lead")
        s.commit()
        assert (get_rma(s, "R-2").state, list(s.scalars(outbox))) == (  # type: ignore[union-attr]
            "cancelled",
            ["R-1", "R-2", "R-3"],
        )
