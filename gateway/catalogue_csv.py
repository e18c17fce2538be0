"""``returns-gateway import-catalogue FILE.csv``: load the product catalogue from a CSV file.

One row per SKU, a header row naming the columns (case-insensitive, any order):

- ``sku`` (required): the stock keeping unit, 1-64 characters;
- ``name``: product name, up to 200 characters;
- ``weight_g``: one unit as shipped back, whole grams (1 - 1 000 000);
- ``length_mm``, ``width_mm``, ``height_mm``: one unit, whole millimetres (1 - 5000);
- ``gtins``: product codes separated by ``|`` (GTIN-8, UPC-A, EAN-13 or GTIN-14 with a
  valid check digit; stored as GTIN-14);
- ``weight_tol_g`` (0 - 1 000 000 g per unit) and ``size_tol_mm`` (0 - 5000 mm): the
  SKU's tolerance overrides.

Strict: a column not in this list, a column given twice or no ``sku`` column refuses the
whole file (nothing stored, exit 2). A row with a bad cell (not a whole number, out of
bounds, a GTIN with a wrong check digit, a NUL character, which PostgreSQL cannot store,
more or fewer cells than the header) is refused with its line number, as is every row of a
SKU that appears on several rows; the other rows are stored, each in its own transaction
(with the re-announcement of the open RMAs of that SKU,
:mod:`gateway.services.catalogue`), so nothing is half stored. An empty cell clears that
value; a column absent from the file keeps what the catalogue holds. Importing the same
file twice changes nothing. One result line per row, then a summary.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError
from sqlalchemy.orm import Session

from gateway.db import Database
from gateway.schemas import CatalogueItemDraft
from gateway.services.catalogue import get_item, put_items
from gateway.settings import Settings
from protocol.text import NUL

INT_COLUMNS = ("weight_g", "length_mm", "width_mm", "height_mm", "weight_tol_g", "size_tol_mm")
COLUMNS = ("sku", "name", *INT_COLUMNS, "gtins")
MAX_ROWS = 100_000
_WHOLE = re.compile(r"^[0-9]{1,9}$")


class CsvError(ValueError):
    """The file cannot be imported at all (header, size, encoding): nothing is stored."""


@dataclass(frozen=True)
class Row:
    """One valid row: its line number, the entry, and the columns the file gives."""

    line: int
    draft: CatalogueItemDraft
    given: frozenset[str]


@dataclass
class ImportReport:
    """What an import did: one line per row (in file order), counts by outcome."""

    lines: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: int = 0
    reannounced: int = 0

    def summary(self) -> str:
        """One line for people: counts of created, updated, unchanged and refused rows."""
        return (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.refused} refused; {self.reannounced} open RMA(s) re-announced"
        )


def _header(fieldnames: Sequence[str] | None) -> list[str]:
    if not fieldnames:
        raise CsvError("empty file: a header row is needed")
    names = [(n or "").strip().lower() for n in fieldnames]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise CsvError(
            f"unknown column(s) {', '.join(repr(n) for n in unknown)}; known: {', '.join(COLUMNS)}"
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CsvError(f"column(s) given twice: {', '.join(twice)}")
    if "sku" not in names:
        raise CsvError("no 'sku' column")
    return names


def _value(column: str, text: str) -> Any:
    if NUL in text:  # PostgreSQL cannot store it (SQLite would): the row is refused
        raise ValueError(f"{column}: NUL character (U+0000) not allowed")
    if column in INT_COLUMNS:
        if not text:
            return None
        if not _WHOLE.match(text):
            raise ValueError(f"{column}: {text!r} is not a whole number")
        return int(text)
    if column == "gtins":
        return [part.strip() for part in text.split("|") if part.strip()]
    return text


def _problem(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors()
    )


def parse(handle: TextIO) -> tuple[list[Row], list[tuple[int, str]]]:
    """Parse a catalogue CSV: the valid rows, and (line, why) for each refused row.

    Raises:
        CsvError: a bad header (unknown, repeated or missing ``sku`` column) or more than
            :data:`MAX_ROWS` rows; nothing of the file may be stored then.
    """
    reader = csv.reader(handle)
    header = _header(next(reader, None))
    rows: list[Row] = []
    refused: list[tuple[int, str]] = []
    first_line = reader.line_num + 1
    for cells in reader:
        line, first_line = first_line, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if len(rows) + len(refused) >= MAX_ROWS:
            raise CsvError(f"more than {MAX_ROWS} rows: split the file")
        if len(cells) != len(header):
            refused.append((line, f"{len(cells)} cells, the header has {len(header)}"))
            continue
        try:
            pairs = zip(header, cells, strict=True)
            values = {col: _value(col, cell.strip()) for col, cell in pairs}
            draft = CatalogueItemDraft.model_validate(values)
        except ValidationError as exc:
            refused.append((line, _problem(exc)))
            continue
        except ValueError as exc:
            refused.append((line, str(exc)))
            continue
        rows.append(Row(line, draft, frozenset(header) - {"sku"}))
    lines_of: dict[str, list[int]] = {}
    for row in rows:
        lines_of.setdefault(row.draft.sku, []).append(row.line)
    unique: list[Row] = []
    for row in rows:
        at = lines_of[row.draft.sku]
        if len(at) > 1:
            where = ", ".join(str(n) for n in at)
            refused.append((row.line, f"SKU {row.draft.sku!r} is on lines {where}"))
        else:
            unique.append(row)
    return unique, sorted(refused)


def _merged(session: Session, row: Row) -> CatalogueItemDraft:
    """The row's values over what the catalogue holds for the columns the file lacks."""
    existing = get_item(session, row.draft.sku)
    if existing is None or row.given == frozenset(COLUMNS) - {"sku"}:
        return row.draft
    values = CatalogueItemDraft.model_validate(
        {"sku": existing.sku, **{c: getattr(existing, c) for c in COLUMNS if c != "sku"}}
    ).model_dump()
    values.update(row.draft.model_dump(include=set(row.given)))
    return CatalogueItemDraft.model_validate(values)


