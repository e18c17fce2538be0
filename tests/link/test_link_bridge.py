"""Many sites: a site broker bridged to a central broker with the shipped bridge config."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from edge.link import StationLink
from edge.store import StationStore
from gateway.db import Database
from gateway.models import StationEvent
from gateway.mqtt_bridge import MqttBridge
from gateway.schemas import RmaDraft
from gateway.services.reasons import seed_reasons
from gateway.services.revisions import ensure_site
from gateway.services.rmas import create_rma
from gateway.settings import Settings
from simulator.procs import free_port
from simulator.testing import wait_until
from tests.link.conftest import HARDWARE, ConfiguredBroker

pytestmark = pytest.mark.broker

SITE = "site7"


def _passwd(path: Path, users: dict[str, str]) -> None:
    for i, (user, password) in enumerate(users.items()):
        flags = ["-c"] if i == 0 else []
        cmd = ["mosquitto_passwd", *flags, "-b", str(path), user, password]
        subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture
def brokers(tmp_path: Path, dev_certs: Path) -> Iterator[tuple[ConfiguredBroker, ...]]:
    root_user = "user root\n" if os.geteuid() == 0 else ""
    central_dir = tmp_path / "central"
    central_dir.mkdir()
    _passwd(central_dir / "passwd", {"gateway": "gw", f"bridge-{SITE}": "br"})
    (central_dir / "acl").write_text(
        f"user gateway\ntopic readwrite rs/v1/#\n\nuser bridge-{SITE}\n"
        f"topic readwrite rs/v1/{SITE}/#\n"
    )
    central_plain, central_tls = free_port(), free_port()
    central = ConfiguredBroker(
        central_dir / "run",
        "per_listener_settings false\nallow_anonymous false\n"
        f"password_file {central_dir / 'passwd'}\nacl_file {central_dir / 'acl'}\n"
        f"persistence false\nmax_queued_messages 100000\n{root_user}"
        f"listener {central_plain} 127.0.0.1\n"
        f"listener {central_tls} 127.0.0.1\ncafile {dev_certs / 'ca.crt'}\n"
        f"certfile {dev_certs / 'broker.crt'}\nkeyfile {dev_certs / 'broker.key'}\n",
        central_plain,
    )
    bridge_conf = (HARDWARE / "bridge-site-to-central.conf").read_text()
    for old, new in {
        "SITE_ID": SITE,
        "CENTRAL_HOST:8883": f"127.0.0.1:{central_tls}",
        "CHANGE_ME": "br",
        "/etc/mosquitto/certs/central-ca.crt": str(dev_certs / "ca.crt"),
    }.items():
        assert old in bridge_conf, f"shipped bridge config no longer has {old!r}"
        bridge_conf = bridge_conf.replace(old, new)
    site_port = free_port()
    site = ConfiguredBroker(
        tmp_path / "site",
        f"listener {site_port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {tmp_path / 'site'}/\n{root_user}{bridge_conf}",
        site_port,
    )
    central.start()
    site.start()
    yield central, site
    site.stop()
    central.stop()


def test_station_on_a_site_broker_talks_to_a_gateway_on_the_central_broker(
    brokers: tuple[ConfiguredBroker, ConfiguredBroker], tmp_path: Path
) -> None:
    central, site = brokers
    db = Database(f"sqlite:///{tmp_path / 'gw.db'}")
    db.create_all()
    with db.session() as s:
        ensure_site(s, SITE)
        seed_reasons(s)
        for i in range(1, 31):
            create_rma(
                s,
                Settings(site=SITE),
                RmaDraft(
                    number=f"R{i}",
                    order_ref="O",
                    reason="damaged",
                    resolution="refund",
                    lines=[{"sku": "A", "quantity": 1}],
                ),
            )
    gateway = MqttBridge(
        host="127.0.0.1",
        port=central.port,
        site=SITE,
        sessions=db.sessions,
        username="gateway",
        password="gw",
    )
    gateway.start()
    link = StationLink(
        site=SITE,
        station="st1",
        host="127.0.0.1",
        port=site.port,
        store=StationStore(tmp_path / "st1.db"),
        sync_retry_s=2.0,  # the first request may leave before the bridge is up
    )
    try:
        assert gateway.wait_ready(10)
        link.start()
        wait_until(lambda: link.in_sync, timeout_s=30, what="catch-up across the bridge")
        assert link.store.rma_count() == 30 and link.store.rma_revision() == 30
        link.publish_event(
            b'{"kind":"parcel","event_id":"bridged-0001","station":"st1","parcel_id":1,'
            b'"inducted_at":"2026-01-01T00:00:00Z","length_mm":300,"lane":"quarantine",'
            b'"disposition":"quarantine","reason":"no_read","diverted":false}'
        )

        def events() -> Any:
            with db.session() as s:
                return s.scalar(select(func.count(StationEvent.id)))

        wait_until(lambda: events() == 1, timeout_s=20, what="event at the central gateway")
        with db.session() as s:
            assert s.scalar(select(StationEvent.event_id)) == "bridged-0001"
    finally:
        link.stop()
        gateway.stop()
        db.dispose()
