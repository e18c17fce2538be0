"""``returns-gateway import-orders FILE.csv``: load shop orders from a CSV file, strictly.

One row per order line, rows of one order together or not (they are grouped by order
number, lines keep the file's order). The header row names the columns (case-insensitive,
any order); :data:`NATIVE` maps each known name to a field of
:class:`gateway.schemas.OrderDraft` and says how its cells are read. Another file layout
(a shop's own export) is another :class:`Layout` table: the command recognises a Shopify
admin "Export orders" file by its header (:data:`gateway.returns.shopify_csv.SHOPIFY`,
see :func:`detect_layout`) and refuses a header of neither layout.

Native columns, required: ``order_number, customer_email, delivered_on, sku,
quantity_delivered, unit_price``; optional, per order: ``customer, customer_address,
customer_language, currency, order_discount, voucher, shipping_paid,
prices_include_tax``; per line: ``name, gtin, quantity_ordered, category, line_discount,
tax_rate, serials, rfid_uids``. Amounts are decimal amounts of the order's currency
(``19.90``, ``19,90``; no more decimals than the currency has, ISO 4217 via
:func:`gateway.returns.refunds.to_minor_units`); ``unit_price`` is before the line's and
the order's discounts (see :mod:`gateway.returns.refunds`); ``tax_rate`` a percentage
(``20``, ``7.7``); ``prices_include_tax`` ``true``/``false`` (default true);
``delivered_on`` a date (the shop's calendar) or an ISO date-time with offset, in UTC
within 1970-01-01 .. 2999-12-31 (:data:`gateway.schemas.BoundedDatetime`); the
address's lines separated by ``|`` or newlines; ``serials`` / ``rfid_uids`` by ``|``.
An order-level cell may be left blank on an order's other rows, but not differ.

Strictness (every boundary is hostile): a column the layout does not know refuses the
whole file unless the layout (or ``--ignore-column``) says to ignore it; a cell that is
not valid UTF-8, holds a NUL character (PostgreSQL cannot store one), is longer than its
column allows, or is not a value of its kind (a non-finite price, ``1.5`` yen) is an error
naming the file's line and column, and nothing of that order is stored; the other orders
go on. The command prints one result per order. Each order is stored with
:func:`gateway.services.orders.upsert_order`, so importing the same file twice changes
nothing.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from gateway.db import Database
from gateway.returns.refunds import RefundError, minor_unit_exponent, to_minor_units
from gateway.schemas import OrderDraft
from gateway.services.orders import InvalidOrder, upsert_order
from gateway.settings import Settings
from protocol.text import NUL

#: Bounds of a file: cells beyond this are refused by the CSV reader itself.
MAX_FIELD_CHARS = 200_000


class CsvError(ValueError):
    """The file is not an order CSV of the layout (missing, unknown or repeated columns)."""


class CellError(ValueError):
    """A cell that cannot be read; the message names the file's line and the column."""


@dataclass(frozen=True)
class CellContext:
    """What reading a cell may depend on: the order's currency, the shop's time zone."""

    currency: str
    zone: ZoneInfo


Parser = Callable[[str, CellContext], Any]


