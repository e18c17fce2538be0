"""Read models of the status page (issue 7): stations, lanes, recent parcels, quarantine, search.

Every function returns plain dicts ready for the templates, computed at ``now`` (UTC).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gateway.models import Rma, RmaLineRecord, Station, StationEvent
from gateway.services.photos import is_photo_hash, photo_url
from gateway.services.revisions import head_revision

STATE_LABELS = {"online": "Online", "offline": "Offline", "degraded": "Degraded"}
CHART_HOURS = 8
RATE_WINDOW = timedelta(minutes=10)


def fmt_time(value: datetime | None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, or ``never``."""
    return "never" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def station_rows(session: Session, sites: list[str] | None = None) -> list[dict[str, Any]]:
    """Each station: state (and which devices are down), belt, last seen, sync lag, versions.

    Only the stations of ``sites`` (None: of every site); each row names its ``site``.

    Also the system clock steps the station saw (``clock_steps``, ``last_clock_step_s``).

    The sync lag is the gateway's own view (its site's head revision minus the revision the
    station last reported applied), so a station that stopped reporting still shows behind.
    """
    heads: dict[str, int] = {}
    rows = []
    stmt = select(Station).order_by(Station.id)
    if sites is not None:
        stmt = stmt.where(Station.site.in_(sites))
    for s in session.scalars(stmt):
        if s.site not in heads:
            heads[s.site] = head_revision(session, s.site)
        head = heads[s.site]
        health = s.health
        down = sorted(name for name, h in health.devices.items() if h.state != "ok")
        belt = health.belt_running
        rows.append(
            {
                "id": s.id,
                "site": s.site,
                "state": s.state,
                "state_label": STATE_LABELS.get(s.state, s.state),
                "devices_down": down,
                "belt": "unknown"
                if belt is None or s.state == "offline"
                else ("estop" if health.estop_engaged else "running" if belt else "stopped"),
                "last_seen": fmt_time(s.last_seen),
                "last_seen_iso": s.last_seen.isoformat() if s.last_seen else "",
                "sync_lag": max(0, head - s.rma_revision),
                "rma_revision": s.rma_revision,
                "policy_version": (health.core.policy_version if health.core else "") or "unknown",
                "clock_steps": float(health.clock.steps) if health.clock else 0.0,
                "last_clock_step_s": health.clock.last_step_s if health.clock else 0.0,
                "software_version": s.software_version or "unknown",
            }
        )
    return rows


def _full_lanes(session: Session) -> set[str]:
    full: set[str] = set()
    for s in session.scalars(select(Station).where(Station.state != "offline")):
        if (core := s.health.core) is not None:
            full.update(core.lanes_full)
    return full


