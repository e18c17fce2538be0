"""The return form in real headless Chromium against a real gateway, broker and station."""

from __future__ import annotations

import io
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from simulator.testing import wait_until
from tests.returns.support import (
    LiveGateway,
    line,
    need_pdftoppm,
    order_body,
    today_utc,
)

pytestmark = [pytest.mark.browser, pytest.mark.broker]

FR_MONTHS = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
]


def _ref() -> str:
    return f"ORD-{uuid.uuid4().hex[:8].upper()}"


def _open_order(page: Any, ref: str, email: str) -> None:
    page.goto("/returns")
    page.get_by_label("Order number").fill(ref)
    page.get_by_label("E-mail address").fill(email)
    page.get_by_role("button", name="Find my order").click()
    page.wait_for_url("**/returns/order/**")


def _decode(pdf: bytes, workdir: Path) -> dict[str, str]:
    import zxingcpp
    from PIL import Image

    (workdir / "label.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "200", "-png", "-singlefile", "label.pdf", "label"],
        cwd=workdir,
        check=True,
    )
    image = Image.open(io.BytesIO((workdir / "label.png").read_bytes()))
    return {b.format.name: b.text for b in zxingcpp.read_barcodes(image)}


def test_customer_returns_one_of_two_items_and_prints_the_label(
    page: Any, gateway: LiveGateway, station: Any, tmp_path: Path
) -> None:
    need_pdftoppm()
    ref = _ref()
    gateway.put_order(
        order_body(
            ref,
            "ann@example.com",
            3,
            [
                line("SHIRT-M", 1, 2990, "apparel", name="Linen shirt M"),
                line("MUG-01", 1, 1250, "home", name="Stoneware mug"),
            ],
        )
    )
    _open_order(page, ref, "Ann@Example.com ")
    assert page.locator("h1").inner_text() == "Choose what to return"
    page.get_by_label("Quantity to return").first.select_option("1")
    page.screenshot(path=str(tmp_path / "choose.png"), full_page=True)
    page.get_by_label("Reason", exact=True).select_option("size")
    page.get_by_label("Refund", exact=True).check()
    page.get_by_role("button", name="Request the return").click()
    page.wait_for_url("**/returns/rma/**")
    assert page.locator("#status").inner_text() == "Your return is authorized."
    number = page.locator("#rma-number").inner_text()
    assert page.locator("#refund-total").inner_text() == "€29.90"
    page.screenshot(path=str(tmp_path / "outcome.png"), full_page=True)

    with page.expect_download() as info:
        page.locator("#label-link").click()
    pdf = Path(info.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF")
    assert _decode(pdf, tmp_path) == {"Code128": number, "QRCode": number}

    rma = gateway.api.get(f"/api/v1/rmas/{number}").json()
    assert (rma["state"], rma["order_ref"], rma["reason"], rma["resolution"]) == (
        "authorized",
        ref,
        "size",
        "refund",
    )
    assert [(ln["sku"], ln["quantity"]) for ln in rma["lines"]] == [("SHIRT-M", 1)]
    listed = gateway.api.get("/api/v1/rmas", params={"after_revision": 0}).json()["rmas"]
    assert number in [r["number"] for r in listed]
    order = gateway.api.get(f"/api/v1/orders/{ref}").json()
    assert [ln["returnable"] for ln in order["lines"]] == [0, 1]

    cached = wait_until(lambda: station.store.lookup_rma(number), what="RMA in the station cache")
    assert (cached.state, [ln.sku for ln in cached.lines]) == ("authorized", ["SHIRT-M"])


def test_expired_window_is_refused_with_the_date_in_french(
    page: Any, gateway: LiveGateway, tmp_path: Path
) -> None:
    ref = _ref()
    gateway.put_order(order_body(ref, "bob@example.com", 45, [line("SCARF", 1, 1500)]))
    last_day = today_utc() - timedelta(days=45) + timedelta(days=30)
    page.goto("/returns")
    page.get_by_role("link", name="Français").click()
    page.wait_for_url("**/returns?lang=fr")
    assert page.locator("html").get_attribute("lang") == "fr"
    page.screenshot(path=str(tmp_path / "identify-fr.png"), full_page=True)
    page.get_by_label("Numéro de commande").fill(ref)
    page.get_by_label("Adresse e-mail").fill("bob@example.com")
    page.get_by_role("button", name="Trouver ma commande").click()
    page.wait_for_url("**/returns/order/**")
    page.get_by_label("Quantité à retourner").select_option("1")
    page.get_by_label("Motif", exact=True).select_option("changed_mind")
    page.get_by_role("button", name="Demander le retour").click()
    assert page.locator("h1").inner_text() == "Retour impossible"
    page.screenshot(path=str(tmp_path / "refused-fr.png"), full_page=True)
    expected = f"{last_day.day} {FR_MONTHS[last_day.month - 1]} {last_day.year}"
    assert page.locator(".outcome").inner_text() == (
        f"Le délai de retour de SCARF a pris fin le {expected}."
    )
    listed = gateway.api.get("/api/v1/rmas", params={"after_revision": 0}).json()["rmas"]
    assert ref not in [r["order_ref"] for r in listed]


def test_quantities_beyond_returnable_cannot_be_chosen(page: Any, gateway: LiveGateway) -> None:
    ref = _ref()
    gateway.put_order(
        order_body(ref, "cy@example.com", 2, [line("SOCKS", 3, 500), line("CAP", 1, 900)])
    )
    first = {
        "order_ref": ref,
        "reason": "size",
        "resolution": "refund",
        "lines": [{"sku": "SOCKS", "quantity": 2}, {"sku": "CAP", "quantity": 1}],
    }
    made = gateway.api.post("/api/v1/rmas", json=first)
    assert made.status_code == 201
    _open_order(page, ref, "cy@example.com")
    socks = page.locator("#qty-1 option")
    assert socks.evaluate_all("os => os.map(o => o.value)") == ["0", "1"]
    assert page.locator("#qty-2").count() == 0
    assert page.locator(".line").nth(1).locator(".none").inner_text() == (
        "Already returned or on a return in progress"
    )
    # a forged option is refused by the server all the same
    page.locator("#qty-1").evaluate("s => s.add(new Option('3', '3', true, true))")
    page.get_by_label("Reason", exact=True).select_option("size")
    page.get_by_role("button", name="Request the return").click()
    assert page.locator("h1").inner_text() == "Return not possible"
    assert page.locator(".outcome").inner_text() == (
        "You can return at most 1 of SOCKS.\n\nYour returns already requested for it:\n\n"
        + made.json()["number"]
    )
    # the return holding the other units, linked
    page.get_by_role("link", name=made.json()["number"]).click()
    assert page.locator("#rma-number").inner_text() == made.json()["number"]