def _shown(text: str) -> str:
    """``text`` printable whatever bytes it came from (undecodable ones as ``\\udcXX``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _text(text: str, _ctx: CellContext) -> str:
    return text


def _optional(text: str, _ctx: CellContext) -> str | None:
    return text or None


def _count(text: str, _ctx: CellContext) -> int:
    if not re.fullmatch(r"[0-9]{1,6}", text):
        raise ValueError(f"{text!r} is not a whole number of units")
    return int(text)


def _money(text: str, ctx: CellContext) -> int:
    try:
        return to_minor_units(text, ctx.currency)
    except RefundError as exc:
        raise ValueError(str(exc)) from exc


def _percent_bp(text: str, _ctx: CellContext) -> int:
    try:
        value = Decimal(text.replace(",", "."))
    except InvalidOperation as exc:
        raise ValueError(f"{text!r} is not a percentage") from exc
    if not value.is_finite() or not 0 <= value <= 100:
        raise ValueError(f"{text!r} is not a percentage within 0..100")
    bp = value * 100
    if bp != bp.to_integral_value():
        raise ValueError(f"{text!r} has more than 2 decimals")
    return int(bp)


def _flag(text: str, _ctx: CellContext) -> bool:
    value = text.lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise ValueError(f"{text!r} is not true or false")


def _parts(text: str, _ctx: CellContext) -> list[str]:
    return [part.strip() for part in text.split("|") if part.strip()]


def _address(text: str, ctx: CellContext) -> str:
    return "\n".join(_parts(text, ctx))


def _delivered_at(text: str, ctx: CellContext) -> datetime | None:
    if not text:
        return None
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time(12, 0), tzinfo=ctx.zone)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} needs a UTC offset")
    return moment


@dataclass(frozen=True)
class Column:
    """One column of a layout: the header name, the draft field it fills, how to read it.

    ``order_level``: a field of the order (the same on every row of it), else of the line.
    ``max_chars`` bounds the cell; ``default`` is used when the cell is blank.
    """

    header: str
    target: str
    parse: Parser
    order_level: bool = False
    required: bool = False
    max_chars: int = 200
    default: Any = None


@dataclass(frozen=True)
class Layout:
    """A file layout: its columns by header name, and the header names it ignores.

    ``ignore_unknown``: every header name the layout does not know is ignored (a shop's
    export whose column set changes between versions). ``finish`` turns the cells read
    into the draft's body (e.g. derived fields from ``_``-prefixed targets, which it
    removes); it raises ``ValueError`` for an order that cannot be taken as it is.
    ``signature``: header names (lower case) that tell this layout apart.
    """

    name: str
    columns: tuple[Column, ...]
    ignored: frozenset[str] = frozenset()
    ignore_unknown: bool = False
    finish: Callable[[dict[str, Any]], None] | None = None
    signature: frozenset[str] = frozenset()

    def ignoring(self, names: Iterable[str]) -> Layout:
        """The same layout, also ignoring the columns ``names`` (case-insensitive)."""
        return replace(self, ignored=self.ignored | {n.strip().lower() for n in names})

    def bind(self, header: Sequence[str]) -> list[Column | None]:
        """The column of each header cell (None: ignored).

        Raises:
            CsvError: a required column is missing, a column is unknown (and not
                ignored) or appears twice.
        """
        known = {c.header: c for c in self.columns}
        names = [h.strip().lower() for h in header]
        unknown = [
            _shown(n)
            for n in names
            if n not in known and n not in self.ignored and not self.ignore_unknown
        ]
        if unknown:
            raise CsvError(
                f"unknown column(s) {', '.join(repr(n) for n in unknown)} for the {self.name} "
                "layout (ignore them with --ignore-column NAME)"
            )
        twice = sorted({_shown(n) for n in names if names.count(n) > 1})
        if twice:
            raise CsvError(f"column(s) {', '.join(twice)} appear more than once")
        missing = [c.header for c in self.columns if c.required and c.header not in names]
        if missing:
            raise CsvError(f"missing column(s) {', '.join(missing)}")
        return [known.get(n) for n in names]


NATIVE = Layout(
    name="native",
    columns=(
        Column("order_number", "order_ref", _text, order_level=True, required=True, max_chars=64),
        Column("customer_email", "customer_email", _text, order_level=True, required=True),
        Column("delivered_on", "delivered_at", _delivered_at, order_level=True, required=True),
        Column("customer", "customer", _text, order_level=True, default=""),
        Column("customer_address", "customer_address", _address, order_level=True, default=""),
        Column("customer_language", "customer_language", _text, order_level=True, default=""),
        Column("currency", "currency", _text, order_level=True, max_chars=3),
        Column("order_discount", "discount_cents", _money, order_level=True, default=0),
        Column("voucher", "voucher_cents", _money, order_level=True, default=0),
        Column("shipping_paid", "shipping_paid_cents", _money, order_level=True, default=0),
        Column("prices_include_tax", "tax_inclusive", _flag, order_level=True, default=True),
        Column("sku", "sku", _text, required=True, max_chars=64),
        Column("quantity_delivered", "delivered_quantity", _count, required=True),
        Column("unit_price", "unit_price_cents", _money, required=True),
        Column("name", "name", _text, default=""),
        Column("gtin", "gtin", _optional, max_chars=14),
        Column("quantity_ordered", "ordered_quantity", _count),
        Column("category", "category", _optional, max_chars=64),
        Column("line_discount", "line_discount_cents", _money, default=0),
        Column("tax_rate", "tax_rate_bp", _percent_bp, default=0),
        Column("serials", "serials", _parts, max_chars=MAX_FIELD_CHARS, default=[]),
        Column("rfid_uids", "rfid_uids", _parts, max_chars=MAX_FIELD_CHARS, default=[]),
    ),
)
"""The project's own order CSV (see the module docstring)."""


@dataclass(frozen=True)
class Row:
    """One data row: the file line it starts on and its cells by column (raw, stripped).

    ``problem`` says why the row cannot be read as a whole (its order is refused).
    """

    line: int
    cells: dict[str, str]
    problem: str = ""


