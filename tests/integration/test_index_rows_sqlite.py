"""adapter/store/index_rows_sqlite.py: on SQLite the search index rows go to the driver
built in one pass (decision 0120); every value they carry is the one the general path
(``_insert_index_tuples``' rows numbered, then fast_insert's column-wise bind processing)
gives, of the same type. Checked on every resource of the index values' snapshot corpus
(every resource of the golden outputs and the edge cases: identifiers with a type, dates,
quantities, references to resources of the same call, of the store and unknown), saved in
calls of 100, plus a value long enough to be cut to a key; numbered as stored and as
transient rows."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapter.store import fast_insert, index_rows_sqlite, resources, wide_insert
from adapter.store.resources import save_resources
from tests.api.test_index_values_snapshot import SNAPSHOT

NOW = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


def _corpus() -> list[dict[str, Any]]:
    cases = json.loads(gzip.decompress(SNAPSHOT.read_bytes()).decode("utf-8"))["cases"]
    seen: set[tuple[str, str]] = set()
    out = []
    for case in cases:
        resource = case["resource"]
        key = (resource.get("resourceType"), resource.get("id"))
        if (
            isinstance(key[0], str) and isinstance(key[1], str) and key[1] and key not in seen
        ):  # a key given twice in one call is stored once: kept apart
            seen.add(key)
            out.append(resource)
    out.append(
        {
            "resourceType": "Observation",
            "id": "long-code",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "L" * 600}]},
            "subject": {"reference": "Patient/" + "p" * 60},
            "valueQuantity": {"value": 5, "unit": "mmol/L"},
        }
    )
    return out


def _save_in_batches(session: Any, corpus: list[dict[str, Any]]) -> None:
    """The corpus stored as bulk ingest stores it: 100 resources a call."""
    for start in range(0, len(corpus), 100):
        save_resources(session, corpus[start : start + 100], message_id=None, now=NOW)


@contextmanager
def _sent(module: Any) -> Iterator[list[list[tuple[Any, ...]]]]:
    """The rows ``module``'s ``driver_executemany`` is given, instead of executing them."""
    sent: list[list[tuple[Any, ...]]] = []
    real = module.driver_executemany
    module.driver_executemany = lambda _connection, _sql, rows: sent.append(list(rows))
    try:
        yield sent
    finally:
        module.driver_executemany = real


def _typed(rows: list[list[tuple[Any, ...]]]) -> list[list[tuple[tuple[str, Any], ...]]]:
    """Each value with its type: 5 and 5.0 are told apart."""
    return [[tuple((type(v).__name__, v) for v in row) for row in call] for call in rows]