def import_catalogue(
    db: Database, settings: Settings, rows: list[Row], refused: list[tuple[int, str]]
) -> ImportReport:
    """Store each valid row in its own transaction; report every row in file order."""
    report = ImportReport(refused=len(refused))
    out: list[tuple[int, str]] = [(n, f"line {n}: refused: {why}") for n, why in refused]
    for row in rows:
        with db.session() as session:
            (result,) = put_items(session, settings, [_merged(session, row)])
        setattr(report, result.outcome, getattr(report, result.outcome) + 1)
        report.reannounced += result.reannounced
        again = f" ({result.reannounced} open RMA(s) re-announced)" if result.reannounced else ""
        out.append((row.line, f"line {row.line}: {row.draft.sku} {result.outcome}{again}"))
    report.lines = [text for _n, text in sorted(out)]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Run the import; return the exit status.

    0: every row stored; 1: some rows refused (the others stored); 2: the file or the
    settings cannot be used at all (nothing stored). Announcements of re-announced RMAs
    are published by a running gateway's bridge only: stations that are up learn the new
    revisions at their next catch-up (reconnect, or the ``resync`` command).
    """
    parser = argparse.ArgumentParser(
        prog="returns-gateway import-catalogue",
        description="Create or update product catalogue entries (SKU, unit weight and "
        "dimensions, GTINs, tolerance overrides) from a CSV file in the database of "
        "RS_DATABASE_URL; open RMAs of a changed SKU are re-announced to the stations.",
    )
    parser.add_argument("file", type=Path, help="CSV with a header row")
    parser.add_argument(
        "--check", action="store_true", help="only validate the file; store nothing"
    )
    args = parser.parse_args(argv)
    try:
        with args.file.open(newline="", encoding="utf-8-sig") as handle:
            rows, refused = parse(handle)
    except (CsvError, OSError, UnicodeDecodeError, csv.Error) as exc:
        print(f"import-catalogue: {args.file}: {exc}")
        return 2
    if args.check:
        for n, why in refused:
            print(f"line {n}: refused: {why}")
        print(f"{len(rows)} valid, {len(refused)} refused (nothing stored: --check)")
        return 1 if refused else 0
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"import-catalogue: invalid settings:\n{exc}")
        return 2
    db = Database(settings.database_url)
    try:
        db.migrate()
        report = import_catalogue(db, settings, rows, refused)
    finally:
        db.dispose()
    for text in report.lines:
        print(text)
    print(report.summary())
    if report.reannounced:
        print(
            "stations learn re-announced RMAs at their next catch-up "
            "(reconnect, or the resync command)"
        )
    return 1 if report.refused else 0