@dataclass
class OrderResult:
    """What happened to one order of the file: created / updated / unchanged / refused."""

    order_ref: str
    line: int
    outcome: str
    errors: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line for people, e.g. ``A-1: created`` or ``B-2: refused: line 3: ...``."""
        if not self.errors:
            return f"{self.order_ref}: {self.outcome}"
        return f"{self.order_ref}: {self.outcome}: {'; '.join(self.errors)}"


@dataclass
class ImportReport:
    """What an import did: one result per order (file order) and unreadable rows."""

    results: list[OrderResult] = field(default_factory=list)
    row_errors: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        """Orders with this outcome."""
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def created(self) -> int:
        """Orders created."""
        return self.count("created")

    @property
    def updated(self) -> int:
        """Orders updated."""
        return self.count("updated")

    @property
    def unchanged(self) -> int:
        """Orders already stored as in the file."""
        return self.count("unchanged")

    @property
    def errors(self) -> list[str]:
        """One message per refused order or unreadable row."""
        return [*self.row_errors, *(r.describe() for r in self.results if r.errors)]

    def summary(self) -> str:
        """One line for people: counts of created, updated, unchanged and refused orders."""
        return (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.count('refused')} refused"
        )


def read_rows(
    lines: Iterable[str], layout: Layout
) -> tuple[list[Column | None], Iterator[Row | str]]:
    """Bind the header and yield each data row, or a message for an unreadable one.

    ``lines`` is the decoded file (undecodable bytes as surrogate escapes). A row's cells
    are checked for encoding and length here, the message naming line and column.

    Raises:
        CsvError: no header, or a header the layout refuses (:meth:`Layout.bind`).
    """
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise CsvError(f"no readable header row ({exc or 'empty file'})") from exc
    bound = layout.bind(header)

    def rows() -> Iterator[Row | str]:
        start = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield f"line {start}: unreadable row ({exc})"
                start = reader.line_num + 1
                continue
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            problem = ""
            if len(cells) != len(bound):
                problem = f"line {line}: {len(cells)} cells, the header has {len(bound)}"
            named = zip(bound, cells, strict=False)
            yield Row(line, {c.header: v.strip() for c, v in named if c is not None}, problem)

    return bound, rows()


def _check_cell(row: Row, column: Column) -> str:
    text = row.cells.get(column.header, "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CellError(f"line {row.line}, column {column.header}: not valid UTF-8 text") from exc
    if NUL in text:  # PostgreSQL cannot store it (SQLite would): the order is refused
        raise CellError(
            f"line {row.line}, column {column.header}: NUL character (U+0000) not allowed"
        )
    if len(text) > column.max_chars:
        raise CellError(
            f"line {row.line}, column {column.header}: {len(text)} characters, at most "
            f"{column.max_chars}"
        )
    return text


def _read(row: Row, column: Column, ctx: CellContext) -> Any:
    text = _check_cell(row, column)
    if not text:
        return column.default
    try:
        return column.parse(text, ctx)
    except ValueError as exc:
        raise CellError(f"line {row.line}, column {column.header}: {exc}") from exc


def _order_cell(rows: list[Row], column: Column) -> Row:
    """The row whose cell holds the order's value (blank on the others, never different)."""
    first: Row | None = None
    for row in rows:
        text = _check_cell(row, column)
        if not text:
            continue
        if first is None:
            first = row
        elif text != first.cells[column.header]:
            raise CellError(
                f"line {row.line}, column {column.header}: {text!r} differs from "
                f"{first.cells[column.header]!r} on line {first.line} (same order)"
            )
    return first or rows[0]


def draft_from_rows(layout: Layout, rows: list[Row], settings: Settings) -> OrderDraft:
    """Build the draft of one order from its rows (file order).

    Raises:
        CellError: the first bad cell, or the draft's own refusal, naming the file line.
    """
    for row in rows:
        if row.problem:
            raise CellError(row.problem)
    order_cols = [c for c in layout.columns if c.order_level]
    line_cols = [c for c in layout.columns if not c.order_level]
    currency_col = next((c for c in order_cols if c.target == "currency"), None)
    currency = settings.currency
    if currency_col is not None:
        holder = _order_cell(rows, currency_col)
        currency = _check_cell(holder, currency_col) or settings.currency
        try:
            minor_unit_exponent(currency)
        except RefundError as exc:
            raise CellError(f"line {holder.line}, column {currency_col.header}: {exc}") from exc
    ctx = CellContext(currency=currency, zone=settings.zone)
    body: dict[str, Any] = {"currency": currency}
    for column in order_cols:
        if column is not currency_col:
            body[column.target] = _read(_order_cell(rows, column), column, ctx)
    body["lines"] = []
    for row in rows:
        line = {c.target: _read(row, c, ctx) for c in line_cols}
        if line.get("ordered_quantity") is None:
            line["ordered_quantity"] = max(1, line.get("delivered_quantity") or 0)
        body["lines"].append(line)
    if layout.finish is not None:
        try:
            layout.finish(body)
        except ValueError as exc:
            raise CellError(f"line {rows[0].line}: {exc}") from exc
    try:
        return OrderDraft.model_validate(body)
    except ValidationError as exc:
        raise CellError(_describe(exc, layout, rows)) from exc


