"""The shift report: per shift and station, availability, throughput and quality.

Shifts are ``RS_SHIFTS`` (``HH:MM-HH:MM`` in the shop's time zone; an end at or before the
start ends the next day). For a shift (up to now when it is still running) and a station:

- **availability**: seconds the belt was ``running`` / ``stopped`` (paused, E-stop) /
  ``jammed`` / ``offline`` (no status at all counts as offline), from the station's belt
  state changes (:class:`gateway.models.StationStateChange`, recorded from its statuses);
  ``availability_pct`` = running / elapsed.
- **throughput**: parcels inducted in the shift, per hour of the elapsed shift, against
  ``RS_STATION_RATE_PER_HOUR`` (``throughput_pct``).
- **quality**: no-read share (reason ``no_read``), unconfirmed diverts (mark
  ``divert_unconfirmed``), quarantine share of all parcels in total and by reason.

Percentages are rounded to 0.1; an empty denominator gives 0. The CSV form neutralises
every cell (:mod:`gateway.security.csv_cells`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Station, StationEvent, StationStateChange
from gateway.security import csv_cells
from gateway.settings import Settings

__all__ = [
    "COLUMNS",
    "MODES",
    "ShiftRow",
    "Window",
    "current_shift",
    "shift_csv",
    "shift_report",
    "shift_window",
]

MODES = ("running", "stopped", "jammed", "offline")
COLUMNS = (
    "shift",
    "start",
    "end",
    "station",
    "elapsed_s",
    "running_s",
    "stopped_s",
    "jammed_s",
    "offline_s",
    "availability_pct",
    "parcels",
    "parcels_per_hour",
    "rate_per_hour",
    "throughput_pct",
    "no_read_pct",
    "unconfirmed_diverts",
    "quarantine_pct",
    "quarantine_by_reason",
)


@dataclass(frozen=True)
class Window:
    """One shift: its label (``06:00-14:00``), start and end (UTC)."""

    label: str
    start: datetime
    end: datetime


@dataclass
class ShiftRow:
    """One station's figures for one shift (seconds, counts, percentages 0..100)."""

    shift: str
    start: str
    end: str
    station: str
    elapsed_s: float = 0.0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MODES, 0.0))
    availability_pct: float = 0.0
    parcels: int = 0
    parcels_per_hour: float = 0.0
    rate_per_hour: int = 0
    throughput_pct: float = 0.0
    no_read_pct: float = 0.0
    unconfirmed_diverts: int = 0
    quarantine_pct: float = 0.0
    quarantine_by_reason: dict[str, float] = field(default_factory=dict)

    def as_csv_row(self) -> dict[str, object]:
        """The row as :data:`COLUMNS` (``quarantine_by_reason`` as ``reason=pct;...``)."""
        return {
            "shift": self.shift,
            "start": self.start,
            "end": self.end,
            "station": self.station,
            "elapsed_s": self.elapsed_s,
            **{f"{mode}_s": self.seconds[mode] for mode in MODES},
            "availability_pct": self.availability_pct,
            "parcels": self.parcels,
            "parcels_per_hour": self.parcels_per_hour,
            "rate_per_hour": self.rate_per_hour,
            "throughput_pct": self.throughput_pct,
            "no_read_pct": self.no_read_pct,
            "unconfirmed_diverts": self.unconfirmed_diverts,
            "quarantine_pct": self.quarantine_pct,
            "quarantine_by_reason": ";".join(
                f"{k}={v}" for k, v in sorted(self.quarantine_by_reason.items())
            ),
        }


def _pct(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 1) if whole > 0 else 0.0


def shift_window(settings: Settings, day: date, index: int) -> Window:
    """Shift ``index`` (0-based, of ``settings.shifts``) starting on local ``day``.

    Raises:
        IndexError: no such shift.
    """
    label = settings.shifts[index]
    start_s, _, end_s = label.partition("-")
    zone = settings.zone
    start = datetime.combine(day, time.fromisoformat(start_s), zone)
    end = datetime.combine(day, time.fromisoformat(end_s), zone)
    if end <= start:
        end += timedelta(days=1)
    return Window(label, start.astimezone(UTC), end.astimezone(UTC))


