"""An updated resource keeps its search index rows that did not change (decision 0138):
only the removed rows are deleted and the added ones inserted, and the stored rows are
those a delete of all and a full insert would leave, numbers included."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from adapter.fhir.dates import DEFAULT_ZONE
from adapter.fhir.index_values import index_values
from adapter.store import reindex, save_resources
from adapter.store.index_keep import COLUMNS
from adapter.store.resources import (
    BatchWrites,
    _delete_index_rows,
    _index_tuples,
    _insert_index_tuples,
)

T0 = datetime(2026, 5, 3, 2, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T1 + timedelta(hours=1)


def observation(**extra: Any) -> dict[str, Any]:
    base = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "identifier": [{"system": "urn:oid:2.16.156.10011.1.9", "value": "LAB-1"}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-05-03T10:00:00+08:00",
        "issued": "2026-05-03T11:00:00+08:00",
        "valueQuantity": {"value": 135, "unit": "g/L", "system": "http://unitsofmeasure.org"},
    }
    return {**base, **extra}


def _key(session: Session) -> int:
    return session.execute(
        text("SELECT resource_key FROM resource WHERE resource_type = 'Observation' AND id = 'o1'")
    ).scalar_one()


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def stored(session: Session, rkey: int) -> dict[tuple[Any, ...], str | None]:
    """The resource's search_index rows (``COLUMNS``) -> the transaction that wrote each
    (PostgreSQL's ``xmin``; None on SQLite), and on PostgreSQL its search_terms row."""
    xmin = "xmin::text" if _postgresql(session) else "NULL"
    rows = session.execute(
        text(f"SELECT {xmin}, {', '.join(COLUMNS)} FROM search_index WHERE resource_key = :k"),
        {"k": rkey},
    ).all()
    out = {_plain(row[1:]): row[0] for row in rows}
    assert len(out) == len(rows)  # no row twice
    if _postgresql(session):
        terms = session.execute(
            text("SELECT xmin::text, refs, toks FROM search_terms WHERE resource_key = :k"),
            {"k": rkey},
        ).all()
        out.update({("terms", tuple(t.refs), tuple(t.toks)): t[0] for t in terms})
    return out


def _plain(row: Any) -> tuple[Any, ...]:
    # dates as instants: the two drivers give other zone objects for the same instant
    return tuple(v.astimezone(UTC) if isinstance(v, datetime) else v for v in row)


def rewritten(session_factory: sessionmaker[Session], body: dict[str, Any]) -> set[Any]:
    """The rows the resource would have after its rows were all deleted and written again
    (the store before decision 0138), in a transaction rolled back."""
    with session_factory() as session, session.begin():
        rkey = _key(session)
        _delete_index_rows(session, [rkey])
        _insert_index_tuples(
            session, _index_tuples("Observation", rkey, index_values(body, DEFAULT_ZONE))
        )
        rows = set(stored(session, rkey))
        session.rollback()
    return rows


@contextmanager
def inserted(session: Session) -> Iterator[dict[str, int]]:
    """Rows inserted into search_index (and search_terms) in the block: PostgreSQL's
    statistics of the transaction, SQLite's statement trace (one per row executed)."""
    counts = {"search_index": 0, "search_terms": 0}
    if _postgresql(session):
        read = text(
            "SELECT relname, n_tup_ins FROM pg_stat_xact_user_tables"
            " WHERE relid IN ('search_index'::regclass, 'search_terms'::regclass)"
        )
        before = dict(session.execute(read).all())
        yield counts
        for name, n in session.execute(read).all():
            counts[name] = n - before.get(name, 0)
        return
    raw = session.connection().connection.dbapi_connection

    def trace(sql: str) -> None:
        if sql.upper().startswith("INSERT INTO SEARCH_INDEX"):
            counts["search_index"] += 1

    raw.set_trace_callback(trace)  # type: ignore[union-attr]
    try:
        yield counts
    finally:
        raw.set_trace_callback(None)  # type: ignore[union-attr]


def _save_and_change(
    session_factory: sessionmaker[Session], first: dict[str, Any], then: dict[str, Any]
) -> tuple[dict[Any, str | None], dict[Any, str | None], dict[str, int]]:
    with session_factory.begin() as session:
        save_resources(session, [first], message_id=None, now=T0)
    with session_factory() as session:
        before = stored(session, _key(session))
    with session_factory.begin() as session, inserted(session) as counts:
        save_resources(session, [then], message_id=None, now=T1)
    with session_factory() as session:
        after = stored(session, _key(session))
    return before, after, counts


def test_an_update_of_one_value_keeps_the_other_rows(session_factory: sessionmaker) -> None:
    changed = observation(
        valueQuantity={"value": 142, "unit": "g/L", "system": "http://unitsofmeasure.org"}
    )
    before, after, counts = _save_and_change(session_factory, observation(), changed)
    assert set(after) == rewritten(session_factory, changed)
    added, kept = set(after) - set(before), set(after) & set(before)
    assert len(added) == 1 and next(iter(added))[COLUMNS.index("value_number")] == 142
    assert len(kept) >= 3  # PostgreSQL: its identifier, date and the terms; SQLite: more
    assert len(before) - len(kept) == 1  # only the old value's row went
    assert counts["search_index"] == 1
    if before[next(iter(kept))] is not None:  # PostgreSQL: the same row versions stayed
        assert all(after[row] == before[row] for row in kept)
        assert counts["search_terms"] == 0  # the references and codes did not change


def test_a_resource_whose_values_all_change_is_written_again(
    session_factory: sessionmaker,
) -> None:
    changed = observation(
        status="amended",
        identifier=[{"system": "urn:oid:2.16.156.10011.1.9", "value": "LAB-2"}],
        code={"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        subject={"reference": "Patient/p2"},
        effectiveDateTime="2026-05-04T10:00:00+08:00",
        issued="2026-05-04T11:00:00+08:00",
        valueQuantity={"value": 6.1, "unit": "mmol/L", "system": "http://unitsofmeasure.org"},
    )
    before, after, counts = _save_and_change(session_factory, observation(), changed)
    assert set(after) == rewritten(session_factory, changed)
    assert not set(after) & set(before)  # nothing of the old version is left
    index_rows = [row for row in after if row[0] != "terms"]
    assert counts["search_index"] == len(index_rows)


def test_an_update_that_removes_a_value_keeps_the_rows_before_it(
    session_factory: sessionmaker,
) -> None:
    changed = observation()
    del changed["valueQuantity"]
    before, after, counts = _save_and_change(session_factory, observation(), changed)
    assert set(after) == rewritten(session_factory, changed)
    gone, added = set(before) - set(after), set(after) - set(before)
    assert any(row[COLUMNS.index("value_number")] == 135 for row in gone)
    # the rows numbered before the value's stay; those after it take new numbers (row_id)
    # and are written again, as a full rewrite would number them
    assert len(set(after) & set(before)) >= 2
    assert counts["search_index"] == len([row for row in added if row[0] != "terms"])


def test_an_update_without_index_rows_deletes_them_all(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        save_resources(session, [observation()], message_id=None, now=T0)
    with session_factory.begin() as session:
        changed = observation(status="amended")
        save_resources(session, [changed], message_id=None, now=T1, with_index=False)
    with session_factory() as session:
        assert stored(session, _key(session)) == {}


def test_reindex_writes_only_the_missing_rows(session_factory: sessionmaker) -> None:
    with session_factory.begin() as session:
        save_resources(session, [observation()], message_id=None, now=T0)
    with session_factory.begin() as session:
        rkey = _key(session)
        whole = stored(session, rkey)
        session.execute(
            text("DELETE FROM search_index WHERE resource_key = :k AND row_id = 0"), {"k": rkey}
        )
    with session_factory.begin() as session, inserted(session) as counts:
        assert reindex(session, "Observation") == 1
    with session_factory() as session:
        after = stored(session, rkey)
    assert set(after) == set(whole)
    assert counts["search_index"] == 1
    assert counts["search_terms"] == 0


def test_a_batch_writes_as_transient_only_the_superseded_values_not_kept() -> None:
    writes = BatchWrites()
    a, b, c = ("Observation", 7, "status", "token", None, "final"), ("x",), ("y",)
    writes.replace(("Observation", "o1"), 7, [a, b], stored=False)
    mark = writes.mark()
    writes.replace(("Observation", "o1"), 7, [a, c], stored=False)
    assert writes.superseded == [b]  # ``a`` reaches the database with the new rows
    assert writes.stale == {7}
    writes.replace(("Observation", "o1"), 7, [c], stored=False)
    assert writes.superseded == [b, a]
    writes.rollback(mark)
    assert writes.superseded == [] and writes.rows[("Observation", "o1")] == [a, b]
    assert writes.stale == set()


def test_a_batch_update_of_a_stored_resource_keeps_its_rows(
    session_factory: sessionmaker,
) -> None:
    from adapter.store.resources import batch_writes, flush_batch_writes

    with session_factory.begin() as session:
        save_resources(session, [observation()], message_id=None, now=T0)
    with session_factory() as session:
        before = stored(session, _key(session))
    first = observation(status="preliminary")
    last = observation(
        valueQuantity={"value": 142, "unit": "g/L", "system": "http://unitsofmeasure.org"}
    )
    with session_factory.begin() as session, inserted(session) as counts:
        batch_writes(session)
        save_resources(session, [first], message_id=None, now=T1)
        save_resources(session, [last], message_id=None, now=T2)
        flush_batch_writes(session)
    with session_factory() as session:
        after = stored(session, _key(session))
    assert set(after) == rewritten(session_factory, last)
    assert len(set(before) - set(after)) == 1
    # the new value's row, and as transient rows (deleted again) the first update's values
    # the last one does not hold: its quantity (135) and, on SQLite, its status (PostgreSQL
    # keeps a status in the search_terms array, never as a transient row); not the others
    assert counts["search_index"] == 1 + (1 if _postgresql_rows(before) else 2)


def _postgresql_rows(rows: dict[Any, str | None]) -> bool:
    return any(v is not None for v in rows.values())
