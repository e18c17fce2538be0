"""Station metrics in Prometheus format (issue 7), served by the daemon when asked.

``returns-edge --config station.toml --metrics-port 9108`` serves ``/metrics`` on that port
(off by default; ``--metrics-addr`` sets the listen address, default 127.0.0.1). Parcels
by lane and reason and the decision latency (induction to decision) are counted as parcels
leave the belt; the gate scheduler's lateness per firing is a histogram
(``rs_station_gate_lateness_seconds``); sync lag, outbox depth, device health, belt,
alarms and the reads the core did not take as evidence
(``rs_station_read_problems_total{kind}``: ``ambiguous``, a read whose time of observation
could put it on another parcel or a gap; ``late``, delivered later than its reader's
healthy bound, which also raises ``station_overloaded``; ``orphan``, no parcel; ``bad``,
not an identifier; issue 20) are read from the daemon's ``status()`` at scrape time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
GATE_LATENESS_BUCKETS_S = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16)
"""Gate-fire lateness buckets, s: 0.1 ms .. 160 ms (the default gate margin is 40 ms)."""


class _StatusCollector(Collector):
    def __init__(self, station: str, status: Callable[[], dict[str, object]]) -> None:
        self._station = station
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        link = status.get("link")
        link = link if isinstance(link, dict) else {}
        for name, key, doc in (
            ("rs_station_sync_lag", "sync_lag", "RMA revisions known but not applied"),
            ("rs_station_outbox_depth", "outbox_depth", "Events waiting for the broker's ack"),
        ):
            value = link.get(key)
            if isinstance(value, int | float):
                yield GaugeMetricFamily(name, doc, value=float(value))
        health = GaugeMetricFamily(
            "rs_station_device_up", "1 when the device passed its self-test", labels=["device"]
        )
        devices = status.get("devices")
        for name, h in sorted(devices.items() if isinstance(devices, dict) else []):
            health.add_metric(
                [str(name)], 1.0 if isinstance(h, dict) and h.get("state") == "ok" else 0.0
            )
        yield health
        yield GaugeMetricFamily(
            "rs_station_belt_running",
            "1 while the belt runs",
            value=float(bool(status.get("belt_running"))),
        )
        yield GaugeMetricFamily(
            "rs_station_degraded",
            "1 when a device is down",
            value=float(bool(status.get("degraded"))),
        )
        core = status.get("core")
        counters = core.get("counters") if isinstance(core, dict) else None
        if isinstance(counters, dict):
            problems = CounterMetricFamily(
                "rs_station_read_problems",
                "Reads not taken as evidence, by kind (ambiguous, late, orphan, bad)",
                labels=["kind"],
            )
            for kind in ("ambiguous", "late", "orphan", "bad"):
                value = counters.get(f"{kind}_reads", 0)
                problems.add_metric([kind], float(value) if isinstance(value, int) else 0.0)
            yield problems
        alarms = status.get("alarms")
        yield GaugeMetricFamily(
            "rs_station_alarms_active",
            "Alarms raised and not cleared",
            value=float(len(alarms) if isinstance(alarms, dict) else 0),
        )


class StationMetrics:
    """The station's metrics registry.

    Args:
        station: the station id (only for logs; Prometheus adds the target's labels).
        status: returns the daemon's JSON-able status (with ``link`` merged in).
    """

    def __init__(self, station: str, status: Callable[[], dict[str, object]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.parcels = Counter(
            "rs_station_parcels",
            "Parcels that left the belt, by lane and reason",
            ["lane", "reason"],
            registry=self.registry,
        )
        self.decision_latency = Histogram(
            "rs_station_decision_latency_seconds",
            "Induction to decision, per parcel",
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.gate_lateness = Histogram(
            "rs_station_gate_lateness_seconds",
            "Gate firing time minus its deadline, per firing (opens and closes)",
            buckets=GATE_LATENESS_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(_StatusCollector(station, status))
        self._station = station
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def parcel_exited(self, lane: str, reason: str, latency_ms: float) -> None:
        """Count a parcel and record how long its decision took."""
        self.parcels.labels(lane=lane, reason=reason).inc()
        self.decision_latency.observe(max(0.0, latency_ms) / 1000.0)

    def gate_fired(self, late_ms: float) -> None:
        """Record one gate firing's lateness (ms; the scheduler thread calls it)."""
        self.gate_lateness.observe(max(0.0, late_ms) / 1000.0)

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` over HTTP in a thread; return the bound port (0: a free one)."""
        self._server, self._thread = start_http_server(port, addr=addr, registry=self.registry)
        bound = int(self._server.server_port)
        log.info("metrics served station=%s addr=%s port=%d", self._station, addr, bound)
        return bound

    def close(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
