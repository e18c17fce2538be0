"""The station's local store (SQLite, WAL): RMA cache, event outbox, receipts, dead letters.

One database file per station, so a power cut leaves cache and outbox consistent with
each other. Every method is thread-safe (one connection, one lock): the MQTT thread
applies announcements while the reactor thread looks RMAs up.

**Receipts** (the units this station claimed, per RMA line; the core's ``ReceiptBook``)
are written only together with the parcel event that claims them, in the outbox row's
transaction (:meth:`StationStore.outbox_put` with ``receipts``): after a power cut or a
SIGKILL either both the event and its receipts are there or neither is, so "unit claimed"
and "event queued" never disagree. A parcel still on the belt when the station died has
neither (it is reported by nobody and claims nothing). Reconciliation with the gateway:
announcements carry per line ``received_quantity`` (all stations, all sources) and
``received_by_station``; :meth:`lookup_rma` gives the core both, with this station's own
count, and the core takes as received the gateway's total plus those of its own receipts
the gateway has not counted yet (``edge.sorter.core``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.clock import utc_now
from edge.sorter.model import RmaLineRecord, RmaRecord
from protocol import Evidence, RmaAnnouncement, RmaCancellation, UnitReceipt

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rmas (
    number   TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    state    TEXT NOT NULL,
    payload  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Identifiers of the cached RMAs: item identifiers of their lines (tag UID, serial) and
-- the parcel's carrier tracking number (kind 'tracking', announcement schema 3), so that a
-- tag or a carrier barcode read can name its RMA; kept by a trigger from the payload,
-- whoever writes the rmas table (the trigger of stores before tracking is replaced).
CREATE TABLE IF NOT EXISTS rma_identifiers (
    number TEXT NOT NULL,
    kind   TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (number, kind, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rma_identifiers_by_value ON rma_identifiers(kind, value);
DROP TRIGGER IF EXISTS rma_identifiers_ins;
CREATE TRIGGER IF NOT EXISTS rma_identifiers_ins_v2 AFTER INSERT ON rmas BEGIN
    DELETE FROM rma_identifiers WHERE number = NEW.number;
    INSERT OR IGNORE INTO rma_identifiers(kind, value, number)
        SELECT 'tracking', json_extract(NEW.payload, '$.tracking_number'), NEW.number
        WHERE json_extract(NEW.payload, '$.tracking_number') IS NOT NULL;
    INSERT OR IGNORE INTO rma_identifiers(kind, value, number)
        SELECT 'rfid_uid', json_extract(l.value, '$.rfid_uid'), NEW.number
        FROM json_each(NEW.payload, '$.lines') AS l
        WHERE json_extract(l.value, '$.rfid_uid') IS NOT NULL;
    INSERT OR IGNORE INTO rma_identifiers(kind, value, number)
        SELECT 'serial', json_extract(l.value, '$.serial'), NEW.number
        FROM json_each(NEW.payload, '$.lines') AS l
        WHERE json_extract(l.value, '$.serial') IS NOT NULL;
END;
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    topic      TEXT NOT NULL,
    payload    BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS receipts (
    rma_number TEXT NOT NULL,
    line_no    INTEGER NOT NULL,
    unit       INTEGER NOT NULL,
    evidence   TEXT NOT NULL,
    verified   INTEGER NOT NULL,
    identifier TEXT,
    outbox_id  INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (rma_number, line_no, unit)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic       TEXT NOT NULL,
    payload     BLOB NOT NULL,
    error       TEXT NOT NULL,
    received_at TEXT NOT NULL
);
"""


_CATALOGUE_FIELDS = (
    "weight_g",
    "length_mm",
    "width_mm",
    "height_mm",
    "weight_tol_g",
    "size_tol_mm",
)
"""Catalogue values of an announced line (``protocol.RmaLine``), kept on the cached line."""


@dataclass(frozen=True)
class OutboxItem:
    """An event waiting for the broker's acknowledgement."""

    id: int
    topic: str
    payload: bytes


