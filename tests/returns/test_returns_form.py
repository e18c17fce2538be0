"""The return form over HTTP (in-process gateway): privacy, limits, CSRF, policy, money."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from gateway.web.returns.render import CSRF_MAX_AGE_S, CSRF_SALT
from tests.returns.support import (
    ADMIN,
    csrf_of,
    line,
    open_order,
    order_body,
    submit,
    text_of,
)

pytestmark = pytest.mark.broker

NOT_FOUND = (
    "We could not find an order with this number and e-mail address. "
    "Please check both and try again."
)


def _order(client: Any, ref: str = "ORD-1", days: int = 2, lines: Any = None) -> None:
    body = order_body(ref, "ann@example.com", days, lines or [line("SHIRT", 2, 2990, "apparel")])
    assert client.put(f"/api/v1/orders/{ref}", json=body, headers=ADMIN).status_code == 201


def _link(client: Any, ref: str = "ORD-1") -> str:
    r = open_order(client, ref, "ann@example.com")
    assert r.status_code == 303
    return str(r.headers["location"])


def test_unknown_order_and_wrong_email_get_the_same_answer(make_client: Any) -> None:
    c = make_client()
    _order(c)
    unknown = open_order(c, "ORD-404", "ann@example.com")
    wrong = open_order(c, "ORD-1", "eve@example.com")
    assert (unknown.status_code, wrong.status_code) == (404, 404)
    assert NOT_FOUND in text_of(unknown.text)
    assert text_of(unknown.text) == text_of(wrong.text)
    assert open_order(c, "ORD-1", " ANN@example.com ").status_code == 303


def test_attempts_are_limited_per_order_and_per_ip(make_client: Any) -> None:
    c = make_client(form_rate_limit_order="3/hour", form_rate_limit_ip="100/hour")
    _order(c)
    assert [open_order(c, "ORD-1", "x@example.com").status_code for _ in range(3)] == [404] * 3
    limited = open_order(c, "ORD-1", "ann@example.com")
    assert limited.status_code == 429
    assert "Too many attempts. Please wait a few minutes and try again." in text_of(limited.text)
    assert open_order(c, "ORD-2", "x@example.com").status_code == 404  # another order is fine

    c2 = make_client(form_rate_limit_order="100/hour", form_rate_limit_ip="2/hour")
    _order(c2)
    codes = [open_order(c2, f"ORD-{i}", "x@example.com").status_code for i in range(2, 5)]
    assert codes == [404, 404, 429]


def test_posts_without_a_valid_csrf_token_are_refused(make_client: Any) -> None:
    c = make_client()
    _order(c)
    data = {"order_number": "ORD-1", "email": "ann@example.com"}
    refused = c.post("/returns", data=data)
    assert refused.status_code == 403
    assert "This page had expired. Please try again." in text_of(refused.text)
    token = csrf_of(c.get("/returns").text)
    assert c.post("/returns", data={**data, "csrf_token": token + "x"}).status_code == 403
    c.cookies.clear()
    assert c.post("/returns", data={**data, "csrf_token": token}).status_code == 403
    link = _link(c)
    choice = {"qty-1": "1", "reason": "size", "resolution": "refund"}
    forged = c.post(link, data={**choice, "csrf_token": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    assert c.get("/api/v1/rmas", headers=ADMIN).json()["rmas"] == []


def test_a_second_tab_keeps_the_first_tabs_form_valid(make_client: Any) -> None:
    # one CSRF cookie for every open page: a new pair per page load voided the first
    # tab's token (403 "This page had expired") as soon as a second tab was opened
    c = make_client()
    _order(c)
    first = c.get("/returns")
    cookie = c.cookies["rs_csrf"]
    second = c.get("/returns")
    assert "set-cookie" not in second.headers
    assert csrf_of(second.text) == csrf_of(first.text)
    data = {"order_number": "ORD-1", "email": "ann@example.com"}
    opened = c.post(
        "/returns", data={**data, "csrf_token": csrf_of(first.text)}, follow_redirects=False
    )
    assert opened.status_code == 303
    link = str(opened.headers["location"])
    tab_a, tab_b = csrf_of(c.get(link).text), csrf_of(c.get(link).text)
    assert (tab_a, c.cookies["rs_csrf"]) == (tab_b, cookie)
    choice = {"qty-1": "1", "reason": "size", "resolution": "refund"}
    assert submit(c, link, **choice).status_code == 303
    # a forged cookie is not reused: a fresh pair, and the page's new token works
    c.cookies.clear()
    fresh = c.get("/returns", headers={"Cookie": "rs_csrf=forged"})
    assert "rs_csrf=" in fresh.headers["set-cookie"]
    assert csrf_of(fresh.text) != csrf_of(first.text)
    again = {**data, "csrf_token": csrf_of(fresh.text)}
    assert c.post("/returns", data=again, follow_redirects=False).status_code == 303

    # nor one past half its age (a kept token has at least half its lifetime left)
    class Aged(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - CSRF_MAX_AGE_S // 2 - 5

    key = c.app.state.settings.key("returns-csrf")  # type: ignore[attr-defined]
    aged = URLSafeTimedSerializer(key, salt=CSRF_SALT, signer=Aged).dumps("a" * 40)
    c.cookies.clear()
    renewed = c.get("/returns", headers={"Cookie": f"rs_csrf={aged}"})
    assert "rs_csrf=" in renewed.headers["set-cookie"]
    assert csrf_of(renewed.text) not in ("a" * 40, csrf_of(fresh.text))


def test_a_reason_that_asks_for_a_note_needs_one(make_client: Any) -> None:
    c = make_client()
    _order(c)
    link = _link(c)
    r = submit(c, link, **{"qty-1": "1", "reason": "other", "resolution": "refund"})
    assert r.status_code == 422
    assert "Please tell us more about the problem in the note." in text_of(r.text)
    r = submit(c, link, **{"qty-1": "1", "reason": "other", "note": "gift", "resolution": "refund"})
    assert r.status_code == 303
    assert "Your return is authorized." in text_of(c.get(r.headers["location"]).text)
    assert submit(c, link, **{"reason": "size", "resolution": "refund"}).status_code == 422


@pytest.mark.parametrize(
    ("field", "value"),
    [("qty-\u00b2", "1"), ("qty-" + "1" * 5000, "1"), ("qty-1", "9" * 5000), ("qty-1", "\u00b3")],
    ids=["superscript-line", "5000-digit-line", "5000-digit-quantity", "superscript-quantity"],
)
def test_an_odd_quantity_field_is_no_quantity_never_a_500(
    make_client: Any, field: str, value: str
) -> None:
    # "\u00b2".isdigit() is True but int() refuses it, and int() refuses 5000 digits:
    # the posted form was a 500; it is now the form again, as with nothing chosen
    c = make_client()
    _order(c)
    link = _link(c)
    nothing = submit(c, link, **{"reason": "size", "resolution": "refund"})
    odd = submit(c, link, **{field: value, "reason": "size", "resolution": "refund"})
    assert (odd.status_code, text_of(odd.text)) == (422, text_of(nothing.text))
    assert c.get("/api/v1/rmas", headers=ADMIN).json()["rmas"] == []


def test_resolutions_follow_the_category_and_fees_are_shown(make_client: Any) -> None:
    c = make_client()
    _order(c, lines=[line("PHONE", 1, 19900, "electronics")])
    link = _link(c)
    page = c.get(link).text
    assert 'data-resolutions="refund store_credit"' in page
    r = submit(c, link, **{"qty-1": "1", "reason": "size", "resolution": "exchange"})
    assert r.status_code == 422
    assert "This resolution is not available for every item you chose." in text_of(r.text)
    r = submit(c, link, **{"qty-1": "1", "reason": "size", "resolution": "store_credit"})
    outcome = text_of(c.get(r.headers["location"]).text)
    assert "PHONE 1 €199.00 €29.85 €169.15 Total €199.00 €29.85 €169.15" in outcome


def test_merchant_fault_has_no_restocking_fee(make_client: Any) -> None:
    c = make_client()
    _order(c, lines=[line("PHONE", 1, 19900, "electronics")])
    fields = {"qty-1": "1", "reason": "defective", "note": "no sound", "resolution": "refund"}
    r = submit(c, _link(c), **fields)
    outcome = text_of(c.get(r.headers["location"]).text)
    assert "PHONE 1 €199.00 €0.00 €199.00" in outcome


def test_high_value_waits_for_a_lead_without_a_label(make_client: Any) -> None:
    c = make_client(approval_threshold_cents=50_000)
    _order(c, lines=[line("TV", 1, 89900, "electronics")])
    r = submit(c, _link(c), **{"qty-1": "1", "reason": "size", "resolution": "refund"})
    page = c.get(r.headers["location"])
    assert "Your return is waiting for approval by our team." in text_of(page.text)
    assert "label.pdf" not in page.text
    assert c.get(r.headers["location"] + "/label.pdf").status_code == 404
    rmas = c.get("/api/v1/rmas", headers=ADMIN).json()["rmas"]
    assert [(x["order_ref"], x["state"]) for x in rmas] == [("ORD-1", "requested")]
    number = rmas[0]["number"]
    body = {"trigger": "authorize", "note": "ok"}
    assert c.post(f"/api/v1/rmas/{number}/transitions", json=body, headers=ADMIN).status_code == 200
    assert c.get(r.headers["location"] + "/label.pdf").status_code == 200


def test_a_split_return_is_valued_with_what_is_open_on_the_order(make_client: Any) -> None:
    c = make_client(approval_threshold_cents=50_000)
    _order(c, lines=[line("TV", 2, 30000, "electronics")])
    link = _link(c)
    fields = {"qty-1": "1", "reason": "size", "resolution": "refund"}
    first = submit(c, link, **fields)
    assert "Your return is authorized." in text_of(c.get(first.headers["location"]).text)
    # 300.00 open + 300.00 asked = 600.00 > 500.00: the second half waits for a lead
    second = submit(c, link, **fields)
    page = text_of(c.get(second.headers["location"]).text)
    assert "Your return is waiting for approval by our team." in page
    rmas = c.get("/api/v1/rmas", headers=ADMIN).json()["rmas"]
    assert sorted(x["state"] for x in rmas) == ["authorized", "requested"]


def test_language_from_the_browser_the_switch_and_the_default(make_client: Any) -> None:
    c = make_client()
    fr = c.get("/returns", headers={"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.5"})
    assert fr.headers["content-language"] == "fr"
    assert "<h1>Retourner un article</h1>" in fr.text
    de = c.get("/returns", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert "<h1>Return an item</h1>" in de.text
    c.get("/returns?lang=fr")
    assert c.cookies.get("rs_lang") == "fr"
    assert "<h1>Retourner un article</h1>" in c.get("/returns").text
    c2 = make_client(default_language="fr")
    assert c2.get("/returns", headers={"Accept-Language": "de"}).headers["content-language"] == "fr"


def test_the_form_language_is_the_customers_language_on_the_rma(make_client: Any) -> None:
    c = make_client()
    _order(c)
    c.get("/returns?lang=fr")  # the customer switches the form to French
    r = submit(c, _link(c), **{"qty-1": "1", "reason": "size", "resolution": "refund"})
    assert r.status_code == 303
    rmas = c.get("/api/v1/rmas", headers=ADMIN).json()["rmas"]
    assert [(x["customer_email"], x["customer_language"]) for x in rmas] == [
        ("ann@example.com", "fr")
    ]


def test_shop_name_address_and_logo_come_from_settings(make_client: Any, tmp_path: Path) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    c = make_client(
        shop_name="Chez Léa", shop_address="3 quai Est\\n69000 Lyon", shop_logo_path=str(logo)
    )
    text = text_of(c.get("/returns").text)
    assert text.startswith("Return an item · Chez Léa Skip to content Chez Léa")
    assert text.endswith("Chez Léa 3 quai Est 69000 Lyon")
    assert '<img src="/returns/logo"' in c.get("/returns").text
    assert c.get("/returns/logo").content == logo.read_bytes()
    assert make_client().get("/returns/logo").status_code == 404


def test_forged_links_are_not_found(make_client: Any) -> None:
    c = make_client()
    _order(c)
    assert c.get("/returns/order/ORD-1").status_code == 404
    assert c.get("/returns/rma/RS123").status_code == 404
    assert c.get("/returns/rma/RS123/label.pdf").status_code == 404


def test_known_serial_and_rfid_uid_go_on_the_rma_for_the_station(make_client: Any) -> None:
    c = make_client()
    tagged = line("WATCH", 1, 9900, "accessories", serials=["W-1"], rfid_uids=["dd:17:38:0a"])
    _order(c, lines=[tagged, line("BAND", 2, 1000, "accessories", rfid_uids=["04A1B2C3"])])
    fields = {"qty-1": "1", "qty-2": "1", "reason": "size", "resolution": "exchange"}
    r = submit(c, _link(c), **fields)
    assert r.status_code == 303
    (rma,) = c.get("/api/v1/rmas", headers=ADMIN).json()["rmas"]
    assert [(ln["sku"], ln["serial"], ln["rfid_uid"]) for ln in rma["lines"]] == [
        ("WATCH", "W-1", "DD17380A"),
        ("BAND", None, None),  # which of the two tagged units comes back is unknown
    ]
    fr = text_of(c.get(r.headers["location"] + "?lang=fr").text)
    assert "Votre retour est autorisé." in fr
    assert "Total 109,00 € 0,00 € 109,00 €" in fr


def test_an_order_delivered_at_the_last_instant_of_the_calendar_range_shows_its_window(
    make_client: Any,
) -> None:
    """The window's last day of a delivery at the range's end (3000-01-01 in the shop's
    zone furthest east) is computed and shown; an order beyond it cannot be stored."""
    c = make_client(shop_timezone="Pacific/Kiritimati")
    body = order_body("ORD-END", "ann@example.com", 0, [line("SHIRT", 1, 2990, "apparel")])
    past = c.put(
        "/api/v1/orders/ORD-END",
        json={**body, "delivered_at": "3000-01-01T00:00:00Z"},
        headers=ADMIN,
    )
    assert past.status_code == 422
    body["delivered_at"] = "2999-12-31T23:59:59Z"
    assert c.put("/api/v1/orders/ORD-END", json=body, headers=ADMIN).status_code == 201
    page = c.get(_link(c, "ORD-END"))
    assert page.status_code == 200
    assert "Return by January 31, 3000" in text_of(page.text)
