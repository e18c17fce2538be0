"""CSV cells a spreadsheet will not run as formulas (OWASP "CSV Injection").

OWASP's rule: a cell whose text begins with ``=``, ``+``, ``-``, ``@``, a tab (0x09) or a
carriage return (0x0D) may be taken for a formula by Excel, LibreOffice or Sheets; prefix
it with a single quote so it is shown as text. Numbers (int, float) are written as they
are, so negative amounts stay numbers. Quoting of separators and quotes is the ``csv``
module's job. (``defusedcsv`` misses the tab and CR cases, hence these few lines.)
Source: https://owasp.org/www-community/attacks/CSV_Injection
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """``value`` with a leading ``'`` when its text could start a formula; numbers as is."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """A CSV document (header line, then one line per row) with every cell made safe."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: safe_cell(v) for k, v in row.items()})
    return out.getvalue()