def lane_rows(
    session: Session, now: datetime, tz: ZoneInfo, *, sites: list[str] | None = None
) -> dict[str, Any]:
    """Per lane: parcels today (shop calendar) and last hour, rate, lane full, hourly series.

    Counts only the parcels of ``sites`` (None: every site).

    ``rate_per_h`` extrapolates the last 10 minutes to an hour. ``series`` holds parcels per
    hour for the last :data:`CHART_HOURS` hours (oldest first; the last bucket is the
    current, partial hour); ``hours`` labels them (UTC hour).
    """
    local = now.astimezone(tz)
    today = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    top = now.replace(minute=0, second=0, microsecond=0)
    first = top - timedelta(hours=CHART_HOURS - 1)
    since = min(today, first, now - timedelta(hours=1))
    where = [StationEvent.received_at >= since]
    if sites is not None:
        where.append(StationEvent.site.in_(sites))
    stamps = session.execute(
        select(StationEvent.lane, StationEvent.received_at).where(*where)
    ).all()
    lanes = sorted({lane for lane, _ in stamps} | set(_all_lanes(session)))
    full = _full_lanes(session)
    today_n: Counter[str] = Counter()
    hour_n: Counter[str] = Counter()
    rate_n: Counter[str] = Counter()
    series = {lane: [0] * CHART_HOURS for lane in lanes}
    for lane, at in stamps:
        if at >= today:
            today_n[lane] += 1
        if at > now - timedelta(hours=1):
            hour_n[lane] += 1
        if at > now - RATE_WINDOW:
            rate_n[lane] += 1
        index = int((at - first).total_seconds() // 3600)
        if 0 <= index < CHART_HOURS:
            series[lane][index] += 1
    scale = timedelta(hours=1) / RATE_WINDOW
    rows = [
        {
            "lane": lane,
            "today": today_n[lane],
            "last_hour": hour_n[lane],
            "rate_per_h": round(rate_n[lane] * scale),
            "full": lane in full,
            "series": series[lane],
        }
        for lane in lanes
    ]
    hours = [(first + timedelta(hours=i)).strftime("%H:00") for i in range(CHART_HOURS)]
    return {"rows": rows, "hours": hours, "total_today": sum(today_n.values())}


def _all_lanes(session: Session) -> list[str]:
    lanes: set[str] = set()
    for station in session.scalars(select(Station)):
        if (core := station.health.core) is not None:
            lanes.update(core.lanes)
    return sorted(lanes)


def _skus(session: Session, numbers: set[str]) -> dict[str, str]:
    if not numbers:
        return {}
    rows = session.execute(
        select(Rma.number, RmaLineRecord.sku)
        .join(RmaLineRecord, RmaLineRecord.rma_id == Rma.id)
        .where(Rma.number.in_(numbers))
        .order_by(Rma.number, RmaLineRecord.line_no)
    ).all()
    found: dict[str, list[str]] = {}
    for number, sku in rows:
        found.setdefault(number, []).append(sku)
    return {n: ", ".join(s) for n, s in found.items()}


def parcel_view(event: StationEvent, skus: dict[str, str]) -> dict[str, Any]:
    """One event as a table row; ``photo`` links the event's photo evidence when it has one."""
    raw = event.raw or {}
    ref = raw.get("photo")
    sha = ref.get("sha256") if isinstance(ref, dict) else None
    photo = photo_url(sha) if isinstance(sha, str) and is_photo_hash(sha) else None
    return {
        "id": event.id,
        "time": fmt_time(event.received_at),
        "time_iso": event.received_at.isoformat(),
        "station": event.station,
        "parcel_id": event.parcel_id,
        "rma": event.rma_number or "",
        "sku": skus.get(event.rma_number or "", ""),
        "lane": event.lane,
        "grade": raw.get("grade") or event.disposition,
        "reason": event.reason,
        "explanation": raw.get("explanation") or "",
        "policy_version": raw.get("policy_version") or "",
        "marks": list(raw.get("marks") or []),
        "photo": photo,
    }


def recent_parcels(
    session: Session, limit: int = 20, *, sites: list[str] | None = None
) -> list[dict[str, Any]]:
    """The newest parcel events (of ``sites``; None: every site), newest first."""
    stmt = select(StationEvent).order_by(StationEvent.received_at.desc(), StationEvent.id.desc())
    if sites is not None:
        stmt = stmt.where(StationEvent.site.in_(sites))
    events = list(session.scalars(stmt.limit(limit)))
    skus = _skus(session, {e.rma_number for e in events if e.rma_number})
    return [parcel_view(e, skus) for e in events]


def quarantine_queue(session: Session, *, sites: list[str] | None = None) -> list[dict[str, Any]]:
    """RMAs waiting for a lead's decision, oldest first, with the station's last reason.

    Only RMAs of ``sites`` (None: of every site).

    Each row also lists, per RMA line, its units waiting for a lead (``waiting``): unit
    number, the station's grade, the evidence, why it waits, where it is booked, and the
    parcel photo's URL; and the RMA's ``revision`` (the forms send it back, so a decision
    made on a page older than the RMA's last change is refused).
    """
    stmt = select(Rma).where(Rma.awaiting_decision.is_(True))
    if sites is not None:
        stmt = stmt.where(Rma.site.in_(sites))
    rmas = list(session.scalars(stmt.order_by(Rma.updated_at).limit(200)))
    last: dict[str, StationEvent] = {}
    if rmas:
        for e in session.scalars(
            select(StationEvent)
            .where(StationEvent.rma_number.in_([r.number for r in rmas]))
            .order_by(StationEvent.id)
        ):
            last[e.rma_number or ""] = e
    rows = []
    for r in rmas:
        event = last.get(r.number)
        rows.append(
            {
                "number": r.number,
                "order_ref": r.order_ref,
                "customer_reason": r.reason,
                "resolution": r.resolution,
                "skus": ", ".join(line.sku for line in r.lines),
                "units": sum(line.received_quantity for line in r.lines),
                "station_reason": event.reason if event else "desk receipt",
                "explanation": (event.raw or {}).get("explanation") or "" if event else "",
                "since": fmt_time(r.updated_at),
                "revision": r.revision,
                "waiting": [
                    {
                        "line_no": line.line_no,
                        "sku": line.sku,
                        "unit_no": u.unit_no,
                        "grade": u.grade or "",
                        "evidence": u.evidence or "none",
                        "identifier": u.identifier or "",
                        "reason": u.reason,
                        "location": u.location or "",
                        "photo": f"/api/v1/photos/{u.photo_sha256}" if u.photo_sha256 else "",
                    }
                    for line in r.lines
                    for u in line.units
                    if u.state == "awaiting"
                ],
            }
        )
    return rows


def unidentified_quarantine(
    session: Session, now: datetime, limit: int = 20, *, sites: list[str] | None = None
) -> list[dict[str, Any]]:
    """Parcels of the last 24 h that went to quarantine without an RMA, newest first.

    They need a person at the quarantine lane (no-read, unknown label); nothing to credit.
    Only those of ``sites`` (None: of every site).
    """
    where = [
        StationEvent.lane == "quarantine",
        StationEvent.rma_number.is_(None),
        StationEvent.received_at >= now - timedelta(hours=24),
    ]
    if sites is not None:
        where.append(StationEvent.site.in_(sites))
    events = session.scalars(
        select(StationEvent)
        .where(*where)
        .order_by(StationEvent.received_at.desc(), StationEvent.id.desc())
        .limit(limit)
    )
    return [parcel_view(e, {}) | {"barcode": e.barcode or ""} for e in events]


def like_literal(text: str) -> str:
    """``text`` with the LIKE wildcards ``%`` and ``_`` (and the escape ``\\``) escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_rmas(session: Session, query: str, limit: int = 20) -> list[Rma]:
    """RMAs whose number, order reference or a line's serial matches ``query`` (exact first).

    Case-insensitive on the number; a prefix of at least 3 characters matches too. The
    text is matched literally: ``%``, ``_`` and ``\\`` in it are escaped, not wildcards.
    """
    q = query.strip()
    if not q:
        return []
    serial_hits = select(RmaLineRecord.rma_id).where(RmaLineRecord.serial == q)
    conditions = [
        Rma.number == q.upper(),
        Rma.number == q,
        Rma.order_ref == q,
        Rma.id.in_(serial_hits),
    ]
    if len(q) >= 3:
        conditions.append(Rma.number.like(f"{like_literal(q.upper())}%", escape="\\"))
    stmt = select(Rma).where(or_(*conditions)).order_by(Rma.number).limit(limit)
    return list(session.scalars(stmt))


def rma_events(session: Session, number: str) -> list[dict[str, Any]]:
    """The parcel events of one RMA, oldest first."""
    events = session.scalars(
        select(StationEvent).where(StationEvent.rma_number == number).order_by(StationEvent.id)
    )
    skus = _skus(session, {number})
    return [parcel_view(e, skus) for e in events]
