"""Station parcel events: exactly-once ingestion, listing and per-lane counts."""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, tuple_, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.base import PassiveFlag
from sqlalchemy.orm.exc import StaleDataError

from gateway.db import begin_writing
from gateway.models import (
    Order,
    OrderLine,
    ReturnReason,
    Rma,
    RmaLineRecord,
    Station,
    StationEvent,
    utcnow,
)
from gateway.security.event_checks import Refusal, check_event
from gateway.services import alarms, credits, refund_terms, webhooks
from gateway.services.announcements import announcement_or_none
from gateway.services.credits import after_ingest
from gateway.services.revisions import reserve_revisions
from gateway.services.rma_writer import StaleRma, apply_change
from gateway.services.rmas import get_rma
from gateway.services.row_sink import open_sink
from gateway.services.webhook_endpoints import active_endpoints
from gateway.settings import DEFAULT_SITE, Settings
from protocol import ParcelEvent

log = logging.getLogger(__name__)

#: attempts at one event while other writers keep changing its RMA (each sees their result)
MAX_STALE_RETRIES = 5
#: events in one batch, at most (the bridge drains its queue up to this)
MAX_BATCH = 1000


class Outcome(Enum):
    """What :func:`ingest_events` did with one event of a batch."""

    STORED = "stored"  # new: stored with its credits, committed with the batch
    DUPLICATE = "duplicate"  # its event_id was already recorded (or twice in the batch)
    REPORTED_AGAIN = "reported_again"  # its parcel was recorded under another event_id:
    # nothing stored or credited; refuse it (the screen then says so: dead letter, alarm)
    STALE = "stale"  # its RMA kept changing under every attempt: nothing stored, retry it
    POISON = "poison"  # its handling failed for good: nothing stored, dead-letter it


@dataclass(frozen=True)
class BatchResult:
    """One event's outcome in a batch; ``error`` is the failure of a POISON / STALE one."""

    event_id: str
    outcome: Outcome
    error: BaseException | None = None


class ParcelReportedAgain(Exception):
    """An event of a parcel already recorded under another ``event_id``: nothing stored.

    A parcel is its station's ``(station, parcel_id, inducted_at)``
    (:func:`parcel_identity`); the unique index ``uq_station_events_parcel`` keeps one
    event per parcel, whichever writer (a replica) stores it first.
    """


#: the refusal code of an event whose parcel was already recorded under another event_id
PARCEL_REPORTED_AGAIN = "parcel_reported_again"

ParcelIdentity = tuple[str, int, datetime]


def parcel_identity(station: str, parcel_id: int, inducted_at: datetime) -> ParcelIdentity:
    """What identifies a parcel: its station, its id there and its induction time (UTC).

    A station restarting may give a parcel id again, never at the same induction time.
    """
    at = inducted_at.replace(tzinfo=UTC) if inducted_at.tzinfo is None else inducted_at
    return (station, parcel_id, at.astimezone(UTC))


def _identity(event: ParcelEvent) -> ParcelIdentity:
    return parcel_identity(event.station, event.parcel_id, event.inducted_at)


def _recorded_parcels(session: Session, events: Sequence[ParcelEvent]) -> dict[ParcelIdentity, str]:
    """The event id each of the events' parcels is recorded under, if any (one query)."""
    if not events:
        return {}
    pairs = sorted({(e.station, e.parcel_id) for e in events})  # (the index's first columns)
    wanted = {_identity(e) for e in events}
    stmt = select(
        StationEvent.station,
        StationEvent.parcel_id,
        StationEvent.inducted_at,
        StationEvent.event_id,
    ).where(tuple_(StationEvent.station, StationEvent.parcel_id).in_(pairs))
    found: dict[ParcelIdentity, str] = {}
    for station, parcel_id, inducted_at, event_id in session.execute(stmt):
        key = parcel_identity(station, parcel_id, inducted_at)
        if key in wanted:
            found[key] = event_id
    return found


def _parcel_refusal(session: Session, event: ParcelEvent) -> str:
    """The refusal message of an event whose parcel is recorded (read now)."""
    first = _recorded_parcels(session, [event]).get(_identity(event), "?")
    return _reported_again(event, first).message


