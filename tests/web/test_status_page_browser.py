"""The status page in real headless Chromium while the simulator sorts (issue 7)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from gateway.services.webhook_endpoints import sign
from simulator.harness import Report, Run
from simulator.testing import wait_until
from tests.gateway.test_gateway_dashboard_metrics import samples
from tests.web.conftest import TRACKING_SECRETS, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.broker]
WALL = {"width": 1920, "height": 1080}
TABLET = {"width": 1280, "height": 800}


def awaiting(run: Run, suffix: str) -> str:
    """An RMA received in full at the desk: it waits in the quarantine queue for a lead."""
    assert run.http is not None
    number = f"RMA-WEB{suffix}"
    body = {
        "number": number,
        "order_ref": f"ORD-WEB{suffix}",
        "reason": "damaged",
        "resolution": "refund",
        "lines": [{"sku": "SKU-WEB", "quantity": 1}],
    }
    assert run.http.post("/api/v1/rmas", json=body).status_code == 201
    receipt = {"lines": [{"line_no": 1, "quantity": 1}], "note": "opened at the desk"}
    r = run.http.post(f"/api/v1/rmas/{number}/receipts", json=receipt)
    assert r.status_code == 200 and r.json()["awaiting_decision"] is True, r.text
    return number


def test_counters_and_recent_parcels_update_live_while_sorting(
    sim_run: Run, chromium: Any, shot: Any
) -> None:
    assert sim_run.gateway is not None
    page = sign_in(chromium, sim_run.gateway.url, "lee", WALL)
    page.evaluate("window.__noReload = 'still here'")
    assert page.locator('[data-count="total_today"]').inner_text() == "0"
    assert page.locator("tr[data-event]").count() == 0

    result: dict[str, Report] = {}
    worker = threading.Thread(target=lambda: result.setdefault("r", sim_run.execute()))
    worker.start()
    try:
        wait_until(
            lambda: page.locator("tr[data-event]").count() >= 1,
            what="a first parcel row",
            timeout_s=30,
            poll_s=0.05,
        )
        shot(page, "status-page-while-sorting")
    finally:
        worker.join(timeout=120)
    report = result["r"]
    assert report.ok, report.failures

    total = page.locator('[data-count="total_today"]')
    wait_until(
        lambda: total.inner_text() == "8",
        what="total today = 8 on the page",
        timeout_s=30,
        poll_s=0.05,
    )
    wait_until(
        lambda: page.locator("tr[data-event]").count() == 8,
        what="8 recent parcel rows",
        timeout_s=30,
        poll_s=0.05,
    )
    restock = page.locator('tr[data-lane="restock"] [data-count="today"]').inner_text()
    quarantine = page.locator('tr[data-lane="quarantine"] [data-count="today"]').inner_text()
    assert (restock, quarantine) == ("5", "3")
    reasons = page.locator("tr[data-event] code").all_inner_texts()
    assert sorted(reasons) == ["matched"] * 5 + ["no_read"] + ["unknown_rma"] * 2
    assert page.locator("#quarantine tr[data-unidentified]").count() == 3
    assert page.evaluate("window.__noReload") == "still here"  # updated without a reload
    assert "✔ Online" in page.locator("#stations").inner_text()
    shot(page, "status-page-wall-1080p")

    # the station's and the gateway's Prometheus figures agree with the run
    assert sim_run.station is not None and sim_run.http is not None
    station = samples(sim_run.station.call("metrics")["text"])
    gateway = samples(sim_run.http.get("/metrics").text)
    for lane, reason, n in [
        ("restock", "matched", 5),
        ("quarantine", "unknown_rma", 2),
        ("quarantine", "no_read", 1),
    ]:
        assert station[("rs_station_parcels_total", (("lane", lane), ("reason", reason)))] == n
        key = (("lane", lane), ("reason", reason), ("station", "station1"))
        assert gateway[("rs_parcels_total", key)] == n
    assert station[("rs_station_decision_latency_seconds_count", ())] == 8
    assert station[("rs_station_outbox_depth", ())] == 0


def test_lead_releases_quarantined_parcel_and_it_leaves_the_queue(
    sim_run: Run, chromium: Any, shot: Any
) -> None:
    assert sim_run.gateway is not None and sim_run.http is not None
    page = sign_in(chromium, sim_run.gateway.url, "lee", TABLET)
    number = awaiting(sim_run, "L1")
    row = page.locator(f'#quarantine tr[data-rma="{number}"]')
    wait_until(
        lambda: row.count() == 1, what="the RMA in the queue (live)", timeout_s=30, poll_s=0.05
    )
    row.locator("select[name=grade]").select_option("refurbish")
    shot(page, "quarantine-before-release-tablet")
    row.locator("button", has_text="Release").click()
    wait_until(
        lambda: page.locator(f'#quarantine tr[data-rma="{number}"]').count() == 0,
        what="row gone",
        timeout_s=30,
        poll_s=0.05,
    )
    assert f"{number}: released as refurbish" in page.locator(".notice").inner_text()
    rma = sim_run.http.get(f"/api/v1/rmas/{number}").json()
    assert (rma["state"], rma["grade"], rma["awaiting_decision"]) == (
        "refunded",
        "refurbish",
        False,
    )
    shot(page, "quarantine-after-release-tablet")


def test_viewer_sees_the_queue_but_cannot_act(sim_run: Run, chromium: Any, shot: Any) -> None:
    assert sim_run.gateway is not None and sim_run.http is not None
    page = sign_in(chromium, sim_run.gateway.url, "vera", TABLET)
    number = awaiting(sim_run, "V1")
    row = page.locator(f'#quarantine tr[data-rma="{number}"]')
    wait_until(
        lambda: row.count() == 1,
        what="the RMA in the viewer's queue (live)",
        timeout_s=30,
        poll_s=0.05,
    )
    assert page.locator("#quarantine button").count() == 0
    assert page.locator("#alarms button").count() == 0
    assert "Only a lead can decide." in page.locator("#quarantine").inner_text()
    status = page.evaluate(
        """async (n) => (await fetch('/quarantine/' + n, {method: 'POST',
             headers: {'Content-Type': 'application/x-www-form-urlencoded'},
             body: 'grade=restock&csrf=guess'})).status""",
        number,
    )
    assert status == 403
    assert sim_run.http.get(f"/api/v1/rmas/{number}").json()["awaiting_decision"] is True
    shot(page, "viewer-tablet")


def test_a_carrier_delivery_shows_the_parcel_as_expected_today_live(
    sim_run: Run, chromium: Any, shot: Any
) -> None:
    assert sim_run.gateway is not None and sim_run.http is not None
    page = sign_in(chromium, sim_run.gateway.url, "lee", TABLET)
    assert "Nothing expected today." in page.locator("#expected").inner_text()
    ups = "1Z999AA10123456784"
    body = {
        "order_ref": "ORD-WEBT1",
        "reason": "size",
        "resolution": "refund",
        "lines": [{"sku": "SKU-WEB", "quantity": 1}],
        "tracking_number": ups,
    }
    created = sim_run.http.post("/api/v1/rmas", json=body)
    assert created.status_code == 201, created.text
    number = created.json()["number"]
    event = json.dumps(
        {
            "carrier": "UPS",
            "tracking_number": ups,
            "status": "delivered",
            "occurred_at": datetime.now(UTC).isoformat(),
        }
    ).encode()
    stamp = int(time.time())
    headers = {
        "X-RS-Carrier": "UPS",
        "X-RS-Timestamp": str(stamp),
        "X-RS-Signature": sign(TRACKING_SECRETS["UPS"], stamp, event),
        "Content-Type": "application/json",
    }
    answer = httpx.post(
        f"{sim_run.gateway.url}/api/v1/tracking/events", content=event, headers=headers
    )
    assert answer.status_code == 200, answer.text
    row = page.locator(f'#expected tr[data-rma="{number}"]')
    wait_until(
        lambda: row.count() == 1, what="the parcel expected today (live)", timeout_s=30, poll_s=0.05
    )
    text = row.inner_text()
    assert ups in text and "at the warehouse" in text
    assert "Expected today (1)" in page.locator("#expected").inner_text()
    shot(page, "expected-parcels-tablet")
