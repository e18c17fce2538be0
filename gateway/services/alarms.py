"""Line alarms (issue 7): raised from station statuses and parcel events, acknowledged by a lead.

Condition alarms (E-stop, jam, lane full, gate fault, device down, station offline, station
overloaded: the station raises ``station_overloaded`` when a gate could not fire on time) stay
active while the station reports the condition and are cleared when it stops; a one-off alarm
(a divert not confirmed, from a parcel event's marks; goods sorted to a grade lane for an RMA
that can receive none, :func:`raise_goods_not_received`) is raised already cleared. Either
stays open until a lead acknowledges it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, insert, or_, select
from sqlalchemy.orm import Session

from gateway.models import Alarm, Station, StationEvent, utcnow
from gateway.services.quotas import (
    DROPPED,
    Quota,
    StationQuotas,
    may_raise_one_off,
    open_one_offs,
)
from protocol import ParcelEvent

log = logging.getLogger(__name__)

KINDS = (
    "estop",
    "jam",
    "lane_full",
    "gate_fault",
    "divert_unconfirmed",
    "device_down",
    "station_offline",
    "untrusted_event",
    "station_overloaded",
    "goods_not_received",
)
LABELS = {
    "estop": "Emergency stop",
    "jam": "Jam",
    "lane_full": "Lane full",
    "gate_fault": "Gate cannot be driven",
    "divert_unconfirmed": "Divert not confirmed",
    "device_down": "Device down",
    "station_offline": "Station offline",
    "untrusted_event": "Event refused",
    "station_overloaded": "Station overloaded",
    "goods_not_received": "Goods of an RMA that receives none",
}
OVERLOADED_MESSAGE = (
    "station overloaded: a gate could not fire on time; its parcel went to quarantine "
    "(late_gate). See the gate lateness figures (hardware/INSTALL.md)"
)


@dataclass(frozen=True)
class Condition:
    """One alarm condition a station status shows."""

    kind: str
    subject: str
    message: str


def conditions(station: Station) -> list[Condition]:
    """Return the alarm conditions in a station's last status (state and health)."""
    if station.state == "offline":
        return [Condition("station_offline", "", f"{station.id} is offline")]
    health = station.health
    found: list[Condition] = []
    for name, device in sorted(health.devices.items()):
        if device.state != "ok":
            found.append(Condition("device_down", name, f"{name}: {device.detail[:200]}"))
    if health.core is not None:
        for lane in health.core.lanes_full:
            found.append(Condition("lane_full", lane, f"lane {lane} is full"))
        for lane in health.core.lanes_faulted:  # its PLC is off the network
            found.append(Condition("gate_fault", lane, f"gate of lane {lane} cannot be driven"))
        if health.core.jammed:
            found.append(Condition("jam", "", "belt jammed: stopped until resumed"))
    for key in sorted(health.alarms):
        alarm = health.alarms[key]
        if alarm.kind == "jam" and not any(c.kind == "jam" for c in found):
            found.append(Condition("jam", alarm.lane or "", "belt jammed: stopped until resumed"))
        elif alarm.kind == "station_overloaded":
            found.append(Condition("station_overloaded", "", OVERLOADED_MESSAGE))
    if health.estop_engaged:
        found.append(Condition("estop", "", "emergency stop engaged: gates and belt stopped"))
    elif any(a.kind == "estop" for a in health.alarms.values()):
        found.append(Condition("estop", "", "emergency stop released: press reset or Resume"))
    return found


def sync_station(session: Session, station: Station) -> None:
    """Raise the station's new conditions and clear the ones it no longer reports.

    While a station is offline its other alarms are left as they were (its last status is
    unknown). Does not commit.
    """
    wanted = {f"{station.id}:{c.kind}:{c.subject}": c for c in conditions(station)}
    active = {
        a.key: a
        for a in session.scalars(
            select(Alarm).where(Alarm.station == station.id, Alarm.cleared_at.is_(None))
        )
    }
    now = utcnow()
    for key, alarm in active.items():
        if key not in wanted and (station.state != "offline" or alarm.kind == "station_offline"):
            alarm.cleared_at = now
            log.info("alarm cleared key=%s", key)
    for key, c in wanted.items():
        if key not in active:
            session.add(
                Alarm(
                    key=key,
                    station=station.id,
                    kind=c.kind,
                    subject=c.subject,
                    message=c.message,
                    raised_at=now,
                )
            )
            log.warning("alarm raised key=%s message=%s", key, c.message)


#: the parcel event mark of a divert the gate's sensor did not confirm
DIVERT_UNCONFIRMED = "divert_unconfirmed"


