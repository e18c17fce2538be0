"""``returns-gateway import-orders FILE.csv``: load shop orders from a CSV file.

One row per order line, rows of one order together or not (they are grouped by order
number, lines keep the file's order). Columns (header row, names case-insensitive):

``order_number, customer_email, delivered_on, sku, quantity_delivered, unit_price``
(required) and ``customer, customer_address, customer_language, currency, name, gtin,
quantity_ordered, category, serials, rfid_uids`` (optional; the address's lines separated
by ``|`` or newlines, the language a BCP 47 tag such as ``fr``). ``delivered_on`` is a
date (the shop's calendar) or an ISO date-time with offset; ``unit_price`` is a decimal
amount paid per unit after discounts (``19.90``); ``serials`` / ``rfid_uids`` are separated
by ``|``. Each order is stored with :func:`gateway.services.orders.upsert_order`, so
importing the same file twice changes nothing.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from gateway.db import Database
from gateway.schemas import OrderDraft
from gateway.services.orders import InvalidOrder, upsert_order
from gateway.settings import Settings

REQUIRED = (
    "order_number",
    "customer_email",
    "delivered_on",
    "sku",
    "quantity_delivered",
    "unit_price",
)


@dataclass
class ImportReport:
    """What an import did: orders per outcome and one message per refused order."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for people: counts of created, updated, unchanged and refused orders."""
        return (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{len(self.errors)} refused"
        )


class CsvError(ValueError):
    """The file is not an order CSV (missing columns)."""


def _cents(text: str) -> int:
    try:
        value = Decimal(text.strip().replace(",", "."))
    except InvalidOperation as exc:
        raise ValueError(f"unit_price {text!r} is not an amount") from exc
    return int((value * 100).to_integral_value())


def _delivered_at(text: str, zone: ZoneInfo) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time(12, 0), tzinfo=zone)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"delivered_on {text!r} needs a UTC offset")
    return moment


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split("|") if part.strip()]


def drafts_from_rows(
    rows: Iterable[dict[str, str]], zone: ZoneInfo
) -> tuple[list[OrderDraft], list[str]]:
    """Group CSV rows into order drafts; return them and one error per refused order."""
    grouped: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for n, row in enumerate(rows, start=2):
        clean = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        grouped.setdefault(clean.get("order_number", ""), []).append((n, clean))
    drafts: list[OrderDraft] = []
    errors: list[str] = []
    for ref, lines in grouped.items():
        first_row, head = lines[0]
        try:
            body: dict[str, Any] = {
                "order_ref": ref,
                "customer": head.get("customer", ""),
                "customer_email": head["customer_email"],
                "customer_address": "\n".join(_split(head.get("customer_address"))),
                "customer_language": head.get("customer_language", ""),
                "currency": head.get("currency") or "EUR",
                "delivered_at": _delivered_at(head["delivered_on"], zone),
                "lines": [
                    {
                        "sku": row["sku"],
                        "category": row.get("category") or None,
                        "name": row.get("name", ""),
                        "gtin": row.get("gtin") or None,
                        "delivered_quantity": int(row["quantity_delivered"]),
                        "ordered_quantity": int(
                            row.get("quantity_ordered") or row["quantity_delivered"]
                        )
                        or 1,
                        "unit_price_cents": _cents(row["unit_price"]),
                        "serials": _split(row.get("serials")),
                        "rfid_uids": _split(row.get("rfid_uids")),
                    }
                    for _n, row in lines
                ],
            }
            drafts.append(OrderDraft.model_validate(body))
        except (ValueError, ValidationError) as exc:
            errors.append(f"order {ref!r} (row {first_row}): {exc}")
    return drafts, errors


def import_orders(db: Database, path: Path, settings: Settings) -> ImportReport:
    """Import (create or update) every order of the CSV file at ``path``.

    Raises:
        CsvError: when the header lacks a required column.
        OSError: when the file cannot be read.
    """
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = {h.strip().lower() for h in reader.fieldnames or []}
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise CsvError(f"{path}: missing column(s) {', '.join(missing)}")
        drafts, errors = drafts_from_rows(reader, settings.zone)
    report = ImportReport(errors=errors)
    for draft in drafts:
        with db.session() as session:
            try:
                _order, outcome = upsert_order(session, draft)
            except InvalidOrder as exc:
                session.rollback()
                report.errors.append(f"order {draft.order_ref!r}: {exc}")
                continue
        setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Run the import command; exit 0 when every order was stored, 1 otherwise, 2 on usage."""
    parser = argparse.ArgumentParser(
        prog="returns-gateway import-orders",
        description="Create or update orders from a CSV file (one row per order line) in "
        "the database of RS_DATABASE_URL. Importing the same file twice changes nothing.",
    )
    parser.add_argument("file", type=Path, help="CSV with a header row")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"import-orders: invalid settings:\n{exc}")
        return 2
    db = Database(settings.database_url)
    try:
        db.migrate()
        report = import_orders(db, args.file, settings)
    except (CsvError, OSError) as exc:
        print(f"import-orders: {exc}")
        return 2
    finally:
        db.dispose()
    for error in report.errors:
        print(f"refused: {error}")
    print(report.summary())
    return 1 if report.errors else 0
