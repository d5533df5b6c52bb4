"""Migration 0045 (decision 0115) on a database that holds data (SQLite, and PostgreSQL in
the -m db pass): ``identity_history`` loses its index on ``person_id``, which the one reader
by person (``link_history``: ``person_id OR previous_person_id``) never used.

History rows written at head; down to 0044 the index is back and the reader's plan still
does not use it (the reason for the cut, on both databases) and the rows are as they were
(read raw: below 0050 the ids are text again on PostgreSQL); up again the index is gone and
every history answer, by person and by patient, is what it was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, inspect, select, text

from adapter.identity.index.review import link_history
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.identity_tables import IdentityHistory

_INDEX = "ix_identity_history_person_id"
_READ_BY_PERSON = (
    "SELECT * FROM identity_history WHERE person_id = :p OR previous_person_id = :p ORDER BY id"
)


def _write_history(engine: Engine) -> None:
    t0 = datetime(2026, 12, 6, tzinfo=UTC)
    rows = [
        {"at": t0 + timedelta(minutes=i), "action": action, "patient_id": f"pt-{i % 40}",
         "person_id": f"ps-{i % 25}", "previous_person_id": prev, "actor": "index",
         "reason": "rule"}
        for i, (action, prev) in enumerate(
            [("link", None)] * 180 + [("relink", "ps-3"), ("merge", "ps-7")] * 10
        )
    ]  # fmt: skip
    with engine.begin() as conn:
        # bound as the model's columns store them (16 bytes on PostgreSQL at head, 0050)
        conn.execute(insert(IdentityHistory.__table__), rows)
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE identity_history"))


def _answers(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with make_factory(engine)() as session:
        answers = {f"person {p}": link_history(session, person_id=p) for p in ("ps-3", "ps-7")}
        answers |= {f"patient {p}": link_history(session, patient_id=p) for p in ("pt-1", "pt-9")}
    return answers


_COLUMNS = ("action", "patient_id", "person_id", "previous_person_id")


def _rows(engine: Engine, *, raw: bool) -> list[tuple[Any, ...]]:
    """The history rows' ids in order: read by the model at head, raw below 0050 (where
    the ids are text again on PostgreSQL and the head's model does not read them)."""
    with engine.connect() as conn:
        if raw:
            query: Any = text(f"SELECT {', '.join(_COLUMNS)} FROM identity_history ORDER BY id")
        else:
            h = IdentityHistory.__table__
            query = select(*(h.c[c] for c in _COLUMNS)).order_by(h.c.id)
        return [tuple(row) for row in conn.execute(query)]


def _indexes(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {ix["name"] for ix in inspect(conn).get_indexes("identity_history")}


def _plan(engine: Engine) -> str:
    """The plan of the reader by person, an index scan favoured where the database can."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            rows = conn.execute(text("EXPLAIN " + _READ_BY_PERSON), {"p": "ps-3"})
            return "\n".join(str(row[0]) for row in rows)
        rows = conn.execute(text("EXPLAIN QUERY PLAN " + _READ_BY_PERSON), {"p": "ps-3"})
        return "\n".join(str(row[-1]) for row in rows)


def test_0045_drops_the_unused_person_index_and_back(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        assert _INDEX not in _indexes(engine)
        assert "ix_identity_history_patient_id" in _indexes(engine)
        _write_history(engine)
        expected = _answers(engine)
        assert len(expected["person ps-3"]) > 10  # as person and as previous person
        assert {h["previousPerson"] for h in expected["person ps-7"]} >= {"Patient/ps-7"}
        assert expected["patient pt-1"]
        rows = _rows(engine, raw=False)

        downgrade(engine, "0044")
        assert _INDEX in _indexes(engine)
        assert _INDEX not in _plan(engine)  # the index it had was never the reader's
        assert _rows(engine, raw=True) == rows  # the answers' rows, as they were

        migrate(engine)
        assert _INDEX not in _indexes(engine)
        assert _answers(engine) == expected
    finally:
        engine.dispose()
