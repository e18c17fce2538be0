"""Link test fixtures: station links, gateway bridges and probes on real brokers."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.link import StationLink
from edge.store import StationStore
from gateway.db import Database
from gateway.mqtt_bridge import MqttBridge
from gateway.services.reasons import seed_reasons
from gateway.services.revisions import ensure_site
from protocol import RmaAnnouncement, RmaLine
from simulator.procs import MosquittoBroker, mosquitto_binary
from simulator.testing import start_bridge, wait_until
from tests.gateway.conftest import make_probe  # noqa: F401  (the same fixture here)


def ann(number: str, revision: int, state: str = "authorized", lines: int = 1) -> RmaAnnouncement:
    return RmaAnnouncement(
        number=number,
        revision=revision,
        order_ref=f"O-{number}",
        reason="size",
        resolution="refund",
        state=state,
        lines=tuple(RmaLine(line_no=i, sku=f"SKU-{i}", quantity=1) for i in range(1, lines + 1)),
    )


@pytest.fixture
def site() -> str:
    return f"s{uuid.uuid4().hex[:10]}"


@pytest.fixture
def wait() -> Callable[..., Any]:
    return wait_until


@pytest.fixture
def make_link(tmp_path: Path, site: str, mqtt_broker: Any) -> Iterator[Callable[..., StationLink]]:
    """Factory: ``make_link(station="st1", port=None, store=None, **kwargs)``, not started."""
    made: list[StationLink] = []

    def factory(
        station: str = "st1",
        *,
        port: int | None = None,
        store: StationStore | None = None,
        **kwargs: Any,
    ) -> StationLink:
        link = StationLink(
            site=kwargs.pop("site", site),
            station=station,
            host="127.0.0.1",
            port=port or mqtt_broker.port,
            store=store or StationStore(tmp_path / f"{station}-{uuid.uuid4().hex[:6]}.db"),
            **kwargs,
        )
        made.append(link)
        return link

    yield factory
    for link in made:
        link.stop(publish_offline=False)


@pytest.fixture
def gateway_db(tmp_path: Path, site: str) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'gateway.db'}")
    database.create_all()
    with database.session() as s:
        ensure_site(s, site)
        seed_reasons(s)
        s.commit()
    yield database
    database.dispose()


@pytest.fixture
def make_bridge(
    site: str, mqtt_broker: Any, gateway_db: Database
) -> Iterator[Callable[..., MqttBridge]]:
    """Factory of started gateway bridges on the test broker; stopped at teardown."""
    made: list[MqttBridge] = []

    def factory(**kwargs: Any) -> MqttBridge:
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("port", mqtt_broker.port)
        kwargs.setdefault("site", site)
        kwargs.setdefault("sessions", gateway_db.sessions)
        bridge = start_bridge(**kwargs)
        made.append(bridge)
        return bridge

    yield factory
    for bridge in made:
        bridge.stop()


HARDWARE = Path(__file__).resolve().parents[2] / "hardware"
SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


class ConfiguredBroker(MosquittoBroker):
    """A test Mosquitto running a given config text (ports and paths already rendered)."""

    def __init__(self, workdir: Path, conf: str, port: int) -> None:
        super().__init__(workdir, port=port)
        self.conf = conf

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "mosquitto.conf"
        path.write_text(self.conf, encoding="utf-8")
        log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(path)], stdout=log, stderr=subprocess.STDOUT
        )
        self._wait_port(self.port, 10)

    def log_text(self) -> str:
        return (self.workdir / "mosquitto.log").read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates made by the shipped dev-CA script (broker for 127.0.0.1, station st1)."""
    out = tmp_path_factory.mktemp("certs")
    subprocess.run(
        ["bash", str(SCRIPTS / "make-dev-certs.sh"), str(out)],
        check=True,
        env={**os.environ, "STATIONS": "st1"},
        capture_output=True,
    )
    return out
