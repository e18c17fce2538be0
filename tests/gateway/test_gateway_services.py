"""Service layer against a real SQLite file (no broker)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.db import Database
from gateway.schemas import RmaDraft
from gateway.services.dead_letters import count_dead_letters, record_dead_letter
from gateway.services.events import ingest_event, lane_counts, list_events
from gateway.services.revisions import ensure_site, head_revision
from gateway.services.rmas import DuplicateRma, create_rma, get_rma, list_announcements
from gateway.services.stations import list_stations, upsert_station
from gateway.settings import Settings
from protocol import ParcelEvent, StationStatus

SITE = "site1"
CFG = Settings(site=SITE)


def draft(number: str) -> RmaDraft:
    return RmaDraft(
        number=number,
        order_ref="ORD-1",
        reason="damaged",
        resolution="refund",
        lines=[{"sku": "A", "quantity": 1, "rfid_uid": "dd-17-38-0a"}, {"sku": "B", "quantity": 3}],
    )


def test_revisions_increase_and_duplicates_give_theirs_back(db: Database) -> None:
    with db.session() as s:
        ensure_site(s, SITE)
        assert create_rma(s, CFG, draft("R1")).revision == 1
        assert create_rma(s, CFG, draft("R2")).revision == 2
        with pytest.raises(DuplicateRma):
            create_rma(s, CFG, draft("R1"))
        assert head_revision(s, SITE) == 2
        assert create_rma(s, CFG, draft("R3")).revision == 3


def test_lines_numbered_and_uid_canonical(db: Database) -> None:
    with db.session() as s:
        ann = create_rma(s, CFG, draft("R1"))
        assert [line.line_no for line in ann.lines] == [1, 2]
        assert ann.lines[0].rfid_uid == "DD17380A"
        stored = get_rma(s, "R1")
        assert stored is not None
        assert stored.lines[0].rfid_uid == "DD17380A"
        assert stored.created_at.tzinfo is not None


def test_list_announcements_after_revision(db: Database) -> None:
    with db.session() as s:
        for i in range(1, 6):
            create_rma(s, CFG, draft(f"R{i}"))
        anns = list_announcements(s, after_revision=2)
        assert [a.revision for a in anns] == [3, 4, 5]
        page = list_announcements(s, after_revision=0, up_to_revision=4, limit=2)
        assert [a.number for a in page] == ["R1", "R2"]


def test_concurrent_creates_get_distinct_revisions(db: Database) -> None:
    with db.session() as s:
        ensure_site(s, SITE)
    errors: list[BaseException] = []
    revisions: list[int] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        try:
            for i in range(5):
                with db.session() as s:
                    rev = create_rma(s, CFG, draft(f"T{k}-{i}")).revision
                with lock:
                    revisions.append(rev)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(revisions) == list(range(1, 41))


def test_ingest_exactly_once_and_lane_counts(
    db: Database, make_event: Callable[..., ParcelEvent]
) -> None:
    first = make_event(lane="restock")
    with db.session() as s:
        assert ingest_event(s, first) is True
        assert ingest_event(s, first) is False
        assert ingest_event(s, make_event(lane="quarantine", diverted=False)) is True
        assert ingest_event(s, make_event(station="st2", lane="restock")) is True
        counts = {(c.station, c.lane): c.count for c in lane_counts(s)}
        assert counts == {("st1", "quarantine"): 1, ("st1", "restock"): 1, ("st2", "restock"): 1}
        events, total = list_events(s, station="st1", limit=1)
        assert total == 2 and len(events) == 1
        assert events[0].inducted_at.tzinfo is not None


def test_station_upsert_and_retained_replay(db: Database) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    t1 = datetime(2024, 1, 2, tzinfo=UTC)
    online = StationStatus(station="st1", state="online", software_version="0.1", rma_revision=4)
    with db.session() as s:
        upsert_station(s, SITE, online, seen_at=t0)
        replay = StationStatus(station="st1", state="offline")
        station = upsert_station(s, SITE, replay, seen_at=t1, retained=True)
        assert station.state == "offline"
        assert station.last_seen == t0
        [listed] = list_stations(s)
        assert (listed.id, listed.site, listed.state) == ("st1", SITE, "offline")


def test_dead_letters(db: Database) -> None:
    payload: Any = b"\xff" * 10
    with db.session() as s:
        record_dead_letter(s, "rs/v1/x/st/event", payload, "bad")
        assert count_dead_letters(s) == 1