def test_the_one_pass_rows_are_the_general_path_s(
    session_factory: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the one-pass form is SQLite's")
    real = resources._insert_index_tuples
    compared = {"calls": 0, "rows": 0, "typed": 0, "by key": 0, "by text": 0, "dates": 0, "cut": 0}

    def both(
        session: Session, rows: list[Any], *, transient: bool = False, replacing: Any = ()
    ) -> None:
        for numbering in (False, True):
            with monkeypatch.context() as patch, _sent(resources) as one_pass:
                # the rows whole, in one call (the NULLs' grouping: the test below)
                patch.setattr(resources, "without_nulls", lambda sql, r, _kept: [(sql, r)])
                patch.setattr(resources, "_GROUPED_AS_BUILT", False)
                patch.setattr(resources, "_ROWS_A_STATEMENT", 1)
                real(session, rows, transient=numbering)
            with monkeypatch.context() as patch, _sent(fast_insert) as general:
                patch.setattr(resources, "index_insert", lambda *_: None)
                patch.setattr(fast_insert, "_ROWS_A_STATEMENT", 1)  # one a statement (0151)
                real(session, rows, transient=numbering)
            assert len(one_pass) == 1 and one_pass[0]
            assert _typed(one_pass) == _typed(general)
        written = one_pass[0]
        compared["calls"] += 1
        compared["rows"] += len(written)
        compared["typed"] += sum(1 for r in rows if r[10].__class__ is str)
        compared["by key"] += sum(1 for w in written if w[5] is not None)
        compared["by text"] += sum(1 for w in written if w[12] is not None)  # none found
        compared["dates"] += sum(1 for w in written if w[2] is not None)
        compared["cut"] += sum(1 for w in written if w[13] is not None)  # code_full
        # stored, for the next calls' references
        real(session, rows, transient=transient, replacing=replacing)

    monkeypatch.setattr(resources, "_insert_index_tuples", both)
    with session_factory() as session, session.begin():
        _save_in_batches(session, _corpus())
        session.rollback()
    # the corpus reached every kind of value the one pass writes
    assert compared["rows"] > 5000
    assert all(compared[k] > 0 for k in compared), compared


def _stored(session: Session) -> list[tuple[Any, ...]]:
    columns = [c.name for c in resources._index.columns]
    typed = ", ".join(f"{c}, typeof({c})" for c in columns)
    return [
        tuple(row)
        for row in session.connection().exec_driver_sql(
            f"SELECT {typed} FROM search_index ORDER BY resource_key, kind, row_id"
        )
    ]


def test_rows_with_nulls_in_the_insert_are_stored_the_same(
    session_factory: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``without_nulls`` (decision 0140): the corpus' index rows, written by an INSERT a set
    of empty columns with NULL in their places, are stored as the rows whole by one
    INSERT store them, every value of the same type."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the one-pass form is SQLite's")
    corpus = _corpus()
    statements: list[str] = []
    real = resources.driver_executemany

    def counted(connection: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        statements.append(sql)
        real(connection, sql, rows)

    stored = []
    for whole in (False, True):
        with monkeypatch.context() as patch, session_factory() as session, session.begin():
            patch.setattr(resources, "driver_executemany", counted)
            if whole:  # and one a statement (decision 0147)
                patch.setattr(resources, "without_nulls", lambda sql, r, _kept: [(sql, r)])
                patch.setattr(resources, "_GROUPED_AS_BUILT", False)
                patch.setattr(resources, "_ROWS_A_STATEMENT", 1)
            _save_in_batches(session, corpus)
            stored.append(_stored(session))
            session.rollback()
        if not whole:
            nulled = [sql for sql in statements if "NULL" in sql]
            assert len(set(nulled)) > 5  # several sets of empty columns
            assert all("?" in sql for sql in nulled)
            # several rows a statement (decision 0147), and the rest one a statement
            many = [sql for sql in statements if sql.count("(") > 2]
            assert many and len(many) < len(statements)
            statements.clear()
    assert all("NULL" not in sql for sql in statements)
    assert len(stored[0]) > 5000
    assert stored[0] == stored[1]


def test_without_nulls_groups_rows_by_their_empty_values() -> None:
    sql = "INSERT INTO t (a, b, c) VALUES (?, ?, ?)"
    rows = [(1, None, 3), (2, None, None), (4, 5, 6), (7, None, 9), (b"", 0, "")]
    kept = [tuple(v is not None for v in row) for row in rows]
    assert index_rows_sqlite.without_nulls(sql, rows, kept) == [
        ("INSERT INTO t (a, b, c) VALUES (?, NULL, ?)", [(1, 3), (7, 9)]),
        ("INSERT INTO t (a, b, c) VALUES (?, NULL, NULL)", [(2,)]),
        ("INSERT INTO t (a, b, c) VALUES (?, ?, ?)", [(4, 5, 6), (b"", 0, "")]),
    ]


def test_wide_statements_take_the_rows_in_order_n_a_statement() -> None:
    """Decision 0147: a group's rows N to an INSERT of N rows, the rest one a statement."""
    one = "INSERT INTO t (a, b, c) VALUES (?, NULL, ?)"
    other = "INSERT INTO t (a, b, c) VALUES (?, ?, ?)"
    rows = [(n, -n) for n in range(7)]
    assert wide_insert.wide([(one, rows), (other, [(1, 2, 3)])], 3) == [
        (
            "INSERT INTO t (a, b, c) VALUES (?, NULL, ?), (?, NULL, ?), (?, NULL, ?)",
            [(0, 0, 1, -1, 2, -2), (3, -3, 4, -4, 5, -5)],
        ),
        (one, [(6, -6)]),
        (other, [(1, 2, 3)]),
    ]
    assert wide_insert.wide([(one, rows[:6])], 3)[0][1] == [
        (0, 0, 1, -1, 2, -2),
        (3, -3, 4, -4, 5, -5),
    ]
    assert wide_insert.wide([(one, rows[:2])], 3) == [(one, rows[:2])]
    assert wide_insert.wide([(one, rows)], 1) == [(one, rows)]


def test_rows_grouped_as_built_are_those_grouped_after(
    session_factory: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decision 0143: a write that replaces no stored rows groups its rows by their empty
    columns while it builds them; the statements and their rows are exactly those of the
    rows built first, then grouped (``without_nulls``), for every call of the corpus."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the one-pass form is SQLite's")
    real = resources._insert_index_tuples
    compared = {"calls": 0, "statements": 0, "rows": 0}

    def both(
        session: Session, rows: list[Any], *, transient: bool = False, replacing: Any = ()
    ) -> None:
        sent: list[list[Any]] = []
        for as_built in (True, False):
            statements: list[tuple[str, list[Any]]] = []
            with monkeypatch.context() as patch:
                patch.setattr(resources, "_GROUPED_AS_BUILT", as_built)
                patch.setattr(resources, "_ROWS_A_STATEMENT", 1)  # rows counted one by one
                patch.setattr(
                    resources,
                    "driver_executemany",
                    lambda _c, sql, some, s=statements: s.append((sql, list(some))),
                )
                real(session, rows, transient=transient)
            sent.append(statements)
        assert sent[0] == sent[1]
        assert [[tuple(map(type, r)) for _, rs in sent[0] for r in rs]] == [
            [tuple(map(type, r)) for _, rs in sent[1] for r in rs]
        ]
        compared["calls"] += 1
        compared["statements"] += len(sent[0])
        compared["rows"] += sum(len(rs) for _, rs in sent[0])
        real(session, rows, transient=transient, replacing=replacing)

    monkeypatch.setattr(resources, "_insert_index_tuples", both)
    with session_factory() as session, session.begin():
        _save_in_batches(session, _corpus())
        session.rollback()
    assert compared["rows"] > 5000 and compared["statements"] > compared["calls"], compared


def test_a_batch_replacing_stored_rows_stores_what_the_two_passes_store(
    session_factory: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decision 0147: a bulk batch's write that replaces stored rows (resources changed
    since stored, ``keep_stored``) groups the rows of the other resources as it builds them
    and compares only the changed ones' with the stored rows: the same stored rows, of the
    same types, as all of them built, compared, then grouped (the path before)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the one-pass form is SQLite's")
    corpus = _corpus()
    changed = [
        {**r, "status": "amended"} if r.get("resourceType") == "Observation" else r
        for r in corpus[::7]
    ]  # every seventh stored resource again, the results among them changed
    new = [{**r, "id": r["id"] + "-new"} for r in corpus[1::7] if len(r["id"]) < 60]
    calls: list[tuple[int, int]] = []
    real = resources._insert_index_tuples

    def seen(session: Session, rows: list[Any], **kw: Any) -> None:
        calls.append((len(rows), len(kw.get("replacing", ()))))
        real(session, rows, **kw)

    stored = []
    for as_built in (True, False):
        with monkeypatch.context() as patch, session_factory() as session, session.begin():
            patch.setattr(resources, "_GROUPED_AS_BUILT", as_built)
            patch.setattr(resources, "_insert_index_tuples", seen)
            _save_in_batches(session, corpus)
            resources.batch_writes(session)
            for start in range(0, len(changed), 50):
                save_resources(
                    session, [*changed[start : start + 50], *new[start : start + 50]],
                    message_id=None, now=NOW,
                )  # fmt: skip
            resources.flush_batch_writes(session)
            stored.append(_stored(session))
            session.rollback()
    # the batch's write replaced stored rows and wrote others' in the same call
    assert any(rows and replacing and rows > replacing for rows, replacing in calls), calls
    assert len(stored[0]) > 5000
    assert stored[0] == stored[1]
