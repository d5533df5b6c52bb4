"""adapter/store/wide_insert.py (decisions 0147, 0151): rows N to an INSERT of N rows and
the rest one a statement are stored as the rows one a statement are, in the same order
(rowids, autoincrement keys); N within SQLite's bound variables."""

from __future__ import annotations

import sqlite3
from typing import Any

from adapter.store import wide_insert
from adapter.store.wide_insert import MAX_VARIABLES, rows_for, wide, widened

_ONE = "INSERT INTO t (a, b, c) VALUES (?, ?, ?)"


def _stored(rows: list[tuple[Any, ...]], n: int) -> list[tuple[Any, ...]]:
    """The rows of ``t`` (an autoincrement key, three columns) after ``wide`` of ``rows``."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a, b, c)")
    for sql, some in wide([(_ONE, rows)], n):
        db.executemany(sql, some)
    return db.execute("SELECT id, a, b, c FROM t ORDER BY id").fetchall()


def test_rows_n_to_a_statement_are_stored_as_one_a_statement() -> None:
    rows = [(n, f"v{n}", None if n % 3 else 1.5) for n in range(53)]
    one = _stored(rows, 1)
    assert [r[1:] for r in one] == rows and [r[0] for r in one] == list(range(1, 54))
    for n in (2, 3, 16, 53, 64):
        assert _stored(rows, n) == one, n


def test_wide_takes_the_rows_in_order_then_the_rest_one_a_statement() -> None:
    rows = [(n, -n, 0) for n in range(7)]
    assert wide([(_ONE, rows), (_ONE, [])], 3) == [
        (widened(_ONE, 3), [(0, 0, 0, 1, -1, 0, 2, -2, 0), (3, -3, 0, 4, -4, 0, 5, -5, 0)]),
        (_ONE, [(6, -6, 0)]),
    ]
    assert widened(_ONE, 2) == "INSERT INTO t (a, b, c) VALUES (?, ?, ?), (?, ?, ?)"
    assert wide([(_ONE, rows[:2])], 3) == [(_ONE, rows[:2])]
    assert wide([(_ONE, rows)], 1) == [(_ONE, rows)]


def test_n_keeps_within_sqlites_bound_variables() -> None:
    assert rows_for(15) == wide_insert.ROWS_A_STATEMENT == 16
    assert rows_for(3000) == MAX_VARIABLES // 3000 == 10
    assert rows_for(MAX_VARIABLES + 1) == 1
    # at most 2,000 columns a table: 16 rows stay within the limit, 32 need not
    width = 1500  # 32 rows would bind 48,000 values: 21 go to an INSERT
    rows = [tuple(range(n, n + width)) for n in range(43)]
    one = "INSERT INTO t VALUES (" + ", ".join(["?"] * width) + ")"
    (sql, many), (rest, left) = wide([(one, rows)], 32)
    assert sql.count("?") == 21 * width <= MAX_VARIABLES and len(many) == 2
    assert rest == one and left == rows[42:]
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE t ({', '.join(f'c{n}' for n in range(width))})")
    db.executemany(sql, many)  # accepted by this build's SQLite
    db.executemany(rest, left)
    assert db.execute("SELECT * FROM t ORDER BY rowid").fetchall() == rows
