"""Order import: idempotent ``PUT /api/v1/orders/{ref}`` and the CSV import command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.db import Database
from gateway.main import main
from gateway.returns.order_csv import NATIVE, CsvError, import_orders
from gateway.services.orders import get_order
from gateway.settings import Settings

ORDER: dict[str, Any] = {
    "order_ref": "ORD-77",
    "customer": "Ann Example",
    "customer_email": "Ann@Example.COM",
    "delivered_at": "2026-11-20T10:00:00+01:00",
    "lines": [
        {
            "sku": "SHIRT-M",
            "name": "Linen shirt M",
            "gtin": "4006381333931",
            "category": "apparel",
            "ordered_quantity": 2,
            "delivered_quantity": 2,
            "unit_price_cents": 2990,
            "serials": ["S1", "S2"],
            "rfid_uids": ["dd:17:38:0a", "04a1b2c3d4e5f6"],
        },
        {"sku": "MUG", "ordered_quantity": 1, "delivered_quantity": 1, "unit_price_cents": 1250},
    ],
}


def test_put_creates_then_changes_nothing_then_updates(client: TestClient) -> None:
    first = client.put("/api/v1/orders/ORD-77", json=ORDER)
    assert first.status_code == 201
    body = first.json()
    assert body["customer_email"] == "ann@example.com"
    assert body["lines"][0] | {} == {
        "line_no": 1,
        "sku": "SHIRT-M",
        "name": "Linen shirt M",
        "category": "apparel",
        "ordered_quantity": 2,
        "delivered_quantity": 2,
        "unit_price_cents": 2990,
        "line_discount_cents": 0,
        "tax_rate_bp": 0,
        "gtin": "4006381333931",
        "serials": ["S1", "S2"],
        "rfid_uids": ["DD17380A", "04A1B2C3D4E5F6"],
        "returnable": 2,
    }
    again = client.put("/api/v1/orders/ORD-77", json=ORDER)
    assert (again.status_code, again.json()) == (200, body)
    changed = {**ORDER, "lines": [ORDER["lines"][0]]}
    updated = client.put("/api/v1/orders/ORD-77", json=changed)
    assert updated.status_code == 200
    assert [line["sku"] for line in updated.json()["lines"]] == ["SHIRT-M"]
    assert client.put("/api/v1/orders/OTHER", json=ORDER).status_code == 422


def test_update_cannot_drop_what_rmas_claim(client: TestClient) -> None:
    assert client.put("/api/v1/orders/ORD-77", json=ORDER).status_code == 201
    rma = {
        "order_ref": "ORD-77",
        "reason": "size",
        "resolution": "refund",
        "lines": [{"sku": "MUG", "quantity": 1}, {"sku": "SHIRT-M", "quantity": 2}],
    }
    assert client.post("/api/v1/rmas", json=rma).status_code == 201
    dropped = client.put("/api/v1/orders/ORD-77", json={**ORDER, "lines": [ORDER["lines"][0]]})
    assert dropped.status_code == 422
    assert dropped.json()["detail"] == "order line 2 (MUG) is on RMAs; it cannot go"
    fewer = {**ORDER["lines"][0], "delivered_quantity": 1}
    shrunk = client.put(
        "/api/v1/orders/ORD-77", json={**ORDER, "lines": [fewer, ORDER["lines"][1]]}
    )
    assert shrunk.status_code == 422
    assert shrunk.json()["detail"] == (
        "order line 1 (SHIRT-M): 2 unit(s) already returned or on open RMAs, "
        "more than the 1 delivered"
    )
    renamed = {**ORDER, "customer": "Ann E."}
    assert client.put("/api/v1/orders/ORD-77", json=renamed).json()["customer"] == "Ann E."


CSV = (
    "order_number,customer_email,customer,delivered_on,sku,name,gtin,category,"
    "quantity_delivered,unit_price,serials,rfid_uids\n"
    "A-1,ann@example.com,Ann,2026-11-20,SHIRT-M,Linen shirt,4006381333931,apparel,2,29.90,"
    "S1|S2,dd:17:38:0a|04a1b2c3d4e5f6\n"
    """B-2,bob@example.com,Bob,2026-11-21T15:30:00+01:00,PHONE,,,electronics,1,199,,
