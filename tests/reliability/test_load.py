"""The load test of issue 17, short: 3 site brokers bridged to a central one, 20 station
publishers, 2 gateway replicas on PostgreSQL, a fixed number of parcel events: nothing
lost, nothing doubled, every credit (and its webhook) once. ``make bench`` runs the long
version (``benchmarks/bench_load.py``) and prints the rates.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.load import run_load
from tests.gateway.conftest import pg_database

pytestmark = [pytest.mark.e2e, pytest.mark.broker]

N_EVENTS = 60


def test_three_sites_twenty_stations_two_replicas_nothing_lost_doubled_or_credited_twice(
    tmp_path: Path,
) -> None:
    with pg_database() as url:
        result = run_load(tmp_path, url, events=N_EVENTS, duplicate_every=20)
    # run_load raised had anything been lost, doubled or credited twice; what it counted:
    assert (result.events, result.duplicates) == (N_EVENTS, 3)
    assert sum(result.per_replica) == N_EVENTS and min(result.per_replica) > 0