def _reported_again(event: ParcelEvent, first_event_id: str) -> Refusal:
    return Refusal(
        PARCEL_REPORTED_AGAIN,
        f"parcel {event.parcel_id} of station {event.station} inducted at "
        f"{_identity(event)[2].isoformat()} is already recorded as event {first_event_id}",
    )


@dataclass(frozen=True)
class LaneCount:
    """Number of parcels a station sent to one lane."""

    station: str
    lane: str
    count: int


def ingest_event(
    session: Session,
    event: ParcelEvent,
    *,
    received_at: datetime | None = None,
    site: str = DEFAULT_SITE,
) -> bool:
    """Record a parcel event once, with its credits, and commit.

    Also refreshes the station's ``last_seen`` when the station is known. When another
    writer changed the event's RMA between the read and the commit (a lead deciding at
    the same moment), the whole ingestion is rolled back and done again on the RMA's
    new state, up to :data:`MAX_STALE_RETRIES` times.

    Returns:
        True when the event was new and stored; False when its ``event_id`` was already
        recorded (a redelivery: nothing changes).

    Raises:
        StaleRma: the RMA kept changing under every attempt (nothing stored; the bridge
            retries the message, which stays unacknowledged).
        ParcelReportedAgain: its parcel is recorded under another ``event_id`` (nothing
            stored; :func:`screen_event` refuses such an event before, this is the case
            of another writer storing the first one meanwhile).
    """
    for attempt in range(1, MAX_STALE_RETRIES + 1):
        try:
            return _ingest_once(session, event, received_at=received_at, site=site)
        except (StaleRma, StaleDataError):
            session.rollback()
            log.info("rma changed meanwhile, ingesting again event_id=%s", event.event_id)
            if attempt == MAX_STALE_RETRIES:
                raise
    raise AssertionError("unreachable")


def ingest_events(
    session: Session,
    events: Sequence[ParcelEvent],
    *,
    received_at: datetime | None = None,
    is_transient: Callable[[BaseException], bool] = lambda _exc: False,
    site: str = DEFAULT_SITE,
    sites: Sequence[str] | None = None,
) -> list[BatchResult]:
    """Record many parcel events in one transaction, each with its credits, and commit once.

    Exactly once by ``event_id`` like :func:`ingest_event`: ids already recorded or repeated
    within the batch are duplicates. Once per parcel (:func:`parcel_identity`): an event
    whose parcel is recorded under another id (by anyone, or earlier in the batch) is
    REPORTED_AGAIN, nothing of it stored (the caller refuses it). The batch is first staged
    set-based (:func:`_stage_batch`: the RMAs of the batch read, and locked on PostgreSQL,
    in one query, the event rows inserted in one ``INSERT ... ON CONFLICT DO NOTHING``, the
    credits computed from that snapshot, every row flushed once per table, the site revision
    bumped once). When anything of that fails (other than an ``is_transient`` exception),
    the whole set-based attempt is rolled back and the batch is done again event by event
    (:func:`_ingest_one_by_one`), each event in its own savepoint, so one that fails leaves
    the others intact: an RMA that another writer changed meanwhile (:class:`StaleRma`) is
    tried again on its new state up to :data:`MAX_STALE_RETRIES` times and then reported
    STALE (the caller retries it later); any other exception, unless it is an
    ``is_transient`` one, makes it POISON (nothing of it stored). The stations'
    ``last_seen`` is refreshed once per station, and the active webhook endpoints are read
    once per batch.

    Args:
        session: a session with no transaction of its own pending.
        events: at most :data:`MAX_BATCH` events, in arrival order.
        received_at: the receipt time recorded on every event (default: now, UTC).
        is_transient: true for an exception that aborts the whole batch instead (a
            database that went away, a deadlock with another replica: nothing is
            committed, the caller retries the batch).
        site: the site of the topics every event of the batch came on (recorded on each
            event row; the events were screened against it, :func:`screen_events`).
        sites: instead of ``site``, the site of each event's topic, in the same order (a
            batch of several sites in one transaction, as a central gateway receives
            them); a repeated ``event_id`` keeps the site of its first occurrence.

    Returns:
        One :class:`BatchResult` per event, in the order given.

    Raises:
        ValueError: more than :data:`MAX_BATCH` events, or ``sites`` not one per event.
        Exception: an ``is_transient`` one, or the commit's own failure (rolled back:
            nothing of the batch stored).
    """
    if len(events) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} events per batch, got {len(events)}")
    if sites is not None and len(sites) != len(events):
        raise ValueError(f"one site per event: {len(sites)} sites for {len(events)} events")
    site_of: dict[str, str] = {}  # event_id -> the site of its topic (its first occurrence)
    for i, event in enumerate(events):
        site_of.setdefault(event.event_id, sites[i] if sites is not None else site)
    now = received_at or utcnow()
    if session.get_bind().dialect.name in ("postgresql", "sqlite"):
        try:
            begin_writing(session)  # SQLite: counts the units under the write lock
            results = _stage_batch(session, events, now, site_of)
            session.commit()
        except Exception as exc:
            session.rollback()
            if is_transient(exc) and not isinstance(exc, StaleRma | StaleDataError):
                raise  # (a stale RMA is retried per event by the fallback)
            log.warning(
                "event batch not stageable at once, one by one events=%d: %r", len(events), exc
            )
        except BaseException:
            session.rollback()
            raise
        else:
            stored = sum(r.outcome is Outcome.STORED for r in results)
            log.info("event batch committed events=%d stored=%d", len(events), stored)
            return results
        finally:
            session.info.pop(webhooks.ENDPOINTS_KEY, None)
            session.info.pop(refund_terms.CREDITED_KEY, None)
    return _ingest_one_by_one(session, events, now, is_transient, site_of)