A-1,ann@example.com,Ann,2026-11-20,MUG,Mug,,,1,"12,50",,
"""
)


def _run(
    monkeypatch: pytest.MonkeyPatch, url: str, path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    monkeypatch.setenv("RS_DATABASE_URL", url)
    monkeypatch.setenv("RS_SHOP_TIMEZONE", "Europe/Paris")
    code = main(["import-orders", str(path)])
    return code, capsys.readouterr().out


def test_csv_import_is_idempotent_on_both_backends(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(CSV, encoding="utf-8")
    assert _run(monkeypatch, database_url, path, capsys) == (
        0,
        "A-1: created\nB-2: created\n2 created, 0 updated, 0 unchanged, 0 refused\n",
    )
    assert _run(monkeypatch, database_url, path, capsys) == (
        0,
        "A-1: unchanged\nB-2: unchanged\n0 created, 0 updated, 2 unchanged, 0 refused\n",
    )
    path.write_text(CSV.replace("PHONE,,,electronics,1,199", "PHONE,,,electronics,1,189"))
    assert _run(monkeypatch, database_url, path, capsys)[1] == (
        "A-1: unchanged\nB-2: updated\n0 created, 1 updated, 1 unchanged, 0 refused\n"
    )
    db = Database(database_url)
    try:
        with db.session() as s:
            a1 = get_order(s, "A-1")
            b2 = get_order(s, "B-2")
            assert a1 is not None and b2 is not None
            assert (a1.customer_email, a1.delivered_at and a1.delivered_at.isoformat()) == (
                "ann@example.com",
                "2026-11-20T11:00:00+00:00",
            )
            assert [
                (ln.line_no, ln.sku, ln.name, ln.unit_price_cents, ln.serials, ln.rfid_uids)
                for ln in a1.lines
            ] == [
                (1, "SHIRT-M", "Linen shirt", 2990, ["S1", "S2"], ["DD17380A", "04A1B2C3D4E5F6"]),
                (2, "MUG", "Mug", 1250, [], []),
            ]
            assert [(ln.sku, ln.category, ln.unit_price_cents) for ln in b2.lines] == [
                ("PHONE", "electronics", 18900)
            ]
    finally:
        db.dispose()


def test_csv_import_reports_bad_orders_and_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    path = tmp_path / "orders.csv"
    path.write_text(CSV.replace("1,199", "1,lots"), encoding="utf-8")
    code, out = _run(monkeypatch, url, path, capsys)
    assert code == 1
    assert out == (
        "A-1: created\n"
        "B-2: refused: line 3, column unit_price: 'lots' is not an amount\n"
        "1 created, 0 updated, 0 unchanged, 1 refused\n"
    )
    path.write_text("order_number,sku\nA,B\n", encoding="utf-8")
    code, out = _run(monkeypatch, url, path, capsys)
    assert (code, out) == (
        2,
        f"import-orders: {path}: missing column(s) customer_email, delivered_on, "
        "quantity_delivered, unit_price\n",
    )


STRICT_HEADER = (
    "order_number,customer_email,delivered_on,currency,order_discount,voucher,shipping_paid,"
    "prices_include_tax,sku,quantity_delivered,unit_price,line_discount,tax_rate,name\n"
)


def test_csv_import_is_strict_per_cell_and_refuses_whole_orders(
    db: Database, tmp_path: Path
) -> None:
    rows = [
        "O-1,a@example.com,2026-11-20,EUR,5.00,2,4.95,false,SHIRT,2,29.90,3,20,Shirt",
        "O-1,,,,,,,,MUG,1,12.50,,7.7,Mug",
        "O-2,b@example.com,2026-11-20,EUR,,,,,SHIRT,1,10,,,",
        "O-2,b@example.com,2026-11-20,EUR,,,,,MUG,1,NaN,,,",
        "O-3,c@example.com,2026-11-20,EUR,,,,,MUG,1,1,,,Caf\udcff",
        "O-4,d@example.com,2026-11-20,EUR,,,,,{},1,1,,,".format("S" * 65),
        "O-5,e@example.com,2026-11-20,JPY,,,,,MUG,1,1.5,,,",
        "O-6,f@example.com,2026-11-20,EUR,,,,,MUG,1,1,,,",
        "O-6,g@example.com,,,,,,,CUP,1,1,,,",
        "O-7,h@example.com,2026-11-20,EUR,,,,,MUG,1",
        "O-8,i@example.com,2026-11-20,EUR,,,,,MUG,1,1,,120,",
        "O-9,j@example.com,2026-11-20,EUR,90,,,,MUG,1,1,,,",
    ]
    path = tmp_path / "orders.csv"
    text = STRICT_HEADER + "\n".join(rows) + "\n"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    report = import_orders(db, path, Settings(database_url=db.url))
    assert [r.describe() for r in report.results] == [
        "O-1: created",
        "O-2: refused: line 5, column unit_price: 'NaN' is not a finite amount",
        "O-3: refused: line 6, column name: not valid UTF-8 text",
        "O-4: refused: line 7, column sku: 65 characters, at most 64",
        "O-5: refused: line 8, column unit_price: '1.5' has more than 0 decimal(s) for JPY",
        "O-6: refused: line 10, column customer_email: 'g@example.com' differs from "
        "'f@example.com' on line 9 (same order)",
        "O-7: refused: line 11: 10 cells, the header has 14",
        "O-8: refused: line 12, column tax_rate: '120' is not a percentage within 0..100",
        "O-9: refused: line 13: order discount and voucher (9000) exceed the lines (100)",
    ]
    assert report.summary() == "1 created, 0 updated, 0 unchanged, 8 refused"
    with db.session() as s:
        assert [o for o in ("O-2", "O-3", "O-4", "O-5", "O-6", "O-7") if get_order(s, o)] == []
        order = get_order(s, "O-1")
        assert order is not None
        assert (
            order.discount_cents,
            order.voucher_cents,
            order.shipping_paid_cents,
            order.tax_inclusive,
        ) == (500, 200, 495, False)
        assert [
            (ln.sku, ln.unit_price_cents, ln.line_discount_cents, ln.tax_rate_bp, ln.name)
            for ln in order.lines
        ] == [("SHIRT", 2990, 300, 2000, "Shirt"), ("MUG", 1250, 0, 770, "Mug")]


def test_an_unknown_column_refuses_the_file_unless_ignored(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_number,customer_email,delivered_on,sku,quantity_delivered,unit_price,Coupon\n"
        "A,a@example.com,2026-11-20,MUG,1,1.00,SAVE10\n",
        encoding="utf-8",
    )
    settings = Settings(database_url=db.url)
    with pytest.raises(CsvError) as refused:
        import_orders(db, path, settings)
    assert str(refused.value) == (
        "unknown column(s) 'coupon' for the native layout (ignore them with --ignore-column NAME)"
    )
    report = import_orders(db, path, settings, NATIVE.ignoring(["Coupon"]))
    assert [r.describe() for r in report.results] == ["A: created"]
    path.write_bytes(b"order_number,sku,r\xe9f\n")
    with pytest.raises(CsvError, match=r"unknown column\(s\) 'r\\\\udce9f'"):
        import_orders(db, path, settings)


def test_csv_cells_with_nul_refuse_their_order_on_either_backend(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # PostgreSQL cannot store NUL in text: the order's write raised DataError and the whole
    # import stopped with a traceback (SQLite stored it)
    path = tmp_path / "orders.csv"
    path.write_text(CSV.replace("Linen shirt", "Linen\x00shirt"), encoding="utf-8")
    assert _run(monkeypatch, database_url, path, capsys) == (
        1,
        "A-1: refused: line 2, column name: NUL character (U+0000) not allowed\n"
        "B-2: created\n"
        "1 created, 0 updated, 0 unchanged, 1 refused\n",
    )
    db = Database(database_url)
    try:
        with db.session() as s:
            assert get_order(s, "A-1") is None and get_order(s, "B-2") is not None
    finally:
        db.dispose()


def test_a_csv_delivery_outside_the_calendar_range_refuses_its_order_naming_the_cell(
    db: Database, tmp_path: Path
) -> None:
    """Regression: year 9999 and 1969 were stored; ``0001-01-01T00:00:00+14:00`` (UTC: year
    0) overflowed storing it and stopped the whole import."""
    header = "order_number,customer_email,delivered_on,sku,quantity_delivered,unit_price\n"
    rows = [
        "O-1,a@example.com,9999-12-31,MUG,1,1",
        "O-2,b@example.com,1969-12-31,MUG,1,1",
        "O-3,c@example.com,0001-01-01T00:00:00+14:00,MUG,1,1",
        "O-4,d@example.com,2999-12-31,MUG,1,1",
        "O-5,e@example.com,1970-01-01T00:00:00Z,MUG,1,1",
    ]
    path = tmp_path / "orders.csv"
    path.write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    report = import_orders(db, path, Settings(database_url=db.url))
    early = "Input should be greater than or equal to 1970-01-01T00:00:00Z"
    assert [r.describe() for r in report.results] == [
        "O-1: refused: line 2, column delivered_on: Input should be less than 3000-01-01T00:00:00Z",
        f"O-2: refused: line 3, column delivered_on: {early}",
        f"O-3: refused: line 4, column delivered_on: {early}",
        "O-4: created",
        "O-5: created",
    ]
    with db.session() as s:
        assert [o for o in ("O-1", "O-2", "O-3") if get_order(s, o)] == []
        last = get_order(s, "O-4")
        assert last is not None and last.delivered_at is not None
        assert last.delivered_at.isoformat() == "2999-12-31T12:00:00+00:00"