def current_shift(settings: Settings, now: datetime) -> Window:
    """The shift running at ``now`` (the latest started one when shifts leave gaps)."""
    local = now.astimezone(settings.zone).date()
    windows = [
        shift_window(settings, day, i)
        for day in (local - timedelta(days=1), local)
        for i in range(len(settings.shifts))
    ]
    started = [w for w in windows if w.start <= now]
    return max(started, key=lambda w: w.start)


def _mode_seconds(
    session: Session, station: str, start: datetime, end: datetime
) -> dict[str, float]:
    seconds = dict.fromkeys(MODES, 0.0)
    before = session.scalar(
        select(StationStateChange.mode)
        .where(StationStateChange.station == station, StationStateChange.at <= start)
        .order_by(StationStateChange.at.desc(), StationStateChange.id.desc())
        .limit(1)
    )
    changes = session.execute(
        select(StationStateChange.at, StationStateChange.mode)
        .where(
            StationStateChange.station == station,
            StationStateChange.at > start,
            StationStateChange.at < end,
        )
        .order_by(StationStateChange.at, StationStateChange.id)
    ).all()
    mode, since = before or "offline", start
    for at, new_mode in changes:
        seconds[mode] += (at - since).total_seconds()
        mode, since = new_mode, at
    seconds[mode] += (end - since).total_seconds()
    return {k: round(v, 1) for k, v in seconds.items()}


def shift_report(
    session: Session,
    settings: Settings,
    window: Window,
    now: datetime,
    sites: list[str] | None = None,
) -> list[ShiftRow]:
    """Every known station's figures for ``window`` (up to ``now`` while it runs), by id.

    ``sites``: only the stations of these sites (None: every station).
    """
    end = min(window.end, max(now, window.start))
    elapsed = (end - window.start).total_seconds()
    rows = []
    stations = select(Station.id).order_by(Station.id)
    if sites is not None:
        stations = stations.where(Station.site.in_(sites))
    for station in session.scalars(stations):
        row = ShiftRow(window.label, window.start.isoformat(), window.end.isoformat(), station)
        row.elapsed_s = round(elapsed, 1)
        row.seconds = _mode_seconds(session, station, window.start, end)
        row.availability_pct = _pct(row.seconds["running"], elapsed)
        events = session.execute(
            select(StationEvent.lane, StationEvent.reason, StationEvent.raw).where(
                StationEvent.station == station,
                StationEvent.inducted_at >= window.start,
                StationEvent.inducted_at < end,
            )
        ).all()
        row.parcels = len(events)
        row.rate_per_hour = settings.station_rate_per_hour
        per_hour = row.parcels * 3600.0 / elapsed if elapsed > 0 else 0.0
        row.parcels_per_hour = round(per_hour, 1)
        row.throughput_pct = _pct(per_hour, row.rate_per_hour)
        row.no_read_pct = _pct(sum(r.reason == "no_read" for r in events), row.parcels)
        row.unconfirmed_diverts = sum(
            "divert_unconfirmed" in ((r.raw or {}).get("marks") or ()) for r in events
        )
        quarantined = Counter(r.reason for r in events if r.lane == "quarantine")
        row.quarantine_pct = _pct(sum(quarantined.values()), row.parcels)
        row.quarantine_by_reason = {k: _pct(v, row.parcels) for k, v in sorted(quarantined.items())}
        rows.append(row)
    return rows


def shift_csv(rows: list[ShiftRow]) -> str:
    """The report as CSV (:data:`COLUMNS`), every cell neutralised against formulas."""
    return csv_cells.to_csv(COLUMNS, (r.as_csv_row() for r in rows))