def event_row(event: ParcelEvent, received_at: datetime, site: str) -> dict[str, Any]:
    """The ``station_events`` row of a parcel event, by column name (the one place built).

    ``received_at`` is when the gateway received it (UTC); ``site`` the site of the topic
    it came on; ``raw`` keeps the whole event as JSON.
    """
    return {
        "site": site,
        "event_id": event.event_id,
        "station": event.station,
        "parcel_id": event.parcel_id,
        "rma_number": event.rma_number,
        "lane": event.lane,
        "disposition": event.disposition,
        "reason": event.reason,
        "diverted": event.diverted,
        "barcode": event.barcode,
        "length_mm": event.length_mm,
        "inducted_at": event.inducted_at,
        "received_at": received_at,
        "raw": event.model_dump(mode="json"),
    }


def _insert_new_events(
    session: Session, events: Sequence[ParcelEvent], now: datetime, site_of: dict[str, str]
) -> set[str]:
    """Insert the events' rows in one statement; return the ids that were new.

    ``ON CONFLICT DO NOTHING`` (every unique index): an id, or a parcel
    (``uq_station_events_parcel``), that another writer (a replica) stored already, or is
    storing (PostgreSQL waits for its commit), or that an earlier row of ``events`` has,
    is skipped, not an error.
    """
    if not events:
        return set()
    postgres = session.get_bind().dialect.name == "postgresql"
    insert = pg_insert if postgres else sqlite_insert
    table = cast(Table, StationEvent.__table__)
    stmt = insert(table).on_conflict_do_nothing().returning(table.c.event_id)
    # executemany ("insertmanyvalues": the statement compiled once and cached, sent in
    # pages of many rows), not insert().values(list), which is compiled anew per batch
    rows = [event_row(e, now, site_of[e.event_id]) for e in events]
    return set(session.execute(stmt, rows).scalars())


def _load_rmas(
    session: Session, numbers: Iterable[str], *, lock: bool, for_screen: bool = False
) -> dict[str, Rma]:
    """The RMAs named, with their lines, units and catalogue, by number.

    One query (and one per relationship). The stored transitions are not read (lazy,
    never asked for): the batch fires new ones into its row sink, and
    :func:`gateway.services.lifecycle.fired_since_recorded` looks at those only.
    ``for_screen``: the lines' units are not read either (the announcement and the
    event checks need the lines and their catalogue entries only; the objects are
    for reading, never changed). ``lock``: ``SELECT ... FOR UPDATE`` in id order
    (PostgreSQL), so two batches lock their common RMAs in the same order and a lead's
    decision waits for this transaction, as :func:`load_for_change` does for one RMA.
    """
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    stmt = (
        select(Rma)
        .where(Rma.number.in_(wanted))
        .order_by(Rma.id)
        .options(lazyload(Rma.transitions))
        .execution_options(populate_existing=True)
    )
    if for_screen:
        # never touched by the screen; read only if something asks (lazy, still correct)
        stmt = stmt.options(selectinload(Rma.lines).lazyload(RmaLineRecord.units))
    if lock:
        stmt = stmt.with_for_update(of=Rma)
    return {rma.number: rma for rma in session.scalars(stmt)}


