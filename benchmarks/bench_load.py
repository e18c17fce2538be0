"""Ingest at scale (issue 17): 3 site brokers bridged to a central one, 20 stations, 2 replicas.

:func:`simulator.load.run_load` on a fresh PostgreSQL database (``RS_TEST_PG_URL``,
default ``postgresql://postgres@127.0.0.1:5432/postgres``; without a server the module
reports nothing): a fixed number of parcel events (one verified unit each, 2 % of them
published twice), checked for nothing lost, nothing doubled, every credit and its webhook
once. The baseline of the rate is the raw paho QoS 1 receive rate of a plain subscriber of
the central broker, from the same publishers through the same bridges, in the same run;
the baseline of the p99 commit latency is its p50.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from benchmarks import Figure
from benchmarks.bench_gateway import _pg
from simulator.load import run_load

N_EVENTS = 3000


def run() -> list[Figure]:
    """Events ingested + credited/s beside raw paho QoS 1 receives/s; p99 commit latency."""
    logging.getLogger("gateway").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, _pg() as url:
        if url is None:
            return []
        r = run_load(Path(tmp), url, events=N_EVENTS)
    name = f"load 3 sites/20 st/2 replicas pg ({r.events} ev)"
    return [
        Figure(
            f"{name}: ingested + credited", r.events_per_s, "1/s", "raw paho QoS 1 rx", r.raw_per_s
        ),
        Figure(
            f"{name}: p99 commit latency",
            r.commit_p99_ms,
            "ms",
            "p50 same run",
            r.commit_p50_ms,
            higher_is_better=False,
        ),
        Figure(
            f"{name}: credited and the shop's webhook delivered",
            r.notified_per_s,
            "1/s",
            "events ingested + credited",
            r.events_per_s,
        ),
        Figure(
            "load pg: RMA creations (service, writer path)",
            r.creations_per_s,
            "1/s",
            "events ingested + credited",
            r.events_per_s,
        ),
    ]
