"""``import-orders`` on a Shopify admin "Export orders" CSV built on the real header.

The header is Shopify's (``data/shopify-orders-export-columns.txt``, one column a line,
copied from ``shared/data/orders/``) plus a column a newer Shopify version might add.
Every expected figure below is worked out by hand from the file's cells.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from gateway.db import Database
from gateway.main import main
from gateway.models import OrderLine
from gateway.returns.order_csv import CsvError, import_orders
from gateway.returns.refunds import paid_lines, unit_share
from gateway.schemas import order_terms
from gateway.services.orders import get_order
from gateway.settings import Settings

HEADER = [
    line.split("\t", 1)[1]
    for line in (Path(__file__).parent / "data" / "shopify-orders-export-columns.txt")
    .read_text(encoding="utf-8")
    .splitlines()
    if line.strip()
] + ["Checkout Channel"]  # a column this project does not know: ignored

FR = {
    "Email": "zoe@example.fr",
    "Financial Status": "paid",
    "Currency": "EUR",
    "Subtotal": "65.07",
    "Shipping": "4.95",
    "Taxes": "10.84",
    "Total": "70.02",
    "Discount Code": "WELCOME10",
    "Discount Amount": "7.23",
    "Created at": "2026-11-18 09:02:11 +0100",
    "Fulfilled at": "2026-11-20 10:15:00 +0100",
    "Billing Name": "Zoë Martin",
    "Shipping Name": "Zoë Martin",
    "Shipping Address1": "12 rue de la Paix",
    "Shipping City": "Paris",
    "Shipping Zip": "75002",
    "Shipping Country": "FR",
    "Tax 1 Name": "FR TVA 20%",
    "Tax 1 Value": "10.84",
    "Id": "5678901234",
}
US = {
    "Email": "sam@example.com",
    "Currency": "USD",
    "Subtotal": "68.00",
    "Shipping": "6.00",
    "Taxes": "2.62",
    "Total": "76.62",
    "Discount Amount": "7.00",
    "Fulfilled at": "2026-11-19 16:45:00 -0500",
    "Billing Name": "Sam Lee",
    "Shipping Name": "Sam Lee",
    "Shipping Company": "Lee & Co",
    "Shipping Address1": "1 Main St",
    "Shipping Address2": "Apt 4",
    "Shipping City": "Brooklyn",
    "Shipping Zip": "11201",
    "Shipping Province": "NY",
    "Shipping Country": "US",
    "Tax 1 Name": "NY State Tax 4%",
    "Tax 2 Name": "New York City Tax 4.5%",
    "Checkout Channel": "online",
}


def _line(qty: str, name: str, price: str, sku: str, **more: str) -> dict[str, str]:
    return {
        "Lineitem quantity": qty,
        "Lineitem name": name,
        "Lineitem price": price,
        "Lineitem sku": sku,
        "Lineitem taxable": "true",
        "Lineitem discount": "0.00",
        **more,
    }


ROWS = [
    {"Name": "#1001", **FR, **_line("2", "Linen shirt - M", "29.90", "SHIRT-M")},
    {"Name": "#1001", **_line("1", "Mug", "12.50", "MUG")},
    {"Name": "#1002", **US, **_line("1", "Hat", "20.00", "HAT", **{"Lineitem discount": "2.00"})},
    {"Name": "#1002", **_line("3", "Socks", "5.00", "SOCKS")},
    {"Name": "#1002", **_line("1", "Gift bag", "40.00", "BAG", **{"Lineitem taxable": "false"})},
    # Total is neither tax-inclusive nor tax-exclusive: refused whole
    {"Name": "#1003", **US, "Total": "99.00", **_line("1", "Hat", "20.00", "HAT")},
]


def _export(rows: list[dict[str, str]], header: list[str] = HEADER) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _line_of(ln: OrderLine) -> tuple[str, str, int, int, int, int, int]:
    return (
        ln.sku,
        ln.name,
        ln.ordered_quantity,
        ln.delivered_quantity,
        ln.unit_price_cents,
        ln.line_discount_cents,
        ln.tax_rate_bp,
    )


def test_a_shopify_export_imports_as_is(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "orders_export_1.csv"
    path.write_text(_export(ROWS), encoding="utf-8")
    report = import_orders(db, path, Settings(database_url=db.url))
    assert [r.describe() for r in report.results] == [
        "#1001: created",
        "#1002: created",
        "#1003: refused: line 7: Total 9900 is neither Subtotal + Shipping (7400, tax "
        "included) nor Subtotal + Shipping + Taxes (7662) (minor units)",
    ]
    with db.session() as s:
        fr, us = get_order(s, "#1001"), get_order(s, "#1002")
        assert fr is not None and us is not None
        assert get_order(s, "#1003") is None
        assert (
            fr.customer,
            fr.customer_email,
            fr.customer_address,
            fr.currency,
            fr.delivered_at and fr.delivered_at.isoformat(),
            fr.discount_cents,
            fr.shipping_paid_cents,
            fr.tax_inclusive,
        ) == (
            "Zoë Martin",
            "zoe@example.fr",
            "Zoë Martin\n12 rue de la Paix\n75002 Paris\nFR",
            "EUR",
            "2026-11-20T09:15:00+00:00",
            723,
            495,
            True,
        )
        assert [_line_of(ln) for ln in fr.lines] == [
            ("SHIRT-M", "Linen shirt - M", 2, 2, 2990, 0, 2000),
            ("MUG", "Mug", 1, 1, 1250, 0, 2000),
        ]
        # 7.23 over 59.80 and 12.50: exactly 5.98 and 1.25; prices include the 20 % VAT
        fr_paid = paid_lines(order_terms(fr))
        assert [(p.order_discount_cents, p.paid_cents) for p in fr_paid] == [
            (598, 5382),
            (125, 1125),
        ]
        # tax in 53.82: 53.82 - 53.82 / 1.2 = 8.97; in 11.25: 11.25 - 9.375 -> 1.87
        assert [p.tax_cents for p in fr_paid] == [897, 187]

        assert (
            us.customer_address,
            us.currency,
            us.delivered_at and us.delivered_at.isoformat(),
            us.shipping_paid_cents,
            us.tax_inclusive,
        ) == (
            "Sam Lee\nLee & Co\n1 Main St\nApt 4\n11201 Brooklyn\nNY\nUS",
            "USD",
            "2026-11-19T21:45:00+00:00",
            600,
            False,
        )
        # Discount Amount 7.00 = 2.00 on the hat's line + 5.00 for the order
        assert us.discount_cents == 500
        assert [_line_of(ln) for ln in us.lines] == [
            ("HAT", "Hat", 1, 1, 2000, 200, 850),
            ("SOCKS", "Socks", 3, 3, 500, 0, 850),
            ("BAG", "Gift bag", 1, 1, 4000, 0, 0),
        ]
        # 5.00 over 18.00 / 15.00 / 40.00 (of 73.00): quotas 1.2329, 1.0274, 2.7397 ->
        # floors 1.23 + 1.02 + 2.73 = 4.98, the 2 cents left to the largest remainders
        # (0.97 bag, 0.74 socks). Tax 8.5 % on top: 16.77 -> 1.42545 -> 1.43 (half up),
        # 13.97 -> 1.18745 -> 1.19, bag not taxable.
        us_paid = paid_lines(order_terms(us))
        assert [(p.order_discount_cents, p.tax_cents, p.paid_cents) for p in us_paid] == [
            (123, 143, 1820),
            (103, 119, 1516),
            (274, 0, 3726),
        ]
        # the shop's own Taxes cell (2.62) is what the lines' tax adds up to
        assert sum(p.tax_cents for p in us_paid) == 262
        # per unit of socks: 15.16 over 3 units -> 5.06, 5.05, 5.05
        assert [unit_share(1516, 3, k, 1) for k in range(3)] == [506, 505, 505]


def test_import_orders_command_takes_a_shopify_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "orders_export_1.csv"
    path.write_text(_export(ROWS[:5]), encoding="utf-8")
    monkeypatch.setenv("RS_DATABASE_URL", f"sqlite:///{tmp_path / 'g.db'}")
    assert main(["import-orders", str(path)]) == 0
    assert capsys.readouterr().out == (
        "#1001: created\n#1002: created\n2 created, 0 updated, 0 unchanged, 0 refused\n"
    )
    assert main(["import-orders", str(path)]) == 0
    assert capsys.readouterr().out.endswith("0 created, 0 updated, 2 unchanged, 0 refused\n")


def test_an_unknown_layout_is_refused_naming_what_was_expected(
    db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "woo.csv"
    path.write_text("Order ID,Item SKU,Qty\n17,MUG,1\n", encoding="utf-8")
    with pytest.raises(CsvError) as refused:
        import_orders(db, path, Settings(database_url=db.url))
    assert str(refused.value) == (
        "unknown layout: header 'item sku', 'order id', 'qty' is neither the native order "
        "CSV (columns order_number, customer_email, delivered_on, sku, quantity_delivered, "
        'unit_price, ...) nor a Shopify admin "Export orders" CSV (columns name, lineitem '
        "quantity, lineitem price, lineitem sku, ...)"
    )
    # a Shopify file missing a required column says which
    path.write_text(_export([], [h for h in HEADER if h != "Lineitem price"]), encoding="utf-8")
    with pytest.raises(CsvError, match=r"^missing column\(s\) lineitem price$"):
        import_orders(db, path, Settings(database_url=db.url))


def test_a_shopify_fulfilment_outside_the_calendar_range_refuses_its_order(
    db: Database, tmp_path: Path
) -> None:
    """Regression: a fulfilment in year 9999 was stored as the delivery."""
    path = tmp_path / "orders_export_1.csv"
    rows = [
        {"Name": "#1001", **FR, "Fulfilled at": "9999-12-31 10:15:00 +0100"},
        {"Name": "#1002", **FR, "Fulfilled at": "2999-12-31 10:15:00 +0100"},
    ]
    for row in rows:
        row.update(_line("1", "Mug", "12.50", "MUG"))
        row.update({"Subtotal": "12.50", "Total": "17.45", "Taxes": "2.08"})
        row.update({"Discount Code": "", "Discount Amount": "0.00", "Tax 1 Value": "2.08"})
    path.write_text(_export(rows), encoding="utf-8")
    report = import_orders(db, path, Settings(database_url=db.url))
    assert [r.describe() for r in report.results] == [
        "#1001: refused: line 2, column fulfilled at: Input should be less than "
        "3000-01-01T00:00:00Z",
        "#1002: created",
    ]