def _preload_credit_terms(session: Session, rmas: Iterable[Rma]) -> list[object]:
    """Read what crediting the RMAs needs in a few queries; return the rows to keep alive.

    The return reasons, the orders of their lines (with their lines; locked on
    PostgreSQL, as :func:`refund_terms.lock_orders` does, before their units are
    counted), and the units credited before per line
    (:func:`refund_terms.preload_credited`), so that crediting each unit reads the
    identity map, not the database. The caller keeps the returned
    objects referenced while it credits (the identity map holds them weakly).
    """
    rmas = list(rmas)
    lines = [line for rma in rmas for line in rma.lines]
    kept: list[object] = list(session.scalars(select(ReturnReason)))
    order_line_ids = sorted({ln.order_line_id for ln in lines if ln.order_line_id})
    if order_line_ids:
        orders = select(OrderLine.order_id).where(OrderLine.id.in_(order_line_ids))
        stmt = select(Order).where(Order.id.in_(orders)).order_by(Order.id)
        if session.get_bind().dialect.name == "postgresql":
            # locked before their credited units are counted (refund_terms.lock_orders)
            stmt = stmt.with_for_update(of=Order)
        kept.extend(session.scalars(stmt))
    refund_terms.preload_credited(session, lines)
    return kept


def _stage_batch(
    session: Session, events: Sequence[ParcelEvent], now: datetime, site_of: dict[str, str]
) -> list[BatchResult]:
    """Stage the whole batch set-based (no commit); raises on anything unusual.

    Order of the locks, the same for every writer: the batch's RMAs (PostgreSQL: one
    ``SELECT ... FOR UPDATE ORDER BY id``), the event rows, the site revision row (taken
    last, once the credits are computed, so the other replica waits for it only during
    this batch's flush and commit). On
    SQLite the event insert comes first: it takes the database's write lock, so no other
    writer commits between the read of the RMAs and this commit.

    Raises:
        Exception: whatever failed (a crediting error, a unique violation, a stale RMA):
            the caller rolls back and ingests the batch one by one instead.
    """
    firsts: dict[str, ParcelEvent] = {}
    for event in events:
        firsts.setdefault(event.event_id, event)
    unique = list(firsts.values())
    new: set[str] = set()
    for round_events in _rounds(unique, _repeated_rmas(session, unique)):
        new |= _stage_round(session, round_events, now, site_of)
    stored = [e for e in unique if e.event_id in new]
    seen = sorted({e.station for e in stored})
    for station in seen:
        session.execute(update(Station).where(Station.id == station).values(last_seen=now))
    # not stored, and its id is nowhere: its parcel is recorded under another event id
    skipped = [e.event_id for e in unique if e.event_id not in new]
    stmt = select(StationEvent.event_id).where(StationEvent.event_id.in_(skipped))
    again = set(skipped) - set(session.scalars(stmt)) if skipped else set()
    results: list[BatchResult] = []
    done: set[str] = set()  # ids given their outcome: a repeat in the batch is a duplicate
    for event in events:
        first = event.event_id not in done
        done.add(event.event_id)
        if first and event.event_id in again:
            refused = ParcelReportedAgain(_parcel_refusal(session, event))
            log.warning("event not ingested, %s", refused)
            results.append(BatchResult(event.event_id, Outcome.REPORTED_AGAIN, refused))
            continue
        outcome = Outcome.STORED if first and event.event_id in new else Outcome.DUPLICATE
        results.append(BatchResult(event.event_id, outcome))
    return results


