"""Station commands from the status page in real headless Chromium (issue 16 item 1).

A parcel jams at the induct eye of a simulated run: the station stops the belt and raises
the alarm; nobody resumes from the simulator (``resume: operator``). A lead presses Resume
on the page, confirms, the belt runs again and the next parcels are sorted; the reply
(``done``) shows on the page. A viewer sees no button and gets 403.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.harness import SITE_DEFAULT_STATION as STATION
from simulator.harness import Report, Run
from simulator.testing import wait_until
from tests.web.conftest import sign_in, signed_in_run

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.broker]
WALL = {"width": 1920, "height": 1080}


@pytest.fixture(scope="module")
def jam_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """A started jam-operator run whose gateway requires sign-in; users lee (lead), vera."""
    yield from signed_in_run("jam-operator.yaml", tmp_path_factory)


def test_a_lead_resumes_a_jammed_belt_from_the_page(
    jam_run: Run, chromium: Any, shot: Any, tmp_path: Path
) -> None:
    assert jam_run.gateway is not None and jam_run.station is not None
    page = sign_in(chromium, jam_run.gateway.url, "lee", WALL)
    result: dict[str, Report] = {}
    worker = threading.Thread(target=lambda: result.setdefault("r", jam_run.execute()))
    worker.start()
    try:
        jam = page.locator('li.alarm.active[data-kind="jam"]')
        wait_until(lambda: jam.count() == 1, what="the jam alarm", timeout_s=60, poll_s=0.05)
        belt = page.locator(f'tr[data-station="{STATION}"] td').nth(1)
        wait_until(lambda: "Stopped" in belt.inner_text(), what="belt stopped", timeout_s=30)
        # the stuck parcel is taken off (the timeline); the belt stands until Resume
        cleared = jam_run._jam_cleared
        assert cleared is not None
        wait_until(
            lambda: all(e.is_set() for e in cleared.values()),
            what="the stuck parcel taken off",
            timeout_s=60,
        )
        assert jam_run.station.call("belt_run") == {"on": False}
        shot(page, "station-jammed")
        page.click('[data-action="resume"]')
        page.wait_for_url("**/confirm?command=resume")
        page.click('button[data-confirm="resume"]')
        page.wait_for_url(jam_run.gateway.url + "/?notice=command-resume#stations")
        assert page.locator("p.notice").inner_text() == "Resume sent to the station"
        done = page.locator(
            f'tr[data-station="{STATION}"] [data-command="resume"][data-state="done"]'
        )
        wait_until(lambda: done.count() == 1, what="resume done on the page", timeout_s=30)
        wait_until(lambda: "Running" in belt.inner_text(), what="belt running", timeout_s=30)
        shot(page, "station-resumed")
    finally:
        worker.join(timeout=180)
    report = result["r"]
    assert report.ok, report.failures
    assert report.mis_sorts == 0
    assert report.removed_by_hand >= 1  # the stuck parcel (and the one pressed behind it)
    [fault] = report.faults
    assert fault.end_s is not None
    # inducted once the lead resumed (the belt stood from the jam until then): all sorted
    after = [p for p in report.parcels if p.induct_s is not None and p.induct_s > fault.end_s]
    assert after and all(p.actual_lane == p.expected_lane == "restock" for p in after), [
        (p.index, p.expected_lane, p.actual_lane) for p in after
    ]


def test_a_viewer_sees_no_button_and_is_refused(jam_run: Run, chromium: Any) -> None:
    assert jam_run.gateway is not None
    page = sign_in(chromium, jam_run.gateway.url, "vera", WALL)
    row = page.locator(f'tr[data-station="{STATION}"]')
    wait_until(lambda: row.count() == 1, what="station row")
    assert page.locator("[data-action]").count() == 0
    r = page.request.post(
        jam_run.gateway.url + f"/stations/{STATION}/commands",
        form={"command": "resume", "csrf": "x"},
    )
    assert r.status == 403
    r = page.request.get(jam_run.gateway.url + f"/stations/{STATION}/confirm?command=resume")
    assert r.status == 403
