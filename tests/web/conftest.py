"""Browser fixtures: a simulator run (broker, gateway, station) and Debian's headless chromium."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.harness import Run
from simulator.scenario import load_scenario

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = REPO / "reports" / "screenshots"
PASSWORDS = {"lee": "lee long password", "vera": "vera long password"}
TRACKING_SECRETS = {"UPS": "ups-browser-test-secret-7d41c09e2a6b"}
"""The carriers whose tracking webhooks the run's gateway takes (``RS_TRACKING_SECRETS``)."""


def signed_in_run(scenario_file: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """A started run of ``simulator/scenarios/<scenario_file>`` whose gateway requires
    sign-in to read, with users lee (lead) and vera (viewer)."""
    scenario = load_scenario(REPO / "simulator" / "scenarios" / scenario_file)
    before = os.environ.get("RS_ANONYMOUS_READ")
    os.environ["RS_ANONYMOUS_READ"] = "false"  # the gateway process inherits it
    os.environ["RS_TRACKING_SECRETS"] = json.dumps(TRACKING_SECRETS)
    try:
        with Run(scenario, tmp_path_factory.mktemp("sim")) as run:
            assert run.http is not None
            for name, role in (("lee", "lead"), ("vera", "viewer")):
                body = {"username": name, "password": PASSWORDS[name], "role": role}
                assert run.http.post("/api/v1/users", json=body).status_code == 201
            yield run
    finally:
        os.environ.pop("RS_TRACKING_SECRETS", None)
        if before is None:
            os.environ.pop("RS_ANONYMOUS_READ", None)
        else:
            os.environ["RS_ANONYMOUS_READ"] = before


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """A started simulator run (no parcels yet) whose gateway requires sign-in to read."""
    yield from signed_in_run("smoke.yaml", tmp_path_factory)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (never ``playwright install``)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: scripts/ensure-system-deps.sh installs it")
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def shot(tmp_path: Path) -> Any:
    """``shot(page, name)``: save a full-page screenshot to reports/screenshots/ and tmp_path."""

    def take(page: Any, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shutil.copy(path, SHOTS / path.name)
        return path

    return take


def sign_in(browser: Any, base_url: str, user: str, viewport: dict[str, int]) -> Any:
    """A new browser context signed in as ``user`` through the login form; returns the page."""
    context = browser.new_context(base_url=base_url, viewport=viewport)
    page = context.new_page()
    page.goto("/")
    assert page.url.endswith("/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")
    page.wait_for_selector("#live.ok")  # the SSE stream is connected
    return page