def _repeated_rmas(session: Session, unique: Sequence[ParcelEvent]) -> set[str]:
    """The RMAs that exist among those several events of the batch name (one query, or none).

    A number that names no RMA changes nothing (there is nothing to credit), so its
    parcels need no round of their own: a station reporting a whole batch under one
    unknown number costs what any batch costs. Without a repeated number (the usual
    batch), nothing is read.
    """
    named = Counter(e.rma_number for e in unique if e.rma_number)
    repeated = sorted(number for number, n in named.items() if n > 1)
    if not repeated or credits.configured() is None:  # (crediting off: no RMA changes)
        return set()
    return set(session.scalars(select(Rma.number).where(Rma.number.in_(repeated))))


def _rounds(unique: Sequence[ParcelEvent], split_on: set[str]) -> list[list[ParcelEvent]]:
    """Split distinct events so that no round has two parcels of one RMA, keeping order.

    The k-th parcel of an RMA of ``split_on`` (those that exist, :func:`_repeated_rmas`)
    in the batch goes to round k (events naming no RMA, or one that does not exist, go to
    the first): each round records every RMA it changes once, with the state it reached.
    An RMA created by another writer after ``split_on`` was read and named twice in a
    round makes the batch go one by one (:class:`RmaTwiceInBatch`): the same outcome.
    """
    rounds: list[list[ParcelEvent]] = []
    seen: dict[str, int] = {}
    for event in unique:
        number = event.rma_number if event.rma_number in split_on else None
        k = seen.get(number, 0) if number else 0
        if number:
            seen[number] = k + 1
        while len(rounds) <= k:
            rounds.append([])
        rounds[k].append(event)
    return rounds


def _stage_round(
    session: Session, unique: Sequence[ParcelEvent], now: datetime, site_of: dict[str, str]
) -> set[str]:
    """Stage distinct events, at most one parcel per RMA, and flush; return the new ids.

    A later round of the same batch locks only RMAs the first one locked, and reads what
    the earlier rounds flushed (credited counts, units, states).
    """
    settings = credits.configured()
    numbers = [e.rma_number for e in unique if e.rma_number] if settings is not None else []
    if session.get_bind().dialect.name == "postgresql":
        rmas = _load_rmas(session, numbers, lock=True)
        new = _insert_new_events(session, unique, now, site_of)
    else:
        new = _insert_new_events(session, unique, now, site_of)
        numbers = [e.rma_number for e in unique if e.rma_number and e.event_id in new]
        rmas = _load_rmas(session, numbers if settings is not None else [], lock=False)
    stored = [e for e in unique if e.event_id in new]
    # their alarms (an unconfirmed divert) commit with them: two reads for the round, before
    # the crediting takes the site's revision row
    alarms.raise_for_events(session, stored)
    if stored:
        session.info[webhooks.ENDPOINTS_KEY] = active_endpoints(session)  # once per batch
        kept = _preload_credit_terms(session, rmas.values()) if rmas else []
        changes = _Changes()
        with session.no_autoflush, open_sink(session) as sink:
            for event in stored:
                rma = rmas.get(event.rma_number or "")
                credit_batched(session, settings, rma, event, now, changes.record)
            if settings is not None and changes.rmas:
                # each RMA takes the next revisions of its own site; the sites' revision
                # rows are locked from here to the commit only, in site order
                by_site: dict[str, list[tuple[Rma, str]]] = {}
                for rma, actor in changes.rmas:
                    by_site.setdefault(rma.site, []).append((rma, actor))
                for rma_site, changed in sorted(by_site.items()):
                    first = reserve_revisions(session, rma_site, len(changed))
                    for offset, (rma, actor) in enumerate(changed):
                        apply_change(
                            session,
                            settings,
                            rma,
                            actor=actor,
                            now=now,
                            revision=first + offset,
                            flush=False,
                        )
                _update_rmas_at_once(session, [rma for rma, _actor in changes.rmas])
            sink.write(session)  # transitions, credits, stock moves, outbox rows
        session.flush()  # every other row of the batch, one statement per table and kind
        del kept
    return new


class RmaTwiceInBatch(Exception):
    """Two parcels of one round change the same RMA (never, by :func:`_rounds`).

    The batch then goes one by one instead, each change recorded with the state it reached.
    """


