"""Alarms, lane figures, live change tracking and /metrics (issue 7), on the services."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.models import Alarm, StationEvent, StationStateChange
from gateway.services import alarms, dashboard
from gateway.services.events import Outcome, event_row, ingest_event, ingest_events
from gateway.services.quotas import DROPPED
from gateway.services.stations import upsert_station
from gateway.web.live import LiveWorker, event_stream
from protocol import ParcelEvent, StationHealth, StationStatus
from tests.gateway.conftest import pg_database

NOW = datetime(2026, 5, 4, 12, 30, tzinfo=UTC)


def status(state: str = "online", **details: Any) -> StationStatus:
    """A status whose health is ``details`` (raised alarms by key: their kind is the key's)."""
    alarms = {k: {"kind": k.partition(":")[0], **v} for k, v in details.pop("alarms", {}).items()}
    health = StationHealth.model_validate({**details, "alarms": alarms})
    return StationStatus(station="st1", state=state, software_version="1.2", health=health)


def hold_commit(session: Session) -> tuple[threading.Event, threading.Event]:
    """Make ``session.commit`` wait: ``(reached, release)``, set when it is called / to go on."""
    reached, release = threading.Event(), threading.Event()
    real_commit = session.commit

    def held_commit() -> None:
        reached.set()
        assert release.wait(10)
        real_commit()

    session.commit = held_commit  # type: ignore[method-assign]
    return reached, release


def open_keys(db: Database) -> list[tuple[str, bool]]:
    with db.session() as s:
        return sorted((a.key, a.cleared_at is None) for a in alarms.open_alarms(s))


def test_alarms_follow_station_status_and_need_acknowledgement(anydb: Database) -> None:
    devices = {"rfid": {"state": "failed", "detail": "no answer"}, "scanner": {"state": "ok"}}
    core = {"lanes_full": ["refurbish"], "jammed": True, "policy_version": "p1"}
    with anydb.session() as s:
        upsert_station(s, "site", status("degraded", devices=devices, core=core))
    assert open_keys(anydb) == [
        ("st1:device_down:rfid", True),
        ("st1:jam:", True),
        ("st1:lane_full:refurbish", True),
    ]
    with anydb.session() as s:  # the same status again raises nothing new
        upsert_station(s, "site", status("degraded", devices=devices, core=core))
        assert s.query(Alarm).count() == 3
        upsert_station(s, "site", status("offline"))  # others stay as they were
    assert open_keys(anydb) == [
        ("st1:device_down:rfid", True),
        ("st1:jam:", True),
        ("st1:lane_full:refurbish", True),
        ("st1:station_offline:", True),
    ]
    with anydb.session() as s:
        upsert_station(s, "site", status("online", devices={"rfid": {"state": "ok"}}, core={}))
    assert open_keys(anydb) == [
        ("st1:device_down:rfid", False),
        ("st1:jam:", False),
        ("st1:lane_full:refurbish", False),
        ("st1:station_offline:", False),
    ]
    with anydb.session() as s:
        ids = [a.id for a in alarms.open_alarms(s)]
        for alarm_id in ids:
            assert alarms.acknowledge(s, alarm_id, "user:lee") is not None
        assert alarms.open_alarms(s) == []
        assert [(a.kind, a.acknowledged_by) for a in alarms.history(s)][:1] == [
            ("station_offline", "user:lee")
        ]
        assert alarms.acknowledge(s, 999, "user:lee") is None


@pytest.mark.parametrize("batched", [False, True])
def test_divert_not_confirmed_event_raises_a_one_off_alarm_once(
    anydb: Database, make_event: Callable[..., ParcelEvent], batched: bool
) -> None:
    unconfirmed = make_event(marks=("divert_unconfirmed",), lane="restock", parcel_id=7)
    other = make_event()
    with anydb.session() as s:
        if batched:
            ingest_events(s, [unconfirmed, other, unconfirmed])
        else:
            ingest_event(s, unconfirmed)
            ingest_event(s, other)
        # raised by the ingest itself, in the event's transaction: no scan needed
        [a] = alarms.open_alarms(s)
        assert (a.key, a.kind, a.subject, a.message) == (
            f"st1:divert_unconfirmed:{unconfirmed.event_id}",
            "divert_unconfirmed",
            "restock",
            "parcel 7: divert into restock not confirmed",
        )
        assert a.cleared_at is not None and a.acknowledged_at is None
        ingest_events(s, [unconfirmed])  # a redelivery raises nothing twice
        assert alarms.scan_events(s, 0) == 2  # nor does the rescan of the past
        assert s.query(Alarm).count() == 1


def test_lane_figures_today_last_hour_rate_and_hourly_series(
    anydb: Database, make_event: Callable[..., ParcelEvent]
) -> None:
    ages_min = {"restock": [1, 2, 3, 50, 130], "quarantine": [5, 12 * 60 + 40]}
    with anydb.session() as s:
        for lane, ages in ages_min.items():
            for age in ages:
                ingest_event(s, make_event(lane=lane), received_at=NOW - timedelta(minutes=age))
        upsert_station(
            s, "site", status(core={"lanes_full": ["quarantine"], "lanes": {"recycle": 0}})
        )
        figures = dashboard.lane_rows(s, NOW, ZoneInfo("UTC"))
    assert figures["hours"] == [
        "05:00",
        "06:00",
        "07:00",
        "08:00",
        "09:00",
        "10:00",
        "11:00",
        "12:00",
    ]
    assert figures["total_today"] == 6
    assert figures["rows"] == [
        {
            "lane": "quarantine",
            "today": 1,
            "last_hour": 1,
            "rate_per_h": 6,
            "full": True,
            "series": [0, 0, 0, 0, 0, 0, 0, 1],
        },
        {
            "lane": "recycle",
            "today": 0,
            "last_hour": 0,
            "rate_per_h": 0,
            "full": False,
            "series": [0] * 8,
        },
        {
            "lane": "restock",
            "today": 5,
            "last_hour": 4,
            "rate_per_h": 18,
            "full": False,
            "series": [0, 0, 0, 0, 0, 1, 1, 3],
        },
    ]
    # the shop's calendar decides what "today" is
    with anydb.session() as s:
        tokyo = dashboard.lane_rows(s, NOW, ZoneInfo("Asia/Tokyo"))  # 21:30, day began 15:00 UTC
    assert [(r["lane"], r["today"]) for r in tokyo["rows"]] == [
        ("quarantine", 2),
        ("recycle", 0),
        ("restock", 5),
    ]


def test_live_worker_reports_changed_sections(
    anydb: Database, make_event: Callable[..., ParcelEvent]
) -> None:
    worker = LiveWorker(anydb.sessions, clock=lambda: NOW)
    assert worker.poll() == [
        "stations",
        "alarms",
        "quarantine",
        "lanes",
        "expected",
        "shift",
        "parcels",
    ]
    assert worker.poll() == []
    with anydb.session() as s:
        ingest_event(s, make_event(marks=("divert_unconfirmed",)))
    # the alarm is raised by the poll
    assert worker.poll() == ["alarms", "quarantine", "lanes", "shift", "parcels"]
    assert worker.poll() == []
    with anydb.session() as s:
        upsert_station(s, "site", status())
    assert worker.poll() == ["stations", "shift"]  # and its belt state: the shift report
    assert worker.snapshot() == {
        "stations": 2,
        "lanes": 2,
        "shift": 3,
        "parcels": 2,
        "quarantine": 2,
        "alarms": 2,
        "expected": 1,
    }


def test_live_worker_without_a_listening_page_reads_nothing(
    anydb: Database, make_event: Callable[..., ParcelEvent]
) -> None:
    worker = LiveWorker(anydb.sessions, clock=lambda: NOW)
    assert len(worker.poll()) == 7  # every section's first digest
    with anydb.session() as s:
        ingest_event(s, make_event(marks=("divert_unconfirmed",), lane="refurbish", parcel_id=4))
    queries: list[str] = []
    listen = sqlalchemy.event.listens_for(anydb.engine, "before_cursor_execute")
    listen(lambda _c, _cur, statement, *_a: queries.append(statement))
    # nobody listens: no section is looked at, nothing is read
    assert worker.poll(track_sections=False) == []
    assert queries == []
    with anydb.session() as s:  # the ingest raised the event's alarm all the same
        assert [(a.kind, a.subject) for a in alarms.open_alarms(s)] == [
            ("divert_unconfirmed", "refurbish")
        ]
    assert worker.snapshot()["parcels"] == 1
    # the next tracking poll reports what changed since the last one that tracked
    assert worker.poll() == ["alarms", "quarantine", "lanes", "shift", "parcels"]
    assert worker.snapshot()["parcels"] == 2


def test_live_worker_start_raises_the_alarms_of_recent_events_stored_without_them(
    anydb: Database, make_event: Callable[..., ParcelEvent]
) -> None:
    # events an older gateway stored, whose alarms its scan had not raised yet
    old = [make_event(marks=("divert_unconfirmed",), parcel_id=i) for i in (1, 2)]
    with anydb.session() as s:
        s.add_all(StationEvent(**event_row(e, NOW, "site")) for e in old)
        s.commit()
    worker = LiveWorker(anydb.sessions, clock=lambda: NOW)
    worker.start()
    worker.stop()
    with anydb.session() as s:
        assert sorted(a.key for a in alarms.open_alarms(s)) == sorted(
            f"st1:divert_unconfirmed:{e.event_id}" for e in old
        )


def test_an_open_stream_is_a_listener_until_it_ends(anydb: Database) -> None:
    worker = LiveWorker(anydb.sessions, clock=lambda: NOW)

    async def connected() -> bool:
        return False

    async def scenario() -> list[int]:
        seen = [worker.listeners]
        stream = event_stream(worker, connected, tick_s=0.01)
        seen.append(worker.listeners)  # not started: not listening yet
        assert (await anext(stream)).startswith("retry: 1000\nevent: hello")
        seen.append(worker.listeners)
        await stream.aclose()  # the client went away
        seen.append(worker.listeners)
        return seen

    assert asyncio.run(scenario()) == [0, 0, 1, 0]
    with worker.listening(), worker.listening():
        assert worker.listeners == 2
    assert worker.listeners == 0


def test_recent_parcels_newest_first_with_grade_and_reason(
    anydb: Database, make_event: Callable[..., ParcelEvent]
) -> None:
    with anydb.session() as s:
        ingest_event(s, make_event(parcel_id=1, lane="restock"), received_at=NOW)
        ingest_event(
            s,
            make_event(
                parcel_id=2,
                lane="quarantine",
                disposition="quarantine",
                reason="unknown_rma",
                rma_number=None,
                explanation="RMA not known",
            ),
            received_at=NOW + timedelta(seconds=1),
        )
        rows = dashboard.recent_parcels(s)
        assert s.query(StationEvent).count() == 2
    assert [
        (r["parcel_id"], r["lane"], r["grade"], r["reason"], r["rma"], r["explanation"])
        for r in rows
    ] == [
        (2, "quarantine", "quarantine", "unknown_rma", "", "RMA not known"),
        (1, "restock", "restock", "known_rma", "RMA00001", ""),
    ]


def test_photo_links_only_for_a_stored_photo_hash(
    anydb: Database, make_event: Callable[..., ParcelEvent]
) -> None:
    with anydb.session() as s:
        good = "0f" * 32
        for photo in (
            {"sha256": good},
            {"sha256": "../../etc/passwd"},
            {"sha256": good.upper()},
            "javascript:alert(1)",
        ):
            event = make_event()
            ingest_event(s, event)
            row = s.query(StationEvent).filter_by(event_id=event.event_id).one()
            row.raw = {**row.raw, "photo": photo}
        s.commit()
        photos = [r["photo"] for r in dashboard.recent_parcels(s)]
    assert photos == [None, None, None, f"/api/v1/photos/{good}"]  # newest first


def test_an_overloaded_station_raises_its_alarm_until_it_stops_reporting_it(
    anydb: Database,
) -> None:
    raised = {"station_overloaded": {"parcel_id": 12, "lane": None}}
    with anydb.session() as s:
        upsert_station(s, "site", status("online", alarms=raised, core={}))
        [a] = alarms.open_alarms(s)
        assert (a.key, a.kind, a.subject, a.message) == (
            "st1:station_overloaded:",
            "station_overloaded",
            "",
            alarms.OVERLOADED_MESSAGE,
        )
        assert alarms.LABELS[a.kind] == "Station overloaded"
        upsert_station(s, "site", status("online", alarms={}, core={}))
    assert open_keys(anydb) == [("st1:station_overloaded:", False)]


def test_a_gate_fault_is_an_alarm_while_the_station_reports_it(anydb: Database) -> None:
    """A lane whose gate's PLC is off the network (issue 21): raised, then cleared."""
    with anydb.session() as s:
        upsert_station(s, "site", status("degraded", core={"lanes_faulted": ["restock"]}))
    assert open_keys(anydb) == [("st1:gate_fault:restock", True)]
    with anydb.session() as s:
        upsert_station(s, "site", status("online", core={"lanes_faulted": []}))
    assert open_keys(anydb) == [("st1:gate_fault:restock", False)]
    assert alarms.LABELS["gate_fault"] == "Gate cannot be driven"


def test_the_estop_alarm_stays_until_the_station_is_reset(db: Database) -> None:
    with db.session() as s:
        engaged = status(estop_engaged=True, belt_running=False, alarms={"estop": {}})
        upsert_station(s, "site", engaged)
        assert dashboard.station_rows(s)[0]["belt"] == "estop"  # "■ E-stop"
    assert open_keys(db) == [("st1:estop:", True)]
    with db.session() as s:  # released, not yet reset: the station still holds the belt
        upsert_station(s, "site", status(estop_engaged=False, alarms={"estop": {}}))
        [alarm] = alarms.open_alarms(s)
        assert alarms.LABELS[alarm.kind] == "Emergency stop"
    assert open_keys(db) == [("st1:estop:", True)]
    with db.session() as s:  # reset
        upsert_station(s, "site", status(estop_engaged=False, alarms={}))
    assert open_keys(db) == [("st1:estop:", False)]


def test_clock_steps_a_station_saw_show_in_its_row(db: Database) -> None:
    with db.session() as s:
        upsert_station(s, "site", status(clock={"steps": 2, "last_step_s": 3600.0}))
        row = dashboard.station_rows(s)[0]
        assert (row["clock_steps"], row["last_clock_step_s"]) == (2.0, 3600.0)
    # a station's word is not trusted: a malformed clock never reaches the page (the
    # typed status refuses it at the boundary; the bridge dead-letters such a status)
    with pytest.raises(ValidationError, match="clock"):
        status(clock={"steps": "many", "last_step_s": [1]})


def test_an_unconfirmed_divert_committed_after_a_later_event_still_raises_its_alarm(
    make_event: Callable[..., ParcelEvent],
) -> None:
    # PostgreSQL numbers an event row when it is inserted, not when it commits: two
    # writers (two replicas sharing the ingest) commit out of id order. The live worker's
    # scan by id had moved past the later event before the earlier one committed, and the
    # earlier one's alarm was never raised (found by reading the scan). PostgreSQL only:
    # SQLite's writers hold the write lock from their insert to their commit.
    with pg_database() as url:
        db = Database(url)
        db.migrate()
        try:
            worker = LiveWorker(db.sessions, clock=lambda: NOW)
            worker.start()  # as a gateway does: the recent past rescanned once
            worker.stop()
            first = make_event(
                station="st1", marks=("divert_unconfirmed",), lane="refurbish", parcel_id=7
            )
            later = make_event(station="st2", parcel_id=8)
            session = db.sessions()
            inserted, release = hold_commit(session)  # the first writer: not yet committed
            writer = threading.Thread(target=ingest_events, args=(session, [first]))
            writer.start()
            assert inserted.wait(10)
            with db.session() as s:  # the second writer commits first, with the higher id
                ingest_events(s, [later])
            worker.poll(track_sections=False)
            release.set()
            writer.join(10)
            session.close()
            worker.poll(track_sections=False)
            with db.session() as s:
                ids = dict(s.execute(select(StationEvent.event_id, StationEvent.id)).all())
                assert ids[first.event_id] < ids[later.event_id]  # committed out of id order
                assert [(a.key, a.subject) for a in alarms.open_alarms(s)] == [
                    (f"st1:divert_unconfirmed:{first.event_id}", "refurbish")
                ]
        finally:
            db.dispose()


def test_a_batch_of_unconfirmed_diverts_costs_what_one_does_within_the_alarm_quota(
    anydb: Database, make_event: Callable[..., ParcelEvent]
) -> None:
    # a station whose divert sensor is broken marks every parcel: the batch's alarms were
    # raised event by event (a key lookup, a quota count and an INSERT each: 3 round
    # trips a parcel, on PostgreSQL after the site's revision row was taken)
    sent: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        sent.append(statement.split(None, 1)[0])

    def unconfirmed(station: str, n: int) -> list[ParcelEvent]:
        return [make_event(station=station, marks=("divert_unconfirmed",)) for _ in range(n)]

    sqlalchemy.event.listen(anydb.engine, "before_cursor_execute", record)
    cost = []
    dropped = DROPPED["alarms"]
    for batch in (
        unconfirmed("st1", 1) + unconfirmed("st2", 1),
        unconfirmed("st1", 249) + unconfirmed("st2", 9),
    ):
        sent.clear()
        with anydb.session() as s:
            results = ingest_events(s, batch)
        cost.append(Counter(sent))
        assert [r.outcome for r in results] == [Outcome.STORED] * len(batch)
    sqlalchemy.event.remove(anydb.engine, "before_cursor_execute", record)
    assert cost[1] == cost[0]  # 258 alarms asked cost what 2 do
    assert DROPPED["alarms"] - dropped == 50  # st1's quota (200 unacknowledged) is full
    with anydb.session() as s:
        by_station = Counter(s.scalars(select(Alarm.station)))
        assert by_station == Counter({"st1": 200, "st2": 10})
        assert s.query(StationEvent).count() == 260
        first = s.scalars(select(Alarm).order_by(Alarm.id)).first()
        assert first is not None and alarms.acknowledge(s, first.id, "user:lee") is not None
        ingest_events(s, unconfirmed("st1", 2))  # room for one more
    with anydb.session() as s:
        assert Counter(s.scalars(select(Alarm.station))) == Counter({"st1": 201, "st2": 10})


def test_live_worker_starts_when_the_rescan_of_the_past_fails(
    anydb: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: Any) -> int:
        raise RuntimeError("the rescan broke")

    monkeypatch.setattr("gateway.web.live.scan_events", broken)
    worker = LiveWorker(anydb.sessions, clock=lambda: NOW)
    worker.start()  # a best-effort rescan: the gateway starts all the same
    try:
        assert worker._thread is not None and worker._thread.is_alive()
        assert len(worker.poll()) == 7
    finally:
        worker.stop()
    assert "the rescan of recent events failed" in caplog.text


@pytest.mark.parametrize("known", [True, False])
def test_two_replicas_taking_one_status_raise_its_alarm_and_its_state_change_once(
    known: bool,
) -> None:
    # every replica subscribes to every station's status: the same status is upserted by
    # each at the same moment. A new station's first status failed on the second replica
    # (the row's primary key, IntegrityError) and was dead-lettered (found by reading the
    # bridge). A known station's replicas took turns only because the autoflush of its
    # last_seen locked the row before the alarms were read; the row is now locked first,
    # for both. Each must raise the jam and record the stop once. PostgreSQL only: SQLite
    # has one gateway process.
    with pg_database() as url:
        db = Database(url)
        db.migrate()
        try:
            if known:
                with db.session() as s:
                    upsert_station(s, "site", status("online", core={}))
            jammed = status("degraded", core={"jammed": True})
            first = db.sessions()
            inserted, release = hold_commit(first)  # the first replica: not yet committed
            failed: list[BaseException] = []

            def replica(session_of: Callable[[], Any]) -> None:
                try:
                    with session_of() as s:
                        upsert_station(s, "site", jammed)
                except BaseException as exc:  # the bridge dead-letters such a status
                    failed.append(exc)

            one = threading.Thread(target=replica, args=(lambda: first,))
            one.start()
            assert inserted.wait(10)
            two = threading.Thread(target=replica, args=(db.session,))
            two.start()
            two.join(0.5)  # it commits now, or waits for the first replica's
            release.set()
            one.join(10)
            two.join(10)
            assert failed == []
            with db.session() as s:
                assert [(a.key, a.cleared_at) for a in s.scalars(select(Alarm))] == [
                    ("st1:jam:", None)
                ]
                modes = s.scalars(
                    select(StationStateChange.mode).order_by(StationStateChange.id)
                ).all()
                assert modes == (["running", "jammed"] if known else ["jammed"])
            with db.session() as s:  # the jam ends: nothing stays open
                upsert_station(s, "site", status("online", core={}))
                assert [a.cleared_at is not None for a in s.scalars(select(Alarm))] == [True]
        finally:
            db.dispose()
