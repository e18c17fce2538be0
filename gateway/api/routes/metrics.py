"""``/metrics``: the gateway's Prometheus endpoint (text exposition format).

Read from the database at scrape time (so every replica reports the same line): parcels
by station, lane and reason, station state and sync lag, open alarms and awaiting
decisions; the ingest latency histogram (station induction to gateway receipt) over the
last hour; and this replica's MQTT bridge counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from gateway.api.deps import Caller
from gateway.models import Alarm, Rma, Station, StationEvent, utcnow
from gateway.services.quotas import DROPPED

router = APIRouter(tags=["metrics"])
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class GatewayCollector(Collector):
    """Collects the gateway's metrics from its database and bridge on each scrape."""

    def __init__(self, session: Session, bridge_status: dict[str, object]) -> None:
        self._session = session
        self._bridge = bridge_status

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family."""
        s = self._session
        parcels = CounterMetricFamily(
            "rs_parcels",
            "Parcels recorded, by station, lane and reason",
            labels=["station", "lane", "reason"],
        )
        rows = s.execute(
            select(
                StationEvent.station, StationEvent.lane, StationEvent.reason, func.count()
            ).group_by(StationEvent.station, StationEvent.lane, StationEvent.reason)
        ).all()
        for station, lane, reason, n in rows:
            parcels.add_metric([station, lane, reason], float(n))
        yield parcels
        up = GaugeMetricFamily(
            "rs_station_state", "1 for the station's current state", labels=["station", "state"]
        )
        lag = GaugeMetricFamily(
            "rs_station_sync_lag", "RMA revisions not yet applied", labels=["station"]
        )
        outbox = GaugeMetricFamily(
            "rs_station_outbox_depth", "Events not yet acknowledged", labels=["station"]
        )
        for st in s.scalars(select(Station)):
            for state in ("online", "degraded", "offline"):
                up.add_metric([st.id, state], 1.0 if st.state == state else 0.0)
            if (link := st.health.link) is not None:
                lag.add_metric([st.id], float(link.sync_lag))
                outbox.add_metric([st.id], float(link.outbox_depth))
        yield up
        yield lag
        yield outbox
        alarms = GaugeMetricFamily("rs_alarms_open", "Open alarms by kind", labels=["kind"])
        for kind, n in s.execute(
            select(Alarm.kind, func.count())
            .where(or_(Alarm.cleared_at.is_(None), Alarm.acknowledged_at.is_(None)))
            .group_by(Alarm.kind)
        ):
            alarms.add_metric([kind], float(n))
        yield alarms
        dropped = CounterMetricFamily(
            "rs_quota_dropped",
            "Untrusted input dropped or refused by a per-station quota, by store",
            labels=["store"],
        )
        for store in ("dead_letters", "alarms", "orphan_photos", "command_replies"):
            dropped.add_metric([store], float(DROPPED[store]))
        yield dropped
        waiting = s.scalar(select(func.count()).where(Rma.awaiting_decision.is_(True))) or 0
        yield GaugeMetricFamily(
            "rs_rmas_awaiting_decision", "Quarantined returns waiting for a lead", value=waiting
        )
        yield self._latency()
        bridge = CounterMetricFamily(
            "rs_gateway_mqtt", "MQTT bridge counters of this replica", labels=["counter"]
        )
        for name, value in sorted(self._bridge.items()):
            if isinstance(value, int) and not isinstance(value, bool) and name != "ingest_backlog":
                bridge.add_metric([name], float(value))
        yield bridge
        yield GaugeMetricFamily(
            "rs_gateway_ingest_backlog",
            "MQTT messages waiting for ingest",
            value=float(self._bridge.get("ingest_backlog", 0) or 0),  # type: ignore[arg-type]
        )
        yield GaugeMetricFamily(
            "rs_gateway_ingest_lag_seconds",
            "How long the oldest event of the batch being ingested has waited (0 between "
            "batches); background deliveries give way while it is over 0.5 s",
            value=float(self._bridge.get("ingest_lag_ms", 0) or 0) / 1000.0,  # type: ignore[arg-type]
        )

    def _latency(self) -> Metric:
        since = utcnow() - timedelta(hours=1)
        pairs = self._session.execute(
            select(StationEvent.inducted_at, StationEvent.received_at).where(
                StationEvent.received_at >= since
            )
        ).all()
        values = [max(0.0, (r - i).total_seconds()) for i, r in pairs]
        buckets = [(str(b), float(sum(1 for v in values if v <= b))) for b in LATENCY_BUCKETS_S] + [
            ("+Inf", float(len(values)))
        ]
        return HistogramMetricFamily(
            "rs_event_latency_seconds",
            "Induction at the station to receipt at the gateway, events of the last hour",
            buckets=buckets,
            sum_value=sum(values),
        )


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, _who: Caller) -> Response:
    """Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    with request.app.state.db.session() as session:
        registry.register(GatewayCollector(session, request.app.state.bridge.status()))
        body = generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