def _describe(exc: ValidationError, layout: Layout, rows: list[Row]) -> str:
    header_of = {c.target: c.header for c in layout.columns}
    out: list[str] = []
    for error in exc.errors():
        loc = error["loc"]
        if len(loc) >= 3 and loc[0] == "lines" and isinstance(loc[1], int):
            where = f"line {rows[loc[1]].line}, column {header_of.get(str(loc[2]), loc[2])}"
        elif loc:
            where = f"line {rows[0].line}, column {header_of.get(str(loc[0]), loc[0])}"
        else:
            where = f"line {rows[0].line}"
        out.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(out)


def detect_layout(header: Sequence[str], native: Layout = NATIVE) -> Layout:
    """The layout of a file from its header row: Shopify's export or ``native``.

    A header with a column of the Shopify signature (``Lineitem quantity``, ...) is a
    Shopify admin "Export orders" file; one with any native column name is native (its
    own checks then name what is missing or unknown).

    Raises:
        CsvError: a header of neither layout, naming what each expects.
    """
    from gateway.returns.shopify_csv import SHOPIFY  # the Shopify table builds on this one

    names = {h.strip().lower() for h in header}
    if names & SHOPIFY.signature:
        return SHOPIFY
    if names & {c.header for c in native.columns}:
        return native
    expected = {
        layout.name: ", ".join(c.header for c in layout.columns if c.required)
        for layout in (native, SHOPIFY)
    }
    raise CsvError(
        f"unknown layout: header {', '.join(repr(_shown(n)) for n in sorted(names))} is "
        f"neither the native order CSV (columns {expected[native.name]}, ...) nor a Shopify "
        f'admin "Export orders" CSV (columns {expected[SHOPIFY.name]}, ...)'
    )


def import_orders(
    db: Database, path: Path, settings: Settings, layout: Layout | None = None
) -> ImportReport:
    """Import (create or update) every order of the CSV file at ``path``.

    ``layout`` None: recognised from the header (:func:`detect_layout`). An order with a
    bad cell is refused whole (nothing of it stored); the others go on.

    Raises:
        CsvError: when the header is missing, of no known layout, or the layout refuses it.
        OSError: when the file cannot be read.
    """
    report = ImportReport()
    grouped: dict[str, list[Row]] = {}
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        if layout is None or layout.name == NATIVE.name:
            csv.field_size_limit(MAX_FIELD_CHARS)
            try:
                header = next(csv.reader(fh))
            except (StopIteration, csv.Error) as exc:
                raise CsvError(f"no readable header row ({exc or 'empty file'})") from exc
            layout = detect_layout(header, layout or NATIVE)
            fh.seek(0)
        ref_col = next(c for c in layout.columns if c.target == "order_ref")
        _bound, rows = read_rows(fh, layout)
        for item in rows:
            if isinstance(item, str):
                report.row_errors.append(item)
            else:
                grouped.setdefault(item.cells.get(ref_col.header, ""), []).append(item)
    for ref, order_rows in grouped.items():
        result = OrderResult(_shown(ref) or "(no order number)", order_rows[0].line, "refused")
        report.results.append(result)
        try:
            draft = draft_from_rows(layout, order_rows, settings)
        except CellError as exc:
            result.errors.append(str(exc))
            continue
        with db.session() as session:
            try:
                _order, result.outcome = upsert_order(session, draft, site=settings.site)
            except InvalidOrder as exc:
                session.rollback()
                result.errors.append(f"line {order_rows[0].line}: {exc}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Run the import command; exit 0 when every order was stored, 1 otherwise, 2 on usage."""
    parser = argparse.ArgumentParser(
        prog="returns-gateway import-orders",
        description="Create or update orders from a CSV file (one row per order line) in "
        "the database of RS_DATABASE_URL. Importing the same file twice changes nothing. "
        "Prints one result per order, then the counts.",
    )
    parser.add_argument("file", type=Path, help="CSV with a header row")
    parser.add_argument(
        "--ignore-column",
        action="append",
        default=[],
        metavar="NAME",
        help="a column to skip (an unknown column is an error otherwise); repeatable",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"import-orders: invalid settings:\n{exc}")
        return 2
    db = Database(settings.database_url)
    try:
        db.migrate()
        report = import_orders(db, args.file, settings, NATIVE.ignoring(args.ignore_column))
    except (CsvError, OSError) as exc:
        print(f"import-orders: {args.file}: {exc}")
        return 2
    finally:
        db.dispose()
    for error in report.row_errors:
        print(f"refused: {error}")
    for result in report.results:
        print(result.describe())
    print(report.summary())
    return 1 if report.errors else 0