def divert_message(parcel_id: int, lane: str) -> str:
    """The ``divert_unconfirmed`` alarm's message for a parcel (its id) and lane."""
    return f"parcel {parcel_id}: divert into {lane} not confirmed"


def raise_for_event(
    session: Session, event: ParcelEvent, quota: Quota = StationQuotas.alarms
) -> None:
    """:func:`raise_for_events` for one event (the one-by-one ingest). Does not commit."""
    raise_for_events(session, [event], quota)


def raise_for_events(
    session: Session, events: Sequence[ParcelEvent], quota: Quota = StationQuotas.alarms
) -> None:
    """Add the one-off alarms of newly stored parcel events, in the ingest's transaction.

    A ``divert_unconfirmed`` mark raises a ``divert_unconfirmed`` alarm keyed by the event
    (raised already cleared, open until a lead acknowledges it), within the station's
    ``quota`` of unacknowledged one-off alarms; any other event raises nothing. Called for
    the events the ingest stores, before its commit: the alarm commits with the event or
    not at all, whatever order concurrent writers (replicas) commit in. Set-based: two
    reads for the whole batch (the keys already raised, the stations' open counts) and
    nothing at all without an unconfirmed divert, so a station's batch of them costs what
    one does. Inserts the alarms (one statement); does not commit.
    """
    _raise_one_offs(
        session,
        [
            (e.station, e.event_id, e.lane, divert_message(e.parcel_id, e.lane))
            for e in events
            if DIVERT_UNCONFIRMED in e.marks
        ],
        quota,
    )


#: the one-off alarm of goods sorted to a grade lane for an RMA that can receive none
GOODS_NOT_RECEIVED = "goods_not_received"


def goods_not_received_message(event: ParcelEvent, state: str) -> str:
    """The ``goods_not_received`` alarm's message: the RMA, its state, the parcel, the lane."""
    return (
        f"parcel {event.parcel_id} of RMA {event.rma_number} ({state}) sorted to lane "
        f"{event.lane} ({event.disposition}): nothing received, nothing credited; "
        "a lead must find it and decide"
    )


def raise_goods_not_received(
    session: Session, event: ParcelEvent, state: str, quota: Quota = StationQuotas.alarms
) -> None:
    """Raise a one-off ``goods_not_received`` alarm for a stored event; does not commit.

    The parcel was sorted to a grade lane (restock, refurbish, recycle) for an RMA that
    can receive no goods in its ``state`` (cancelled or expired while the parcel was on the
    belt, or received already): nothing is received or credited, so without the alarm the
    goods would sit in that lane unaccounted for. Keyed by station and event id (once),
    within the station's ``quota``; subject: the RMA number. In the ingest's transaction.
    """
    _raise_one_offs(
        session,
        [
            (
                event.station,
                event.event_id,
                event.rma_number or "",
                goods_not_received_message(event, state),
            )
        ],
        quota,
        kind=GOODS_NOT_RECEIVED,
    )


def _raise_one_offs(
    session: Session,
    wanted: Sequence[tuple[str, str, str, str]],
    quota: Quota,
    *,
    kind: str = DIVERT_UNCONFIRMED,
) -> None:
    """Add ``kind`` one-offs ``(station, event_id, subject, message)``, in order.

    Each once (keyed by station and event id: one raised before, or twice in ``wanted``,
    is skipped) and within its station's ``quota`` (:func:`may_raise_one_off`'s count,
    read once per call for every station).
    """
    if not wanted:
        return
    keys = {f"{st}:{kind}:{eid}": (st, eid, sub, msg) for st, eid, sub, msg in wanted}
    raised = set(session.scalars(select(Alarm.key).where(Alarm.key.in_(sorted(keys)))))
    stations = [st for st, _e, _s, _m in keys.values()]
    room = {st: quota.max_count - n for st, n in open_one_offs(session, stations).items()}
    now = utcnow()
    rows: list[dict[str, object]] = []
    for key, (station, _event_id, subject, message) in keys.items():
        if key in raised:
            continue
        if room[station] <= 0:
            DROPPED["alarms"] += 1
            continue
        room[station] -= 1
        rows.append(
            {
                "key": key,
                "station": station,
                "kind": kind,
                "subject": subject[:64],
                "message": message[:500],
                "raised_at": now,
                "cleared_at": now,
            }
        )
        log.warning("alarm raised key=%s message=%s", key, message)
    if rows:  # one statement (executemany), nothing read back
        session.execute(insert(Alarm), rows)


