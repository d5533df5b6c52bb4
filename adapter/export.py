"""The one way the adapter writes spreadsheets: CSV (for Excel) and XLSX, formula-safe.

Every export (referral ledger, sync report, statistics ...) goes through
:func:`write_csv` or :func:`write_xlsx`. Cells hold what senders wrote (names, notes,
diagnoses), and a spreadsheet program runs text that starts like a formula
(``=HYPERLINK(...)``, ``+cmd|...``, ``@SUM(...)``): CSV injection (OWASP). So:

**The rule.** A *text* cell whose first character is ``=``, ``+``, ``-``, ``@``, a tab,
a carriage return or a line feed (or the full-width ``＝ ＋ － ＠`` a Chinese input method
produces) is written with a leading apostrophe ``'``: ``=1+1`` becomes ``'=1+1``, shown
and read back as text. *Numbers* (``int``, ``float``, ``Decimal``) are numbers and are
written as numbers, never changed: ``-5`` stays the number -5, while the *text* ``"-5"``
becomes ``'-5``. Callers that have numbers pass numbers, not their text. Headers follow the
same rule. ``None`` is an empty cell; ``bool`` is ``TRUE``/``FALSE``; ``date`` and naive
``datetime`` are dates (ISO text in CSV); a ``datetime`` with a zone is written as ISO 8601
text with its offset (XLSX has no zones).

CSV: UTF-8 with a byte order mark (Excel otherwise reads Chinese headers as GBK mojibake),
CRLF line ends, fields quoted where needed. XLSX: openpyxl in write-only mode (rows stream
to the file, memory stays flat for large exports); characters XML cannot carry (control
characters other than tab, CR, LF) are dropped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

Cell = str | int | float | Decimal | bool | date | datetime | None

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
ESCAPE = "'"
# What XML 1.0 cannot hold (openpyxl refuses it): C0 controls except tab, LF, CR.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def neutralise(value: Cell) -> Cell:
    """The value made safe for a spreadsheet cell (see the rule in the module text)."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return ESCAPE + value
    return value


def _csv_text(value: Cell) -> str:
    value = neutralise(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def write_csv(
    target: Path | BinaryIO, headers: Sequence[str], rows: Iterable[Sequence[Cell]]
) -> int:
    """Write a CSV file Excel opens correctly (UTF-8 with BOM); returns the rows written."""
    if isinstance(target, Path):
        with target.open("wb") as stream:
            return write_csv(stream, headers, rows)
    text = io.TextIOWrapper(target, encoding="utf-8-sig", newline="", write_through=True)
    try:
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow([_csv_text(h) for h in headers])
        count = 0
        for row in rows:
            writer.writerow([_csv_text(c) for c in row])
            count += 1
        text.flush()
        return count
    finally:
        text.detach()  # leave the caller's stream open


def _xlsx_value(value: Cell) -> Cell:
    value = neutralise(value)
    if isinstance(value, str):
        return _XML_ILLEGAL.sub("", value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.isoformat()
    return value


def write_xlsx(
    target: Path | BinaryIO,
    headers: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    *,
    sheet_title: str = "Sheet1",
) -> int:
    """Write an XLSX workbook with one sheet, streaming the rows; returns the rows written."""
    from openpyxl import Workbook  # imported here: only exports need it

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=sheet_title[:31])  # Excel's limit on sheet names
    sheet.append([_xlsx_value(h) for h in headers])
    count = 0
    for row in rows:
        sheet.append([_xlsx_value(c) for c in row])
        count += 1
    workbook.save(target)
    return count


__all__ = ["FORMULA_TRIGGERS", "Cell", "neutralise", "write_csv", "write_xlsx"]
