"""SQLite: a batch's rows as INSERTs of several rows each (decisions 0147, 0151).

Each execution of an INSERT of one row opens its cursors on the table and every index,
checks the foreign keys' parent tables, halts and resets: through the sqlite3 module's
executemany about 9,000 instructions a row of a lab message's index rows (decision 0147).
An INSERT of N rows (``VALUES (?, ...), (?, ...)``, N times) pays that once for N rows.
``wide`` turns (an INSERT of one row, its rows) into INSERTs of N rows, each given the
values of N rows in one tuple, and the rows left over (fewer than N) by the INSERT of one
row: the same rows stored in the same order (rowids and autoincrement keys as before).
SQLite only: PostgreSQL's batches go by COPY (adapter/store/fast_insert.py).
"""

from __future__ import annotations

from itertools import chain, islice
from typing import Any, Final

# rows a statement: 16 as cheap as 32, cheaper than 8 and 64 (measured, decision 0147)
ROWS_A_STATEMENT: Final = 16
# SQLite's most bound variables a statement (SQLITE_MAX_VARIABLE_NUMBER, 32,766 since
# 3.32.0): a wide row's N is lowered to keep N * its width within it
MAX_VARIABLES: Final = 32766
# (an INSERT of one row, rows) -> the INSERT of that many rows
_WIDE: dict[tuple[str, int], str] = {}
_WIDE_MAX: Final = 4096

Statements = list[tuple[str, list[tuple[Any, ...]]]]


def rows_for(width: int, rows_a_statement: int = ROWS_A_STATEMENT) -> int:
    """Rows an INSERT of rows of ``width`` values takes: at most ``rows_a_statement``,
    within SQLite's bound variables a statement."""
    return max(1, min(rows_a_statement, MAX_VARIABLES // max(width, 1)))


def wide(statements: Statements, rows_a_statement: int = ROWS_A_STATEMENT) -> Statements:
    """``statements`` (an INSERT of one row, its rows as tuples) as INSERTs of
    ``rows_a_statement`` rows (fewer for wide rows: ``rows_for``), each given the values
    of that many rows in one tuple, and the rows left over by the INSERT of one row: the
    same rows stored, in the same order."""
    if rows_a_statement <= 1:
        return list(statements)
    out: Statements = []
    for sql, rows in statements:
        if not rows:
            continue
        n = rows_for(len(rows[0]), rows_a_statement)
        full = len(rows) - len(rows) % n if n > 1 else 0
        if full:
            values = chain.from_iterable(islice(rows, full))
            width = len(rows[0]) * n
            # the values ``width`` at a time, as tuples made in C
            many = list(zip(*[values] * width, strict=True))
            out.append((widened(sql, n), many))
        if full < len(rows):
            out.append((sql, rows[full:]))
    return out


def widened(sql: str, rows: int) -> str:
    """``sql`` (an INSERT ... VALUES (...)) inserting ``rows`` rows, each as its one."""
    found = _WIDE.get((sql, rows))
    if found is None:
        head, values = sql.rsplit("VALUES", 1)
        one = values.strip()
        assert one.startswith("(") and one.endswith(")"), "one row of values"
        found = head + "VALUES " + ", ".join([one] * rows)
        if len(_WIDE) < _WIDE_MAX:
            _WIDE[(sql, rows)] = found
    return found