def scan_events(session: Session, after_id: int, quota: Quota = StationQuotas.alarms) -> int:
    """Raise a one-off alarm for each event after ``after_id`` whose divert was not confirmed.

    The ingest raises these alarms itself (:func:`raise_for_event`); this scan is for
    events stored before it did (the live worker runs it once at start, on the recent
    past). Idempotent (keyed by event id); within the station's ``quota`` of
    unacknowledged one-off alarms (:func:`~gateway.services.quotas.may_raise_one_off`).
    At most 1,000 events per call. Commits; returns the highest event id seen.
    """
    rows = session.execute(
        select(
            StationEvent.id,
            StationEvent.event_id,
            StationEvent.station,
            StationEvent.lane,
            StationEvent.parcel_id,
            StationEvent.raw["marks"],  # the marks only: not every event's whole JSON
        )
        .where(StationEvent.id > after_id)
        .order_by(StationEvent.id)
        .limit(1000)
    ).all()
    last = rows[-1][0] if rows else after_id
    _raise_one_offs(
        session,
        [
            (station, event_id, lane, divert_message(parcel_id, lane))
            for _id, event_id, station, lane, parcel_id, marks in rows
            if isinstance(marks, list) and DIVERT_UNCONFIRMED in marks
        ],
        quota,
    )
    session.commit()
    return last


def _one_off(
    session: Session,
    station: str,
    kind: str,
    event_id: str,
    subject: str,
    message: str,
    quota: Quota,
) -> None:
    """Add a one-off alarm (raised already cleared) keyed by the event, once, within quota."""
    key = f"{station}:{kind}:{event_id}"
    if session.scalar(select(Alarm.id).where(Alarm.key == key)) is not None:
        return
    if not may_raise_one_off(session, station, quota):
        return
    now = utcnow()
    session.add(
        Alarm(
            key=key,
            station=station,
            kind=kind,
            subject=subject[:64],
            message=message[:500],
            raised_at=now,
            cleared_at=now,
        )
    )
    session.flush()  # the next quota check counts it
    log.warning("alarm raised key=%s message=%s", key, message)


def raise_refused_event(
    session: Session,
    station: str,
    event_id: str,
    message: str,
    quota: Quota = StationQuotas.alarms,
) -> None:
    """Raise a one-off ``untrusted_event`` alarm for a refused parcel event; commit.

    Idempotent (keyed by station and event id: a redelivery raises nothing twice), within
    the station's ``quota`` of unacknowledged one-off alarms. The alarm is raised already
    cleared and stays open until a lead acknowledges it.
    """
    _one_off(session, station, "untrusted_event", event_id, event_id, message, quota)
    session.commit()


def _of_sites(stmt: Select[Alarm], sites: list[str] | None) -> Select[Alarm]:
    """Only the alarms of stations of ``sites`` (None: every alarm)."""
    if sites is None:
        return stmt
    return stmt.where(Alarm.station.in_(select(Station.id).where(Station.site.in_(sites))))


def open_alarms(session: Session, *, sites: list[str] | None = None) -> list[Alarm]:
    """Alarms still active or not yet acknowledged, newest first (of stations of ``sites``)."""
    stmt = (
        select(Alarm)
        .where(or_(Alarm.cleared_at.is_(None), Alarm.acknowledged_at.is_(None)))
        .order_by(Alarm.raised_at.desc(), Alarm.id.desc())
        .limit(200)
    )
    return list(session.scalars(_of_sites(stmt, sites)))


def history(session: Session, limit: int = 50, *, sites: list[str] | None = None) -> list[Alarm]:
    """The most recent alarms whatever their state, newest first (of stations of ``sites``)."""
    stmt = select(Alarm).order_by(Alarm.raised_at.desc(), Alarm.id.desc()).limit(limit)
    return list(session.scalars(_of_sites(stmt, sites)))


def acknowledge(
    session: Session, alarm_id: int, actor: str, sites: frozenset[str] = frozenset()
) -> Alarm | None:
    """Acknowledge an alarm (once; later calls keep the first) and commit; None if unknown.

    ``sites``: the sites the actor may use (empty: every site); an alarm of another
    site's station is unknown to them (None, nothing changed).
    """
    alarm = session.get(Alarm, alarm_id)
    if alarm is None:
        return None
    if sites:
        site = session.scalar(select(Station.site).where(Station.id == alarm.station))
        if site not in sites:
            return None
    if alarm.acknowledged_at is None:
        alarm.acknowledged_at = utcnow()
        alarm.acknowledged_by = actor
        session.commit()
        log.info("alarm acknowledged id=%d key=%s by=%s", alarm.id, alarm.key, actor)
    return alarm
