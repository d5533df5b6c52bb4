"""CSV as a source for mappings: reading a table, column paths, located cells, what was read.

The first non-blank line is the header. The delimiter is the one of ``,`` tab ``;`` ``|``
that occurs most often in the header line (outside quotes). Rows are numbered as a
spreadsheet shows them (the header is row 1, the first data row row 2; blank lines are
skipped but counted); a row with more cells than the header is an error of that row (a cell would be
lost); a shorter row reads its missing cells as empty.

A path is a column name: ``=姓名``; a name with spaces, commas, parentheses or quotes is
written in brackets: ``=[结果 (mmol/L)]``. Locations: ``row 4, column 姓名``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from adapter.errors import InputTooLargeError, Issue, ParseError
from adapter.mapping.alternatives import read_alternatives_by_peek
from adapter.mapping.decoding import decode_text

_DELIMITERS = (",", "\t", ";", "|")


@dataclass(frozen=True, slots=True)
class CsvColumn:
    name: str

    def __str__(self) -> str:
        return self.name


def compile_path(text: str) -> CsvColumn:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1].strip()
    if not text:
        raise ValueError("an empty column name")
    if text.startswith("@"):
        raise ValueError(
            f"{text!r}: @name is a variable; a column whose name starts with @ is "
            f"written in brackets: [{text}]"
        )
    return CsvColumn(text)


# -- reading ----------------------------------------------------------------------------------


@dataclass(slots=True)
class CsvRow:
    number: int  # as a spreadsheet shows it: the header is row 1 (when it is the first line)
    cells: dict[str, str]
    problems: list[Issue] = field(default_factory=list)  # errors of this row alone


@dataclass(slots=True)
class CsvTable:
    header: list[str]
    rows: list[CsvRow]
    delimiter: str
    encoding: str
    issues: list[Issue] = field(default_factory=list)


def _delimiter(line: str) -> str:
    counts = dict.fromkeys(_DELIMITERS, 0)
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv(raw: bytes, *, max_bytes: int | None = None) -> CsvTable:
    if max_bytes is not None and len(raw) > max_bytes:
        raise InputTooLargeError(
            f"the document is {len(raw)} bytes; the limit is {max_bytes}", location="body"
        )
    issues: list[Issue] = []
    text, encoding = decode_text(raw, issues, what="CSV", warn_gb18030=False)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise ParseError("empty input: no CSV header", location="row 1")
    delimiter = _delimiter(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[CsvRow] = []
    number = 0
    try:
        for record in reader:
            number += 1  # blank lines count: a spreadsheet shows them as rows too
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip() for cell in record]
                _check_header(header, number)
                continue
            rows.append(_row(number, record, header))
    except csv.Error as exc:
        raise ParseError(
            f"the CSV text cannot be read: {exc}", location=f"row {number + 1}"
        ) from None
    if header is None:
        raise ParseError("empty input: no CSV header", location="row 1")
    return CsvTable(header, rows, delimiter, encoding, issues)


def _check_header(header: list[str], number: int) -> None:
    seen: set[str] = set()
    for position, name in enumerate(header, start=1):
        if name and name in seen:
            raise ParseError(
                f"column name {name!r} appears twice in the header; columns are read by name",
                location=f"row {number}, column {position}",
            )
        seen.add(name)


def _row(number: int, record: list[str], header: list[str]) -> CsvRow:
    row = CsvRow(number, {})
    for position, value in enumerate(record):
        if position < len(header):
            row.cells[header[position] or f"#{position + 1}"] = value
    extra = [v for v in record[len(header) :] if v.strip()]
    if extra:
        row.problems.append(
            Issue(
                "error",
                "structure",
                f"row {number} has {len(record)} cells but the header has {len(header)} columns; "
                "the extra cells would be lost",
                location=f"row {number}",
            )
        )
    return row


# -- values ------------------------------------------------------------------------------------


@dataclass(slots=True)
class CsvReadTracker:
    columns: set[str] = field(default_factory=set)


class CsvCell:
    __slots__ = ("column", "row", "value")

    def __init__(self, row: int, column: str, value: str) -> None:
        self.row = row
        self.column = column
        self.value = value

    @property
    def text(self) -> str:
        return self.value

    def is_empty(self) -> bool:
        return not self.value.strip()

    @property
    def location(self) -> str:
        return f"row {self.row}, column {self.column}"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"<CsvCell {self.location}>"


class CsvSource:
    """The engine's view of one CSV row (``SourceAdapter``); the scope is the row."""

    # no ``resolve_text`` (adapter.mapping.evaluation.SourceAdapter): said as a class
    # attribute, so the engine's ``getattr`` finds None without raising AttributeError
    resolve_text = None

    def __init__(self, tracker: CsvReadTracker) -> None:
        self.tracker = tracker

    def resolve(self, path: CsvColumn, scope: CsvRow) -> CsvCell | None:
        self.tracker.columns.add(path.name)
        value = scope.cells.get(path.name)
        return None if value is None else CsvCell(scope.number, path.name, value)

    def peek(self, path: CsvColumn, scope: CsvRow) -> str:
        return scope.cells.get(path.name) or ""

    def read_alternatives(self, paths: Any, scope: CsvRow, chosen: str) -> None:
        """``first``'s alternatives not taken (adapter.mapping.closures): each read when its
        text is empty or ``chosen`` (``peek``, then ``resolve``), left unread when it holds
        another value (decision 0144: one call from the generated ``first``)."""
        read_alternatives_by_peek(self, paths, scope, chosen)

    def iterate_path(self, path: CsvColumn, scope: CsvRow) -> list[tuple[Any, Any]]:
        cell = self.resolve(path, scope)
        return [(cell, scope)] if cell is not None and not cell.is_empty() else []

    def iterate_name(self, name: str, scope: CsvRow) -> list[Any]:
        return []

    def scope_for(self, item: Any, scope: CsvRow) -> CsvRow:
        return scope

    def describe(self, scope: CsvRow) -> str | None:
        return f"row {scope.number}" if isinstance(scope, CsvRow) else None


# -- matching and the silent-drop report ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsvMatch:
    columns: tuple[str, ...]

    def matches(self, table: CsvTable) -> bool:
        return set(self.columns) <= set(table.header)

    def describe(self) -> str:
        return "columns " + ", ".join(self.columns)


def unread(
    table: CsvTable,
    tracker: CsvReadTracker,
    ignore: set[str],
    clinical: frozenset[str] = frozenset(),
) -> list[tuple[str, str, bool]]:
    """Columns holding a value in some row that no rule read (one entry per column), and
    whether ``clinical`` names the column (``*``: every column)."""
    out: list[tuple[str, str, bool]] = []
    for position, name in enumerate(table.header, start=1):
        key = name or f"#{position}"
        if key in tracker.columns or key in ignore:
            continue
        if any(row.cells.get(key, "").strip() for row in table.rows):
            where = f"column {name}" if name else f"column {position} (no name)"
            out.append((where, "column", "*" in clinical or key in clinical))
    return out
