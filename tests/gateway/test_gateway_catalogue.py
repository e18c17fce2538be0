"""The product catalogue: API, CSV import, and the values stations get with RMA lines.

Every test runs on SQLite and PostgreSQL (``database_url``), against the real broker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.db import Database
from gateway.main import create_app, main
from gateway.schemas import CatalogueItemBody, RmaDraft
from gateway.services.catalogue import put_item
from gateway.services.revisions import head_revision
from gateway.services.rmas import create_rma, get_rma, list_announcements, transition_rma
from gateway.settings import Settings
from protocol import RmaAnnouncement, Topics, decode
from tests.gateway.conftest import ADMIN_KEY, MqttProbe

Body = Callable[..., dict[str, Any]]

SHOE: dict[str, Any] = {
    "name": "Trail shoe 42",
    "weight_g": 850,
    "length_mm": 330,
    "width_mm": 210,
    "height_mm": 120,
    "gtins": ["4006381333931", "036000291452"],
}


@pytest.fixture
def any_settings(database_url: str, mqtt_broker: Any, site: str) -> Settings:
    """Gateway settings on each backend, pointing at the test broker."""
    return Settings(
        database_url=database_url,
        mqtt_host=mqtt_broker.host,
        mqtt_port=mqtt_broker.port,
        site=site,
        bootstrap_api_key=ADMIN_KEY,
    )


@pytest.fixture
def any_client(any_settings: Settings) -> Iterator[TestClient]:
    """The gateway app on each backend, its bridge subscribed; requests as admin."""
    app = create_app(any_settings)
    with TestClient(app, headers={"X-API-Key": ADMIN_KEY}) as test_client:
        assert app.state.bridge.wait_ready(10), "gateway bridge did not subscribe"
        yield test_client


def announcements(probe: MqttProbe, site: str) -> list[RmaAnnouncement]:
    return [decode(p, RmaAnnouncement) for p in probe.payloads(Topics(site).rma)]


def test_put_get_list_and_idempotence(any_client: TestClient) -> None:
    created = any_client.put("/api/v1/catalogue/SHOE-42", json=SHOE)
    assert created.status_code == 201
    body = created.json()
    assert (body["outcome"], body["reannounced"]) == ("created", 0)
    item = body["item"]
    assert item | {"updated_at": None} == {
        "sku": "SHOE-42",
        "name": "Trail shoe 42",
        "weight_g": 850,
        "length_mm": 330,
        "width_mm": 210,
        "height_mm": 120,
        "gtins": ["04006381333931", "00036000291452"],
        "weight_tol_g": None,
        "size_tol_mm": None,
        "updated_at": None,
    }
    again = any_client.put("/api/v1/catalogue/SHOE-42", json=SHOE)
    assert (again.status_code, again.json()["outcome"]) == (200, "unchanged")
    assert again.json()["item"] == item
    changed = any_client.put("/api/v1/catalogue/SHOE-42", json={**SHOE, "weight_tol_g": 40})
    assert (changed.status_code, changed.json()["outcome"]) == (200, "updated")
    replaced = any_client.put("/api/v1/catalogue/SHOE-42", json={"weight_g": 900})
    assert replaced.json()["item"]["gtins"] == []  # PUT replaces every field
    assert replaced.json()["item"]["length_mm"] is None
    assert any_client.get("/api/v1/catalogue/SHOE-42").json()["weight_g"] == 900
    missing = any_client.get("/api/v1/catalogue/NOPE")
    assert (missing.status_code, missing.json()) == (
        404,
        {"detail": "SKU 'NOPE' not in the catalogue"},
    )
    for sku in ("A-1", "B-2", "C-3"):
        assert any_client.put(f"/api/v1/catalogue/{sku}", json={"weight_g": 1}).status_code == 201
    first = any_client.get("/api/v1/catalogue", params={"limit": 2}).json()
    assert ([i["sku"] for i in first["items"]], first["next_after"]) == (["A-1", "B-2"], "B-2")
    rest = any_client.get("/api/v1/catalogue", params={"after": "B-2", "limit": 2}).json()
    assert ([i["sku"] for i in rest["items"]], rest["next_after"]) == (
        ["C-3", "SHOE-42"],
        "SHOE-42",
    )
    end = any_client.get("/api/v1/catalogue", params={"after": "SHOE-42"}).json()
    assert end == {"items": [], "next_after": None}


def test_writing_needs_the_catalogue_scope(any_client: TestClient) -> None:
    made = any_client.post("/api/v1/api-keys", json={"name": "shop", "scopes": ["orders:write"]})
    shop = {"X-API-Key": made.json()["key"]}
    refused = any_client.put("/api/v1/catalogue/MUG", json={"weight_g": 400}, headers=shop)
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "api-key:shop lacks scope catalogue:write"},
    )
    assert any_client.get("/api/v1/catalogue", headers=shop).status_code == 403  # no read
    pim = any_client.post(
        "/api/v1/api-keys", json={"name": "pim", "scopes": ["catalogue:write", "read"]}
    )
    ok = any_client.put(
        "/api/v1/catalogue/MUG", json={"weight_g": 400}, headers={"X-API-Key": pim.json()["key"]}
    )
    assert ok.status_code == 201


BAD_VALUES: list[tuple[dict[str, Any], list[str], str]] = [
    ({"weight_g": 0}, ["body", "weight_g"], "Input should be greater than or equal to 1"),
    ({"weight_g": 1_000_001}, ["body", "weight_g"], "less than or equal to 1000000"),
    ({"length_mm": 5001}, ["body", "length_mm"], "less than or equal to 5000"),
    ({"weight_tol_g": -1}, ["body", "weight_tol_g"], "greater than or equal to 0"),
    ({"weight_g": "heavy"}, ["body", "weight_g"], "valid integer"),
    (
        {"gtins": ["4006381333932"]},
        ["body", "gtins"],
        "GTIN '4006381333932': The number's checksum or check digit is invalid.",
    ),
    ({"gtins": ["12345"]}, ["body", "gtins"], "The number has an invalid length."),
    ({"gtins": ["400638133393"] * 17}, ["body", "gtins"], "at most 16 items"),
    ({"name": "x" * 201}, ["body", "name"], "at most 200 characters"),
    ({"weight_kg": 1}, ["body", "weight_kg"], "Extra inputs are not permitted"),
]


def test_bad_values_are_422_naming_the_field(client: TestClient) -> None:
    # Validation only: on the SQLite app (storing is tested on both backends).
    for body, where, message in BAD_VALUES:
        response = client.put("/api/v1/catalogue/MUG", json=body)
        assert response.status_code == 422, body
        [error] = response.json()["detail"]
        assert error["loc"] == where
        assert message in error["msg"], (body, error["msg"])
    assert client.get("/api/v1/catalogue/MUG").status_code == 404
    long_sku = client.put(f"/api/v1/catalogue/{'S' * 65}", json={})
    assert long_sku.status_code == 422
    assert long_sku.json()["detail"][0]["loc"] == ["path", "sku"]


def test_bulk_import_stores_all_or_nothing(any_client: TestClient) -> None:
    good = [{"sku": "MUG", "weight_g": 400}, {"sku": "SHOE-42", **SHOE}]
    bad = [*good, {"sku": "PLATE", "weight_g": -5}]
    refused = any_client.post("/api/v1/catalogue/import", json={"items": bad})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "items", 2, "weight_g"]
    twice = any_client.post("/api/v1/catalogue/import", json={"items": [*good, good[0]]})
    assert twice.status_code == 422
    assert "SKU(s) given more than once: MUG" in twice.json()["detail"][0]["msg"]
    too_many = [{"sku": f"S{i}"} for i in range(1001)]
    assert any_client.post("/api/v1/catalogue/import", json={"items": too_many}).status_code == 422
    assert any_client.get("/api/v1/catalogue").json()["items"] == []
    stored = any_client.post("/api/v1/catalogue/import", json={"items": good})
    assert stored.status_code == 200
    body = stored.json()
    assert (body["created"], body["updated"], body["unchanged"], body["reannounced"]) == (
        2,
        0,
        0,
        0,
    )
    assert [(r["item"]["sku"], r["outcome"]) for r in body["results"]] == [
        ("MUG", "created"),
        ("SHOE-42", "created"),
    ]
    again = any_client.post(
        "/api/v1/catalogue/import", json={"items": [good[0], {**good[1], "weight_g": 860}]}
    ).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 1, 1)


def test_announcements_carry_the_catalogue_and_a_change_reannounces_open_rmas(
    any_client: TestClient, probe: MqttProbe, site: str, rma_body: Body, wait: Any
) -> None:
    probe.subscribe(Topics(site).rma)
    lines = [{"sku": "SHOE-42", "quantity": 2}, {"sku": "SOCKS", "quantity": 1, "gtin": "96385074"}]
    assert any_client.post("/api/v1/rmas", json=rma_body("R-1", lines=lines)).status_code == 201
    assert any_client.post("/api/v1/rmas", json=rma_body("R-2", lines=lines)).status_code == 201
    cancel = any_client.post("/api/v1/rmas/R-2/transitions", json={"trigger": "cancel"})
    assert cancel.status_code == 200
    wait(lambda: len(announcements(probe, site)) == 3, what="three announcements")
    before = announcements(probe, site)[0]
    assert (before.number, before.revision) == ("R-1", 1)
    assert (before.lines[0].weight_g, before.lines[0].gtin) == (None, None)  # SKU not known yet

    put = any_client.put("/api/v1/catalogue/SHOE-42", json={**SHOE, "gtins": ["4006381333931"]})
    assert (put.status_code, put.json()["reannounced"]) == (201, 1)  # R-2 is cancelled
    [after] = wait(lambda: announcements(probe, site)[3:], what="re-announcement")
    assert (after.number, after.revision, after.state.value) == ("R-1", 4, "authorized")
    shoe, socks = after.lines
    assert (shoe.weight_g, shoe.length_mm, shoe.width_mm, shoe.height_mm) == (850, 330, 210, 120)
    assert (shoe.weight_tol_g, shoe.size_tol_mm) == (None, None)
    assert shoe.gtin == "04006381333931"  # the catalogue's only GTIN, the line had none
    assert (shoe.received_quantity, shoe.quantity) == (0, 2)
    assert (socks.weight_g, socks.gtin) == (None, "96385074")  # not in the catalogue
    rma = any_client.get("/api/v1/rmas/R-1").json()
    assert rma["revision"] == 4

    renamed = any_client.put(
        "/api/v1/catalogue/SHOE-42", json={**SHOE, "gtins": ["4006381333931"], "name": "New"}
    )
    assert (renamed.json()["outcome"], renamed.json()["reannounced"]) == ("updated", 0)
    two_gtins = any_client.put("/api/v1/catalogue/SHOE-42", json=SHOE)
    assert two_gtins.json()["reannounced"] == 1  # the line's GTIN goes: two to choose from
    [last] = wait(lambda: announcements(probe, site)[4:], what="second re-announcement")
    assert (last.revision, last.lines[0].gtin, last.lines[0].weight_g) == (5, None, 850)


def draft(number: str, *quantities: int) -> RmaDraft:
    """An RMA with one MUG line per quantity given."""
    return RmaDraft.model_validate(
        {
            "number": number,
            "order_ref": "O-1",
            "reason": "damaged",
            "resolution": "refund",
            "lines": [{"sku": "MUG", "quantity": q} for q in quantities],
        }
    )


def test_catch_up_carries_the_catalogue_values(anydb: Database, site: str) -> None:
    settings = Settings(site=site)
    with anydb.session() as s:
        put_item(s, settings, "MUG", CatalogueItemBody(weight_g=400, weight_tol_g=15))
        create_rma(s, settings, draft("R-9", 3))
    with anydb.session() as s:
        [ann] = list_announcements(s)
    assert (ann.lines[0].weight_g, ann.lines[0].weight_tol_g, ann.lines[0].quantity) == (400, 15, 3)


def test_only_open_rmas_are_reannounced_each_with_its_own_revision(
    anydb: Database, site: str
) -> None:
    settings = Settings(site=site)
    with anydb.session() as s:
        for number in ("R-1", "R-2", "R-3"):
            create_rma(s, settings, draft(number, 1, 2))
        r3 = get_rma(s, "R-3")
        assert r3 is not None
        transition_rma(s, settings, r3, "cancel", actor="test")
        assert head_revision(s, site) == 4
    with anydb.session() as s:
        result = put_item(s, settings, "MUG", CatalogueItemBody(weight_g=400))
        assert (result.outcome, result.reannounced) == ("created", 2)
    with anydb.session() as s:
        assert head_revision(s, site) == 6
        revisions = {n: get_rma(s, n).revision for n in ("R-1", "R-2", "R-3")}  # type: ignore[union-attr]
        assert revisions == {"R-1": 5, "R-2": 6, "R-3": 4}
        anns = list_announcements(s, after_revision=4)
    assert [(a.number, [ln.weight_g for ln in a.lines]) for a in anns] == [
        ("R-1", [400, 400]),
        ("R-2", [400, 400]),
    ]


# -- CSV import ---------------------------------------------------------------------------
CSV = (
    "SKU,Name,weight_g,length_mm,width_mm,height_mm,gtins,weight_tol_g,size_tol_mm\n"
    "SHOE-42,Trail shoe 42,850,330,210,120,4006381333931|036000291452,,\n"
    'MUG,"Mug, blue",400,120,90,100,,15,5\n'
    "\n"
    "POSTER,Poster,180,600,80,,,,\n"
)


def _import(
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    path: Path,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[int, str]:
    monkeypatch.setenv("RS_DATABASE_URL", url)
    code = main(["import-catalogue", str(path), *extra])
    return code, capsys.readouterr().out


def _items(url: str) -> dict[str, tuple[object, ...]]:
    db = Database(url)
    try:
        with db.session() as s:
            from gateway.services.catalogue import list_items

            return {
                i.sku: (
                    i.name,
                    i.weight_g,
                    i.length_mm,
                    i.width_mm,
                    i.height_mm,
                    i.gtins,
                    i.weight_tol_g,
                    i.size_tol_mm,
                )
                for i in list_items(s, limit=1000)
            }
    finally:
        db.dispose()


def test_csv_import_stores_rows_and_is_idempotent(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    path = tmp_path / "catalogue.csv"
    path.write_text(CSV, encoding="utf-8")
    assert _import(monkeypatch, database_url, path, capsys) == (
        0,
        "line 2: SHOE-42 created\n"
        "line 3: MUG created\n"
        "line 5: POSTER created\n"
        "3 created, 0 updated, 0 unchanged, 0 refused; 0 open RMA(s) re-announced\n",
    )
    assert _items(database_url) == {
        "SHOE-42": (
            "Trail shoe 42",
            850,
            330,
            210,
            120,
            ["04006381333931", "00036000291452"],
            None,
            None,
        ),
        "MUG": ("Mug, blue", 400, 120, 90, 100, [], 15, 5),
        "POSTER": ("Poster", 180, 600, 80, None, [], None, None),
    }
    code, out = _import(monkeypatch, database_url, path, capsys)
    assert (code, out.splitlines()[-1]) == (
        0,
        "0 created, 0 updated, 3 unchanged, 0 refused; 0 open RMA(s) re-announced",
    )
    # A file without some columns keeps what the catalogue holds for them; an empty
    # cell clears.
    path.write_text("sku,weight_g,size_tol_mm\nMUG,410,\n", encoding="utf-8")
    assert _import(monkeypatch, database_url, path, capsys)[1].splitlines()[0] == (
        "line 2: MUG updated"
    )
    assert _items(database_url)["MUG"] == ("Mug, blue", 410, 120, 90, 100, [], 15, None)


def test_csv_rows_with_bad_cells_are_refused_by_line_and_the_rest_stored(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    path = tmp_path / "catalogue.csv"
    path.write_text(
        "sku,weight_g,length_mm,gtins\n"
        "MUG,400,120,\n"
        "PLATE,1.2kg,,\n"
        "BOWL,0,,\n"
        "CUP,200,,4006381333932\n"
        "SHOE-42,850,330,,extra\n"
        "LAMP,1200,7000,\n"
        "VASE,300,,\n"
        "VASE,310,,\n",
        encoding="utf-8",
    )
    code, out = _import(monkeypatch, database_url, path, capsys)
    assert code == 1
    assert out == (
        "line 2: MUG created\n"
        "line 3: refused: weight_g: '1.2kg' is not a whole number\n"
        "line 4: refused: weight_g: Input should be greater than or equal to 1\n"
        "line 5: refused: gtins: Value error, GTIN '4006381333932': The number's checksum or "
        "check digit is invalid.\n"
        "line 6: refused: 5 cells, the header has 4\n"
        "line 7: refused: length_mm: Input should be less than or equal to 5000\n"
        "line 8: refused: SKU 'VASE' is on lines 8, 9\n"
        "line 9: refused: SKU 'VASE' is on lines 8, 9\n"
        "1 created, 0 updated, 0 unchanged, 7 refused; 0 open RMA(s) re-announced\n"
    )
    assert list(_items(database_url)) == ["MUG"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sku,weight_kg\nMUG,1\n", "unknown column(s) 'weight_kg'; known: sku, name, weight_g"),
        ("sku,weight_g,WEIGHT_G\nMUG,1,2\n", "column(s) given twice: weight_g"),
        ("name,weight_g\nMug,1\n", "no 'sku' column"),
        ("", "empty file: a header row is needed"),
    ],
)
def test_a_bad_header_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, text: str, message: str
) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    path = tmp_path / "catalogue.csv"
    path.write_text(text, encoding="utf-8")
    code, out = _import(monkeypatch, url, path, capsys)
    assert code == 2
    assert out.startswith(f"import-catalogue: {path}: {message}")


def test_csv_check_validates_without_storing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    path = tmp_path / "catalogue.csv"
    path.write_text("sku,weight_g\nMUG,400\nPLATE,x\n", encoding="utf-8")
    assert _import(monkeypatch, url, path, capsys, "--check") == (
        1,
        "line 3: refused: weight_g: 'x' is not a whole number\n"
        "1 valid, 1 refused (nothing stored: --check)\n",
    )
    assert not (tmp_path / "g.db").exists()


def test_csv_import_reannounces_open_rmas_of_a_changed_sku(
    database_url: str, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    settings = Settings(site=site, database_url=database_url)
    db = Database(database_url)
    db.migrate()
    try:
        with db.session() as s:
            from gateway.services.reasons import seed_reasons

            seed_reasons(s)
            create_rma(s, settings, draft("R-1", 1))
    finally:
        db.dispose()
    monkeypatch.setenv("RS_SITE", site)
    path = tmp_path / "catalogue.csv"
    path.write_text("sku,weight_g\nMUG,400\n", encoding="utf-8")
    code, out = _import(monkeypatch, database_url, path, capsys)
    assert (code, out) == (
        0,
        "line 2: MUG created (1 open RMA(s) re-announced)\n"
        "1 created, 0 updated, 0 unchanged, 0 refused; 1 open RMA(s) re-announced\n"
        "stations learn re-announced RMAs at their next catch-up "
        "(reconnect, or the resync command)\n",
    )
    db = Database(database_url)
    try:
        with db.session() as s:
            [ann] = list_announcements(s, after_revision=1)
        assert (ann.number, ann.revision, ann.lines[0].weight_g) == ("R-1", 2, 400)
    finally:
        db.dispose()


def test_csv_cells_with_nul_are_refused_by_line_on_either_backend(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # PostgreSQL cannot store NUL in text: the row's write raised DataError and the whole
    # import stopped with a traceback (SQLite stored it)
    path = tmp_path / "catalogue.csv"
    path.write_text("sku,name,gtins\nMUG\x00,Mug,\nBOWL,Bo\x00wl,\nCUP,Cup,\n", encoding="utf-8")
    code, out = _import(monkeypatch, database_url, path, capsys)
    assert (code, out) == (
        1,
        "line 2: refused: sku: NUL character (U+0000) not allowed\n"
        "line 3: refused: name: NUL character (U+0000) not allowed\n"
        "line 4: CUP created\n"
        "1 created, 0 updated, 0 unchanged, 2 refused; 0 open RMA(s) re-announced\n",
    )
    assert _items(database_url) == {"CUP": ("Cup", None, None, None, None, [], None, None)}
