"""Fixtures of the return-form tests: a live gateway process, a station, Chromium."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.link import StationLink
from edge.store import StationStore
from simulator.procs import GatewayProcess
from tests.returns.support import ADMIN_KEY, CHROMIUM, CHROMIUM_ARGS, LiveGateway


@pytest.fixture(scope="module")
def site() -> str:
    """A fresh site per module (retained messages never leak)."""
    return f"r{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, mqtt_broker: Any, site: str
) -> Iterator[LiveGateway]:
    """A real gateway process on the test broker, with the shop's identity set."""
    env = {
        "RS_SHOP_NAME": "Maison Exemple",
        "RS_SHOP_ADDRESS": "12 rue des Lilas\\n75011 Paris",
        "RS_FORM_RATE_LIMIT_IP": "200/minute",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    proc = GatewayProcess(tmp_path_factory.mktemp("gateway"), mqtt_broker.port, site)
    try:
        proc.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    live = LiveGateway(proc)
    try:
        yield live
    finally:
        live.api.close()
        proc.stop()


@pytest.fixture(scope="module")
def station(
    tmp_path_factory: pytest.TempPathFactory, mqtt_broker: Any, site: str, gateway: LiveGateway
) -> Iterator[StationLink]:
    """A real station link and RMA cache on the same site, started after the gateway."""
    link = StationLink(
        site=site,
        station="st1",
        host=mqtt_broker.host,
        port=mqtt_broker.port,
        store=StationStore(tmp_path_factory.mktemp("station") / "st1.db"),
        sync_retry_s=2.0,
    )
    link.start()
    try:
        yield link
    finally:
        link.stop()
        link.store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
        pytest.skip("needs Debian's chromium (scripts/ensure-system-deps.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, gateway: LiveGateway) -> Iterator[Any]:
    """A fresh browser context (no cookies) in English, on a phone-sized screen."""
    context = browser.new_context(
        base_url=gateway.url,
        locale="en-GB",
        viewport={"width": 390, "height": 844},
        accept_downloads=True,
    )
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def make_client(tmp_path: Path, mqtt_broker: Any) -> Iterator[Any]:
    """Factory of in-process gateways (TestClient) with settings overrides."""
    from fastapi.testclient import TestClient

    from gateway.main import create_app
    from gateway.settings import Settings

    opened: list[Any] = []

    def make(**overrides: Any) -> Any:
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / f'gw{len(opened)}.db'}",
            mqtt_host=mqtt_broker.host,
            mqtt_port=mqtt_broker.port,
            site=f"f{uuid.uuid4().hex[:10]}",
            bootstrap_api_key=ADMIN_KEY,
            **overrides,
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)