class _Changes:
    """The RMAs a batch changed, in order, with who changed them (each once at most)."""

    def __init__(self) -> None:
        self.rmas: list[tuple[Rma, str]] = []
        self._ids: set[int] = set()

    def record(self, rma: Rma, actor: str) -> None:
        if id(rma) in self._ids:
            raise RmaTwiceInBatch(rma.number)
        self._ids.add(id(rma))
        self.rmas.append((rma, actor))


@functools.cache
def _rma_column_keys() -> frozenset[str]:
    return frozenset(attr.key for attr in sa_inspect(Rma).column_attrs)


def _update_rmas_at_once(session: Session, rmas: Sequence[Rma]) -> None:
    """Write the changed RMA rows in one executemany ``UPDATE`` per set of changed columns.

    Each row keeps the compare-and-set of its revision (``WHERE id = ? AND revision =
    <the revision read>``, as the ORM's version check does, row by row); the values
    written become the objects' committed state, so the flush does not write them again.

    Raises:
        StaleRma: a row's revision changed since it was read (cannot happen while the
            batch holds the RMAs; the caller then goes one by one).
    """
    table = cast(Table, Rma.__table__)
    columns_of = _rma_column_keys()
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    written: list[tuple[Rma, dict[str, Any]]] = []
    for rma in rmas:
        state = sa_inspect(rma)
        values: dict[str, Any] = {}
        read_revision: Any = None
        # only the attributes set since the load (those the unit of work would look at)
        for key in [k for k in state.committed_state if k in columns_of]:
            history = state.get_history(key, PassiveFlag.PASSIVE_NO_INITIALIZE)
            if not history.added:
                continue
            values[key] = history.added[0]
            if key == "revision":
                read_revision = history.deleted[0] if history.deleted else None
        if not values or read_revision is None:
            continue  # (the flush writes it, row by row)
        columns = tuple(sorted(values))
        params = {f"v_{k}": v for k, v in values.items()}
        groups.setdefault(columns, []).append({"b_id": rma.id, "b_rev": read_revision, **params})
        written.append((rma, values))
    for columns, rows in groups.items():
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.revision == bindparam("b_rev"))
            .values(
                {
                    table.c[Rma.__mapper__.attrs[k].columns[0].name]: bindparam(f"v_{k}")
                    for k in columns
                }
            )
        )
        done = session.connection().execute(stmt, rows)
        if done.rowcount != len(rows):
            raise StaleRma(f"{len(rows) - done.rowcount} of {len(rows)} RMAs of the batch")
    for rma, values in written:
        for key, value in values.items():
            set_committed_value(rma, key, value)


def credit_batched(
    session: Session,
    settings: Settings | None,
    rma: Rma | None,
    event: ParcelEvent,
    now: datetime,
    record_change: Callable[[Rma, str], None],
) -> None:
    """Receive and credit one newly stored event of a batch on the batch's snapshot.

    :func:`gateway.services.credits.apply_parcel` on ``rma`` (the RMA the event names, as
    the batch loaded and locked it; None when unknown: nothing to do); the change is
    handed to ``record_change`` (the batch records it on the writer path once it has
    reserved the revisions); nothing is flushed here. Nothing either without
    ``settings`` (automatic crediting is off).

    Raises:
        Exception: the crediting failed: the caller ingests the batch one by one instead,
            where the failure is handled per event.
    """
    if settings is not None and rma is not None:
        credits.apply_parcel(
            session,
            settings,
            rma,
            event,
            actor=f"station:{event.station}",
            now=now,
            record_change=record_change,
        )


def _ingest_one_by_one(
    session: Session,
    events: Sequence[ParcelEvent],
    now: datetime,
    is_transient: Callable[[BaseException], bool],
    site_of: dict[str, str],
) -> list[BatchResult]:
    """The batch event by event, each in a savepoint, committed once (the fallback).

    ``site_of``: the site of each event's topic, by ``event_id``.
    """
    begin_writing(session)  # SQLite: counts the units under the write lock
    ids = [e.event_id for e in events]
    stmt = select(StationEvent.event_id).where(StationEvent.event_id.in_(ids))
    known = set(session.scalars(stmt))
    results: list[BatchResult] = []
    seen_by_station: dict[str, datetime] = {}
    session.info[webhooks.ENDPOINTS_KEY] = active_endpoints(session)  # once per batch
    try:
        for event in events:
            if event.event_id in known:
                results.append(BatchResult(event.event_id, Outcome.DUPLICATE))
                continue
            result = _ingest_in_savepoint(
                session, event, now, is_transient, site_of[event.event_id]
            )
            if result.outcome is Outcome.STORED:
                known.add(event.event_id)
                seen_by_station[event.station] = now
            results.append(result)
        for station, seen in sorted(seen_by_station.items()):
            session.execute(update(Station).where(Station.id == station).values(last_seen=seen))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop(webhooks.ENDPOINTS_KEY, None)
    stored = sum(r.outcome is Outcome.STORED for r in results)
    log.info("event batch committed one by one events=%d stored=%d", len(events), stored)
    return results


