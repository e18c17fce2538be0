"""The station's OPC UA server with asyncua's own client (issue 21 item 3): encrypted and
authenticated by certificate, counters read during a run, the belt resumed after a jam."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.uaerrors import BadRequestNotAllowed, UaError

from edge.daemon import StationDaemon
from edge.drivers.framing import ScanFrame
from edge.opcua import NAMESPACE, self_signed_certificate
from edge.station.inputs import EyeEdge
from simulator.hw.modbus_plc import free_port
from simulator.testing import (
    announcement,
    label_trusting_policy_payload,
    station_config,
)

CLIENT_URI = "urn:returns-sorter:test-scada"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    d = tmp_path_factory.mktemp("pki")
    return {
        "server": self_signed_certificate(d, "server", "urn:returns-sorter:station", server=True),
        "client": self_signed_certificate(d, "client", CLIENT_URI, server=False),
        "stranger": self_signed_certificate(d, "stranger", CLIENT_URI, server=False),
    }


@pytest.fixture
def station(
    tmp_path: Path, scanner_pty: str, certs: dict[str, tuple[Path, Path]]
) -> Iterator[tuple[StationDaemon, str]]:
    url = f"opc.tcp://127.0.0.1:{free_port()}/returns-sorter/"
    cert, key = certs["server"]
    cfg = station_config(
        tmp_path,
        scanner_pty,
        belt={
            "speed_mm_s": 1000,
            "scan_pos_mm": 400,
            "scan_tol_mm": 150,
            "length_mm": 2000,
            "jam_ms": 400,
        },
        lanes=[{"name": "restock", "disposition": "restock", "pos_mm": 1500, "gate_pin": 17}],
        opcua={
            "endpoint": url,
            "certificate": str(cert),
            "private_key": str(key),
            "trusted_clients": [str(certs["client"][0])],
            "update_ms": 20,
        },
    )
    daemon = StationDaemon(cfg)
    daemon.store.apply_announcement(announcement("RMA-000123"))
    daemon.apply_policy(label_trusting_policy_payload())  # label-only parcels
    daemon.start()
    try:
        yield daemon, url
    finally:
        daemon.stop()


async def client_for(url: str, cert: Path, key: Path, server_cert: Path) -> Client:
    client = Client(url, timeout=10)
    client.application_uri = CLIENT_URI
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        certificate=str(cert),
        private_key=str(key),
        server_certificate=str(server_cert),
        mode=ua.MessageSecurityMode.SignAndEncrypt,
    )
    await client.load_client_certificate(str(cert))  # the X.509 user identity
    await client.load_private_key(str(key))
    return client


async def read(client: Client, *path: str) -> Any:
    idx = await client.get_namespace_index(NAMESPACE)
    node = await client.nodes.objects.get_child([f"{idx}:{p}" for p in ("Station", *path)])
    return await node.read_value()


async def call(client: Client, method: str, *args: object) -> Any:
    idx = await client.get_namespace_index(NAMESPACE)
    station = await client.nodes.objects.get_child([f"{idx}:Station"])
    return await station.call_method(f"{idx}:{method}", *args)


@pytest.mark.realtime  # parcels on a real-time belt: run one at a time (Makefile)
def test_counters_during_a_run_and_resume_after_a_jam(
    station: tuple[StationDaemon, str], certs: dict[str, tuple[Path, Path]]
) -> None:
    daemon, url = station

    async def scada() -> None:
        client = await client_for(url, *certs["client"], certs["server"][0])
        async with client:
            assert await read(client, "Lanes", "restock", "Count") == 0
            assert await read(client, "Devices", "gate.restock") == "ok"
            # a run: one parcel for restock, one unknown (300 mm long, label read mid-tunnel)
            for code in ("RMA-000123", "RMA-999999"):
                daemon.submit(EyeEdge(daemon.clock(), True))
                await asyncio.sleep(0.3)
                daemon.submit(EyeEdge(daemon.clock(), False))
                await asyncio.sleep(0.25)
                daemon.submit(ScanFrame(code, None, daemon.clock(), False))
            assert await read(client, "OnBelt") == 2
            while await read(client, "Lanes", "quarantine", "Count") < 1:
                await asyncio.sleep(0.02)
            assert await read(client, "Lanes", "restock", "Count") == 1
            assert await read(client, "LastDecisions") == [
                "1 restock matched",
                "2 quarantine unknown_rma",
            ]
            # a jam: the photo-eye blocked for longer than jam_ms
            daemon.submit(EyeEdge(daemon.clock(), True))
            while not await read(client, "Jammed"):
                await asyncio.sleep(0.02)
            assert await read(client, "BeltRunning") is False
            assert await read(client, "Alarms") == ["jam"]
            daemon.submit(EyeEdge(daemon.clock(), False))  # the operator cleared it
            assert await call(client, "Resume") == "resumed"
            while await read(client, "Jammed"):
                await asyncio.sleep(0.02)
            assert await read(client, "BeltRunning") is True
            assert await read(client, "Alarms") == []
            # the same refusals as the MQTT commands
            with pytest.raises(BadRequestNotAllowed):
                await call(client, "GateTest", "restock", 300.0)
            assert await read(client, "LastRefusal") == (
                "GateTest refused: lane restock has no divert-confirm sensor"
            )
            # Pause is the station's pause command: the belt stops until a run command
            assert await call(client, "Pause") == "paused"
            while await read(client, "BeltRunning"):
                await asyncio.sleep(0.02)

    asyncio.run(scada())
    assert daemon.opcua.refusals == 1
    assert not daemon.belt_running


def test_anonymous_and_untrusted_clients_are_refused(
    station: tuple[StationDaemon, str], certs: dict[str, tuple[Path, Path]]
) -> None:
    _, url = station

    async def attempts() -> list[str]:
        refused = []
        anonymous = Client(url, timeout=5)
        try:
            await anonymous.connect()  # no security: no such endpoint
            await anonymous.disconnect()
        except (UaError, OSError, TimeoutError) as exc:
            refused.append(type(exc).__name__)
        stranger = await client_for(url, *certs["stranger"], certs["server"][0])
        try:
            await stranger.connect()
            await stranger.disconnect()
        except (UaError, OSError, TimeoutError) as exc:
            refused.append(type(exc).__name__)
        return refused

    # no endpoint without security; an encrypted channel but an unknown user certificate
    assert asyncio.run(attempts()) == ["UaError", "BadUserAccessDenied"]


def test_a_server_that_cannot_start_leaves_the_station_sorting_degraded(
    tmp_path: Path, scanner_pty: str
) -> None:
    missing = tmp_path / "missing.der"
    cfg = station_config(
        tmp_path,
        scanner_pty,
        opcua={
            "endpoint": f"opc.tcp://127.0.0.1:{free_port()}/rs/",
            "certificate": str(missing),
            "private_key": str(tmp_path / "missing.pem"),
        },
    )
    daemon = StationDaemon(cfg)
    daemon.start()
    try:
        health = daemon.devices.health["opcua"]
        assert (health.state, health.backend) == ("failed", "asyncua")
        assert daemon.status()["degraded"] is True
        assert daemon.alive()
    finally:
        daemon.stop()
