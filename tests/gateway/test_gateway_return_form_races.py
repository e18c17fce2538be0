"""The return form when its RMA's creation races with something (over HTTP, both backends).

Each race is forced at one point: a wrapper of the form's ``create_rma`` (the service call
``policy.submit`` ends in) that does the other party's work just before the creation runs,
or, for a change the creation cannot see before its write, a statement in its transaction
just before the commit (as ``test_gateway_creation_races`` does at service level). Every
test runs on SQLite and PostgreSQL (``database_url``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from gateway.db import Database
from gateway.main import create_app
from gateway.models import (
    AnnouncementRow,
    IdempotencyRecord,
    OrderLine,
    Rma,
    RmaLineRecord,
    RmaTransition,
)
from gateway.returns import policy
from gateway.schemas import OrderDraft
from gateway.services import numbers
from gateway.services.orders import upsert_order
from gateway.services.reasons import upsert_reason
from gateway.settings import Settings
from tests.returns.support import csrf_of, line, open_order, order_body, text_of

KEY = "form-race-admin-key-0123456789abcdef"
ADMIN = {"X-API-Key": KEY}
SHIRT = line("SHIRT", 2, 2990, "apparel")
HAT = line("HAT", 1, 2500, "apparel")
ORDER_CHANGED_EN = (
    "Your order changed while we were saving your return, so nothing was saved. Please "
    "check your choices and send them again."
)
ORDER_CHANGED_FR = (
    "Votre commande a changé pendant l'enregistrement de votre retour : rien n'a été "
    "enregistré. Merci de vérifier vos choix et de les envoyer à nouveau."
)


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    """An in-process gateway of one site on ``database_url`` with order ORD-1 (SHIRT, HAT)."""
    settings = Settings(
        env="dev", database_url=database_url, mqtt_port=1, bootstrap_api_key=KEY, site="s1"
    )
    with TestClient(create_app(settings)) as c:
        body = order_body("ORD-1", "ann@example.com", 2, [SHIRT, HAT])
        assert c.put("/api/v1/orders/ORD-1", json=body, headers=ADMIN).status_code == 201
        yield c


def _db(client: TestClient) -> Database:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    return db


def _link(client: TestClient, **headers: str) -> str:
    r = open_order(client, "ORD-1", "ann@example.com", **headers)
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


def _page(client: TestClient, link: str) -> dict[str, str]:
    """The hidden fields of the choice page at ``link`` (a fresh load: its own tokens)."""
    page = client.get(link).text
    found = re.search(r'name="submission" value="([^"]+)"', page)
    assert found, "no submission token in the page"
    return {"csrf_token": csrf_of(page), "submission": found.group(1)}


def _alert(html: str) -> str:
    """The text of the page's alert (the form's message), whitespace collapsed."""
    found = re.search(r'<div class="alert" role="alert">(.*?)</div>', html, re.S)
    assert found, "no alert in the page"
    return unescape(text_of(found.group(1)))


def _post(client: TestClient, link: str, hidden: dict[str, str], **fields: str) -> Any:
    return client.post(link, data={**hidden, **fields}, follow_redirects=False)


def _stored(client: TestClient) -> dict[str, Any]:
    """What the database holds of RMAs: numbers and the rows a creation writes."""
    with _db(client).session() as s:
        return {
            "rmas": sorted(s.scalars(select(Rma.number))),
            "lines": s.scalar(select(func.count()).select_from(RmaLineRecord)),
            "transitions": s.scalar(select(func.count()).select_from(RmaTransition)),
            "announcements": s.scalar(select(func.count()).select_from(AnnouncementRow)),
            "twin_records": s.scalar(select(func.count()).select_from(IdempotencyRecord)),
            "order_lines": [
                (ln.line_no, ln.sku, ln.unit_price_cents)
                for ln in s.scalars(select(OrderLine).order_by(OrderLine.line_no))
            ],
        }


NOTHING = {"rmas": [], "lines": 0, "transitions": 0, "announcements": 0, "twin_records": 0}


def _wrap_create(
    mp: pytest.MonkeyPatch, before: Callable[[Any], None] | None = None, **hooks: Any
) -> list[int]:
    """Patch the form's ``create_rma``: ``before(session)`` runs first, once.

    ``hooks["before_commit"]`` (``(session, rma)``) runs before the form's own hook of that
    name. Returns the list of calls made (one entry per creation attempt).
    """
    real = policy.create_rma
    calls: list[int] = []

    def wrapped(session: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if before is not None and len(calls) == 1:
            before(session)
        extra = hooks.get("before_commit")
        if extra is not None and len(calls) == 1:
            inner = kwargs["before_commit"]

            def before_commit(rma: Rma) -> None:
                extra(session, rma)
                inner(rma)

            kwargs = {**kwargs, "before_commit": before_commit}
        return real(session, *args, **kwargs)

    mp.setattr(policy, "create_rma", wrapped)
    return calls


def _shop_update(client: TestClient, lines: list[dict[str, Any]]) -> None:
    """The shop's order update (``PUT /orders``' service call), committed in its own session."""
    draft = OrderDraft.model_validate(order_body("ORD-1", "ann@example.com", 2, lines))
    with _db(client).session() as s:
        assert upsert_order(s, draft, site="s1")[1] == "updated"


def test_an_order_line_deleted_at_the_write_shows_the_form_again_in_french(
    client: TestClient,
) -> None:
    # the order line goes after the creation read it (an order update committing
    # between the read and the write): the foreign key breaks at the write, which
    # create_rma raises as CreationConflict; the form answered with the API's raw JSON
    # {"detail": "RMA '...' not created: ...; retry"} (409) instead of a page
    client.get("/returns?lang=fr")
    link = _link(client)
    hidden = _page(client, link)

    def drop_the_hat(session: Any, _rma: Rma) -> None:
        session.execute(text("DELETE FROM order_lines WHERE sku = 'HAT'"))

    fields = {"qty-2": "1", "reason": "size", "note": "trop petit", "resolution": "exchange"}
    with pytest.MonkeyPatch.context() as mp:
        _wrap_create(mp, before_commit=drop_the_hat)
        r = _post(client, link, hidden, **fields)
    assert r.status_code == 409, r.text
    assert r.headers["content-language"] == "fr"
    assert "<h1>Choisissez ce que vous retournez</h1>" in r.text
    assert _alert(r.text) == ORDER_CHANGED_FR
    # the customer's values are kept
    assert '<option value="1" selected>1</option>' in r.text
    assert '<option value="size" data-note="optional" selected>' in r.text
    assert ">trop petit</textarea>" in r.text
    assert 'value="exchange" checked' in r.text
    # nothing half-stored: the whole transaction (the line's delete with it) rolled back
    assert _stored(client) == {
        **NOTHING,
        "order_lines": [(1, "SHIRT", 2990), (2, "HAT", 2500)],
    }
    again = _post(client, link, _page(client, link), **fields)
    assert again.status_code == 303
    assert len(_stored(client)["rmas"]) == 1


@pytest.mark.parametrize(
    ("change", "left"),
    [
        ("dropped", [(1, "SHIRT", 2990)]),
        ("another_sku", [(1, "SHIRT", 2990), (2, "CAP", 2500)]),
    ],
)
def test_an_order_update_before_the_creation_shows_the_form_with_the_order_now(
    client: TestClient, change: str, left: list[tuple[int, str, int]]
) -> None:
    # the shop updates the order after the form's request read it and before the
    # creation: the creation read the order the session already held (its lines as
    # the request first saw them), so a dropped line broke the foreign key (raw JSON
    # 409) and a line now of another SKU was stored with the old SKU
    link = _link(client)
    hidden = _page(client, link)
    cap = {**HAT, "sku": "CAP"}
    new_lines = [SHIRT] if change == "dropped" else [SHIRT, cap]
    with pytest.MonkeyPatch.context() as mp:
        _wrap_create(mp, before=lambda _s: _shop_update(client, new_lines))
        r = _post(client, link, hidden, **{"qty-2": "1", "reason": "size", "resolution": "refund"})
    assert r.status_code == 409, r.text
    assert _alert(r.text) == ORDER_CHANGED_EN
    page = text_of(r.text)
    # the form again, with the order as it is now
    assert ("CAP" in page, "HAT" in page) == (change == "another_sku", False)
    assert _stored(client) == {**NOTHING, "order_lines": left}


def test_an_order_update_before_the_creation_is_what_the_rma_is_made_of(
    client: TestClient,
) -> None:
    # the price of the shirt changes (the shop's correction) after the form's request
    # read the order: the RMA takes the order as committed, not the request's old copy
    link = _link(client)
    hidden = _page(client, link)
    cheaper = {**SHIRT, "unit_price_cents": 2490}
    with pytest.MonkeyPatch.context() as mp:
        _wrap_create(mp, before=lambda _s: _shop_update(client, [cheaper, HAT]))
        r = _post(client, link, hidden, **{"qty-1": "1", "reason": "size", "resolution": "refund"})
    assert r.status_code == 303, r.text
    (rma,) = client.get("/api/v1/rmas", headers=ADMIN).json()["rmas"]
    assert [(ln["sku"], ln["unit_price_cents"]) for ln in rma["lines"]] == [("SHIRT", 2490)]


def test_the_same_page_sent_twice_at_once_is_one_return(client: TestClient) -> None:
    # a double click: two posts of one page (one token, the same choices); the second
    # ran its creation while the first was being stored, and made a second RMA for the
    # other shirt (the form had no twin check)
    link = _link(client)
    hidden = _page(client, link)
    fields = {"qty-1": "1", "reason": "size", "resolution": "refund"}
    first: list[Any] = []

    def the_first_click_commits_first(_session: Any) -> None:
        # over HTTP from the second request's worker thread: the first post runs whole
        first.append(_post(client, link, hidden, **fields))

    with pytest.MonkeyPatch.context() as mp:
        calls = _wrap_create(mp, before=the_first_click_commits_first)
        second = _post(client, link, hidden, **fields)
    assert len(calls) == 2  # the second post's creation ran (and found the twin under the lock)
    assert (first[0].status_code, second.status_code) == (303, 303)
    stored = _stored(client)
    assert {k: v for k, v in stored.items() if k != "order_lines"} == {
        "rmas": stored["rmas"],
        "lines": 1,
        "transitions": 1,  # authorized
        "announcements": 1,
        "twin_records": 1,
    }
    (number,) = stored["rmas"]
    for r in (first[0], second):
        outcome = text_of(client.get(r.headers["location"]).text)
        assert f"Return number: {number}" in outcome
        assert "Your return is authorized." in outcome
    # sent again later from the same page: the same return; other choices: a new one
    assert "Return number: " + number in text_of(
        client.get(_post(client, link, hidden, **fields).headers["location"]).text
    )
    other = _post(client, link, hidden, **{**fields, "resolution": "store_credit"})
    assert other.status_code == 303
    assert len(_stored(client)["rmas"]) == 2


def test_a_second_device_refused_for_quantity_links_the_return_of_the_first(
    client: TestClient,
) -> None:
    # the form open on a phone and a laptop (two browsers: each its own CSRF cookie and
    # page token) sends the one hat from both: the second is refused and shows the
    # return the first made (it said only "You can return at most 0 of HAT.")
    laptop = TestClient(client.app)  # the same running app, its own cookies
    link = _link(client)
    laptop_link = _link(laptop)
    phone_page, laptop_page = _page(client, link), _page(laptop, laptop_link)
    fields = {"qty-2": "1", "reason": "size", "resolution": "refund"}
    assert _post(client, link, phone_page, **fields).status_code == 303
    (number,) = _stored(client)["rmas"]
    refused = _post(laptop, laptop_link, laptop_page, **fields)
    assert refused.status_code == 200
    assert "<h1>Return not possible</h1>" in refused.text
    assert (
        "Return not possible You can return at most 0 of HAT. Your returns already "
        f"requested for it: {number} Back to your order"
    ) in text_of(refused.text)
    ticket = re.search(r'<li><a href="(/returns/rma/[^"]+)">', refused.text)
    assert ticket is not None
    assert f"Return number: {number}" in text_of(laptop.get(ticket.group(1)).text)
    assert _stored(client)["rmas"] == [number]


def test_a_generated_number_that_is_taken_is_replaced(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = _link(client)
    fields = {"qty-1": "1", "reason": "size", "resolution": "refund"}
    assert _post(client, link, _page(client, link), **fields).status_code == 303
    (taken,) = _stored(client)["rmas"]
    real = numbers.generate
    given: list[str] = []

    def collide_once() -> str:
        given.append(taken if not given else real())
        return given[-1]

    monkeypatch.setattr(numbers, "generate", collide_once)
    r = _post(client, link, _page(client, link), **fields)
    assert r.status_code == 303, r.text
    assert len(given) == 2
    assert _stored(client)["rmas"] == sorted([taken, given[1]])
    assert f"Return number: {given[1]}" in text_of(client.get(r.headers["location"]).text)

    monkeypatch.setattr(numbers, "generate", lambda: taken)  # every try taken
    failed = _post(client, link, _page(client, link), **{**fields, "qty-1": "0", "qty-2": "1"})
    assert failed.status_code == 409
    assert _alert(failed.text) == "We could not save your return. Please send it again."
    stored = _stored(client)
    assert (stored["rmas"], stored["lines"], stored["twin_records"]) == (
        sorted([taken, given[1]]),
        2,
        2,
    )


def test_a_reason_deactivated_under_the_creation_asks_for_another(client: TestClient) -> None:
    # a lead retires the reason after the form checked it: create_rma's UnknownReason
    # reached the customer as the API's raw JSON 422
    link = _link(client)
    hidden = _page(client, link)

    def retire_size(_session: Any) -> None:
        with _db(client).session() as s:
            upsert_reason(s, "size", "Size", merchant_fault=False, active=False)
            s.commit()

    with pytest.MonkeyPatch.context() as mp:
        _wrap_create(mp, before=retire_size)
        r = _post(client, link, hidden, **{"qty-1": "1", "reason": "size", "resolution": "refund"})
    assert r.status_code == 422, r.text
    assert _alert(r.text) == "Choose a reason for the return."
    assert 'value="size"' not in r.text
    assert {k: v for k, v in _stored(client).items() if k != "order_lines"} == NOTHING


def test_nul_characters_posted_to_the_public_forms_are_dropped_not_a_500(
    client: TestClient,
) -> None:
    # no browser sends one; PostgreSQL refuses NUL in text, so the order lookup and the
    # twin lookup failed with a 500 and the RMA's notes could not be written (SQLite
    # stored them): found by posting them
    r = open_order(client, "ORD-1\x00", "ann@example.com")
    assert r.status_code == 303 and r.headers["location"].startswith("/returns/order/")
    link = _link(client)
    hidden = _page(client, link)
    fields = {"qty-1": "1", "reason": "changed_mind", "resolution": "refund"}
    first = _post(client, link, {**hidden, "submission": "a\x00b"}, **fields, note="hi\x00 there")
    assert first.status_code == 303
    again = _post(client, link, {**hidden, "submission": "ab"}, **fields, note="hi there")
    assert again.status_code == 303
    assert again.headers["location"] == first.headers["location"]  # the same page: a twin
    with _db(client).session() as s:
        [(notes, key)] = s.execute(select(Rma.notes, IdempotencyRecord.key)).all()
    assert notes == "hi there" and key.startswith("ab.")