def _ingest_in_savepoint(
    session: Session,
    event: ParcelEvent,
    now: datetime,
    is_transient: Callable[[BaseException], bool],
    site: str,
) -> BatchResult:
    """Stage one event and its credits in a savepoint; roll only that back on failure."""
    for attempt in range(1, MAX_STALE_RETRIES + 1):
        try:
            with session.begin_nested():
                _stage(session, event, now, site)
                session.flush()
            return BatchResult(event.event_id, Outcome.STORED)
        except (StaleRma, StaleDataError) as exc:
            log.info("rma changed meanwhile, ingesting again event_id=%s", event.event_id)
            if attempt == MAX_STALE_RETRIES:
                return BatchResult(event.event_id, Outcome.STALE, exc)
        except IntegrityError as exc:  # stored concurrently by another writer (a replica)?
            there = select(StationEvent.id).where(StationEvent.event_id == event.event_id)
            if session.scalar(there) is not None:
                return BatchResult(event.event_id, Outcome.DUPLICATE)
            if _recorded_parcels(session, [event]):  # its parcel, under another event id
                refused = ParcelReportedAgain(_parcel_refusal(session, event))
                log.warning("event not ingested, %s", refused)
                return BatchResult(event.event_id, Outcome.REPORTED_AGAIN, refused)
            log.exception("event not ingested, poison event_id=%s", event.event_id)
            return BatchResult(event.event_id, Outcome.POISON, exc)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception("event not ingested, poison event_id=%s", event.event_id)
            return BatchResult(event.event_id, Outcome.POISON, exc)
    raise AssertionError("unreachable")


def _stage(session: Session, event: ParcelEvent, now: datetime, site: str) -> None:
    """Add the event's row, its alarm and its credits (:func:`after_ingest`) to the transaction.

    The row is flushed first, so an event that another writer (a replica) stored
    concurrently fails here with ``IntegrityError`` (the caller's duplicate), never inside
    the crediting, which would swallow it.

    Raises:
        IntegrityError: the ``event_id``, or another event of its parcel, is already
            stored (committed by another writer).
    """
    session.add(StationEvent(**event_row(event, now, site)))
    session.flush()
    alarms.raise_for_event(session, event)  # an unconfirmed divert's alarm, with the event
    after_ingest(session, event)  # credits and stock moves, in the same transaction


def _ingest_once(
    session: Session, event: ParcelEvent, *, received_at: datetime | None, site: str
) -> bool:
    begin_writing(session)  # SQLite: counts the units under the write lock
    if session.scalar(select(StationEvent.id).where(StationEvent.event_id == event.event_id)):
        log.debug("duplicate event ignored event_id=%s", event.event_id)
        return False
    now = received_at or utcnow()
    try:
        _stage(session, event, now, site)
        session.execute(update(Station).where(Station.id == event.station).values(last_seen=now))
        session.commit()
    except IntegrityError:  # stored concurrently by another writer
        session.rollback()
        there = select(StationEvent.id).where(StationEvent.event_id == event.event_id)
        if session.scalar(there) is None:  # its parcel is, under another event id
            session.rollback()
            raise ParcelReportedAgain(_parcel_refusal(session, event)) from None
        log.debug("duplicate event ignored event_id=%s", event.event_id)
        return False
    log.info(
        "event recorded event_id=%s station=%s parcel_id=%d lane=%s reason=%s",
        event.event_id,
        event.station,
        event.parcel_id,
        event.lane,
        event.reason,
    )
    return True