class StationStore:
    """SQLite store at ``path`` (created with its parent folder when missing).

    ``station``: this station's id, to find its own count in an announcement's
    ``received_by_station``; None: unknown, so none of its receipts is taken as counted
    by the gateway (the safe side: a unit may be refused, never claimed twice).
    """

    def __init__(self, path: str | Path, station: str | None = None) -> None:
        self.path = Path(path)
        self.station = station
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # -- RMA cache ------------------------------------------------------------------
    def apply_announcement(self, ann: RmaAnnouncement | RmaCancellation) -> bool:
        """Store ``ann`` unless the cache holds this RMA at the same or a newer revision.

        Returns True when applied. Idempotent by (RMA, revision): a duplicate or older
        revision changes nothing (``../shared/cases`` C6). A cancellation keeps the RMA's
        lines and sets its state to ``cancelled`` (an unknown RMA is kept as a cancelled
        tombstone, so an older announcement arriving late cannot resurrect it). Also raises
        the applied high-water mark used for catch-up.
        """
        return self.apply_changes([ann]) == 1

    def apply_changes(self, changes: Sequence[RmaAnnouncement | RmaCancellation]) -> int:
        """Apply announcements / cancellations in one transaction, in the given order.

        Same rule per change as :meth:`apply_announcement`; returns how many were applied
        (the others were duplicates or older than the cached revision).
        """
        if not changes:
            return 0
        applied = 0
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for change in changes:
                applied += self._apply_one(change)
            top = max(c.revision for c in changes)
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES ('rma_revision', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = "
                "CAST(MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
                (str(top),),
            )
        return applied

    def _apply_one(self, change: RmaAnnouncement | RmaCancellation) -> int:
        row = self._db.execute(
            "SELECT revision, payload FROM rmas WHERE number = ?", (change.number,)
        ).fetchone()
        if row is not None and row[0] >= change.revision:
            return 0
        if isinstance(change, RmaAnnouncement):
            state, payload = change.state.value, change.model_dump_json()
        else:
            state = "cancelled"
            payload = row[1] if row is not None else '{"lines": []}'
        self._db.execute(
            "INSERT OR REPLACE INTO rmas(number, revision, state, payload) VALUES (?, ?, ?, ?)",
            (change.number, change.revision, state, payload),
        )
        return 1

    def lookup_rma(self, number: str) -> RmaRecord | None:
        """The cached RMA with this number, or None (implements the core's RmaDirectory)."""
        with self._lock:
            row = self._db.execute(
                "SELECT revision, state, payload FROM rmas WHERE number = ?", (number,)
            ).fetchone()
        if row is None:
            return None
        payload = json.loads(row[2])
        lines = tuple(
            RmaLineRecord(
                sku=line["sku"],
                quantity=line["quantity"],
                gtin=line.get("gtin"),
                serial=line.get("serial"),
                rfid_uid=line.get("rfid_uid"),
                category=line.get("category"),
                line_no=line.get("line_no"),
                unit_value_cents=line.get("unit_value_cents"),
                received_quantity=line.get("received_quantity", 0),
                received_here=(line.get("received_by_station") or {}).get(self.station or "", 0),
                **{key: line.get(key) for key in _CATALOGUE_FIELDS},
            )
            for line in payload["lines"]
        )
        return RmaRecord(
            number=number,
            state=row[1],
            revision=row[0],
            lines=lines,
            reason=payload.get("reason"),
            tracking_number=payload.get("tracking_number"),
        )

    def find_rmas(self, kind: str, value: str) -> tuple[str, ...]:
        """RMA numbers whose lines declare identifier ``kind`` equal to ``value``.

        ``kind`` is ``rfid_uid`` (canonical UID), ``serial``, or ``tracking`` (the RMA's
        carrier tracking number, not a line's); implements the core's
        ``IdentifierDirectory``.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT number FROM rma_identifiers WHERE kind = ? AND value = ? ORDER BY number",
                (kind, value),
            ).fetchall()
        return tuple(str(r[0]) for r in rows)

    def rma_revision(self) -> int:
        """Highest site revision applied (0 when the cache is empty)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'rma_revision'").fetchone()
        return int(row[0]) if row else 0

    def rma_count(self) -> int:
        """Number of RMAs cached."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM rmas").fetchone()[0])

    # -- disposition policy -----------------------------------------------------------
    def save_policy(self, version: str, payload: str) -> None:
        """Keep the disposition policy pushed by the gateway (JSON), replacing the last one."""
        with self._lock:
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES ('policy', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (json.dumps({"version": version, "payload": payload}),),
            )

    def load_policy(self) -> str | None:
        """The last saved policy's JSON payload, or None when none was ever pushed."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'policy'").fetchone()
        return None if row is None else str(json.loads(row[0])["payload"])

    # -- receipts -------------------------------------------------------------------
    def claimed_units(self, rma_number: str) -> dict[int, int]:
        """Per line number, the highest unit this station claimed (the core's ReceiptBook)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT line_no, MAX(unit) FROM receipts WHERE rma_number = ? GROUP BY line_no",
                (rma_number,),
            ).fetchall()
        return {int(r[0]): int(r[1]) for r in rows}

    def receipts(self, rma_number: str) -> list[UnitReceipt]:
        """Every unit this station claimed on ``rma_number``, by line and unit."""
        with self._lock:
            rows = self._db.execute(
                "SELECT line_no, unit, evidence, verified, identifier FROM receipts "
                "WHERE rma_number = ? ORDER BY line_no, unit",
                (rma_number,),
            ).fetchall()
        record = self.lookup_rma(rma_number)
        lines = record.lines if record is not None else ()
        sku = {ln.number(i): ln.sku for i, ln in enumerate(lines)}
        return [
            UnitReceipt(
                line_no=int(r[0]),
                sku=sku.get(int(r[0]), "?"),
                unit=int(r[1]),
                evidence=Evidence(str(r[2])),
                verified=bool(r[3]),
                identifier=None if r[4] is None else str(r[4]),
            )
            for r in rows
        ]

    # -- outbox ---------------------------------------------------------------------
    def outbox_put(
        self,
        topic: str,
        payload: bytes,
        rma_number: str | None = None,
        receipts: Sequence[UnitReceipt] = (),
    ) -> int:
        """Persist an event before it is sent; returns its outbox id.

        ``receipts`` (the units the event's parcel claims on ``rma_number``) are written
        in the same transaction. A unit already recorded is kept as it was (the core
        never claims one twice; the event is never lost for it) and logged.

        Raises:
            ValueError: receipts without an ``rma_number``.
        """
        if receipts and rma_number is None:
            raise ValueError("receipts need the rma_number they claim units of")
        now = utc_now().isoformat()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.execute(
                "INSERT INTO outbox(topic, payload, created_at) VALUES (?, ?, ?)",
                (topic, payload, now),
            )
            item_id = int(cur.lastrowid or 0)
            for u in receipts:
                done = self._db.execute(
                    "INSERT OR IGNORE INTO receipts(rma_number, line_no, unit, evidence, "
                    "verified, identifier, outbox_id, created_at) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        rma_number,
                        u.line_no,
                        u.unit,
                        u.evidence.value,
                        int(u.verified),
                        u.identifier,
                        item_id,
                        now,
                    ),
                )
                if done.rowcount == 0:
                    log.error(
                        "unit claimed twice",
                        extra={"rma": rma_number, "line_no": u.line_no, "unit": u.unit},
                    )
            return item_id

    def outbox_pending(self, limit: int = 100, after_id: int = 0) -> list[OutboxItem]:
        """Oldest unacknowledged events with id > ``after_id``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxItem(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]

    def outbox_ack(self, item_id: int) -> None:
        """The broker acknowledged the event: drop it from the outbox."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    def outbox_depth(self) -> int:
        """Number of events waiting for acknowledgement."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    # -- dead letters ---------------------------------------------------------------
    def dead_letter(self, topic: str, payload: bytes, error: str) -> None:
        """Keep a payload that could not be applied, with the reason."""
        log.warning("dead letter", extra={"topic": topic, "error": error})
        with self._lock:
            self._db.execute(
                "INSERT INTO dead_letters(topic, payload, error, received_at) VALUES (?,?,?,?)",
                (topic, payload, error, utc_now().isoformat()),
            )

    def dead_letter_count(self) -> int:
        """Number of dead letters kept."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

    def dead_letters(self) -> list[tuple[str, bytes, str]]:
        """All dead letters as (topic, payload, error), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT topic, payload, error FROM dead_letters ORDER BY id"
            ).fetchall()
        return [(str(r[0]), bytes(r[1]), str(r[2])) for r in rows]