def screen_events(
    session: Session, events: Sequence[ParcelEvent], sites: Sequence[str | None] | None = None
) -> list[Refusal | None]:
    """:func:`screen_event` for a whole batch, the RMAs read in one query; reads only.

    ``sites``: the site of each event's topic, in the same order (None: not checked).
    An event of the same parcel as an earlier one of the batch under another ``event_id``
    is refused too (``parcel_reported_again``), as it would be once that one is stored.

    Returns:
        One refusal (None: sound) per event, in the order given.

    Raises:
        ValueError: ``sites`` is not as long as ``events``.
    """
    if sites is not None and len(sites) != len(events):
        raise ValueError("one site per event")
    numbers = (e.rma_number for e in events if e.rma_number)
    rmas = _load_rmas(session, numbers, lock=False, for_screen=True)
    announced = {n: announcement_or_none(r) for n, r in rmas.items()}
    recorded = _recorded_parcels(session, events)
    refusals: list[Refusal | None] = []
    for i, event in enumerate(events):
        first = recorded.setdefault(_identity(event), event.event_id)
        if first != event.event_id:
            refusals.append(_reported_again(event, first))
            continue
        rma = rmas.get(event.rma_number or "")
        refusals.append(
            check_event(
                event,
                announced.get(event.rma_number or ""),
                site=sites[i] if sites is not None else None,
                rma_site=rma.site if rma is not None else None,
            )
        )
    return refusals


def screen_event(session: Session, event: ParcelEvent, site: str | None = None) -> Refusal | None:
    """Check an event from a station against what that station could know; None if sound.

    Looks up the RMA the event names as the gateway announces it to the site now (none
    when it was never announced) and applies :func:`gateway.security.event_checks.check_event`,
    with ``site`` (the site of the event's topic; None: not checked) against the RMA's.
    First, an event whose parcel (:func:`parcel_identity`) is recorded under another
    ``event_id`` is refused (``parcel_reported_again``): a replay claims that parcel's
    units again, which on a line of several units would be credited twice. Reads only.
    """
    first = _recorded_parcels(session, [event]).get(_identity(event))
    if first is not None and first != event.event_id:
        return _reported_again(event, first)
    rma = get_rma(session, event.rma_number) if event.rma_number else None
    announced = announcement_or_none(rma) if rma is not None else None
    rma_site = rma.site if rma is not None else None
    return check_event(event, announced, site=site, rma_site=rma_site)


def list_events(
    session: Session,
    *,
    station: str | None = None,
    limit: int = 100,
    sites: list[str] | None = None,
) -> tuple[list[StationEvent], int]:
    """Return up to ``limit`` recorded events, newest first, and the total matching count.

    ``sites``: only events of these sites (None: every site).
    """
    where = [] if station is None else [StationEvent.station == station]
    if sites is not None:
        where.append(StationEvent.site.in_(sites))
    total = session.scalar(select(func.count(StationEvent.id)).where(*where)) or 0
    rows = session.scalars(
        select(StationEvent)
        .where(*where)
        .order_by(StationEvent.received_at.desc(), StationEvent.id.desc())
        .limit(limit)
    )
    return list(rows), int(total)


def lane_counts(
    session: Session, *, station: str | None = None, sites: list[str] | None = None
) -> list[LaneCount]:
    """Return parcel counts per station and lane, ordered by station then lane.

    ``sites``: only the parcels of these sites (None: every site).
    """
    stmt = (
        select(StationEvent.station, StationEvent.lane, func.count(StationEvent.id))
        .group_by(StationEvent.station, StationEvent.lane)
        .order_by(StationEvent.station, StationEvent.lane)
    )
    if station is not None:
        stmt = stmt.where(StationEvent.station == station)
    if sites is not None:
        stmt = stmt.where(StationEvent.site.in_(sites))
    return [LaneCount(s, lane, int(n)) for s, lane, n in session.execute(stmt)]


def lanes_by_station(counts: list[LaneCount]) -> dict[str, dict[str, int]]:
    """Group flat counts as ``{station: {lane: count}}``, keeping their order."""
    grouped: dict[str, dict[str, int]] = {}
    for c in counts:
        grouped.setdefault(c.station, {})[c.lane] = c.count
    return grouped
