"""Migration 0051 (decision 0124) on a database that holds data: on PostgreSQL the
references with no value (only a display) go from ``search_index`` rows to presence
markers in ``search_terms.refs`` and back; SQLite's rows do not change.

Observations written at head: one whose only reference is a
display (no ``search_terms`` row before), one with a display and a target, one with two
displays, one with none. Up, down and up again: the arrays and rows are each step's, and
``:missing`` answers the same at every step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from adapter.fhir.search_query import parse_search
from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.search import find
from adapter.store.search_terms import SHIFT, ref_key

T0 = datetime(2026, 12, 6, 8, tzinfo=UTC)
_NAMED = {"display": "王医生"}


def _obs(oid: str, performer: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Observation", "id": oid, "status": "final"}
    if performer:
        body["performer"] = performer
    return body


def _save(engine: Engine) -> None:
    with make_factory(engine).begin() as session:
        save_resources(
            session, [{"resourceType": "Practitioner", "id": "d0"}], message_id=None, now=T0
        )
        bodies = [
            _obs("o1", [_NAMED]),
            _obs("o2", [_NAMED, {"reference": "Practitioner/d0"}]),
            _obs("o3", [_NAMED, _NAMED]),
            _obs("o4", []),
        ]
        save_resources(session, bodies, message_id=None, now=T0)


def _missing(engine: Engine) -> tuple[list[str], list[str]]:
    out = []
    for value in ("true", "false"):
        with make_factory(engine)() as session:
            parsed = parse_search("Observation", [("performer:missing", value)])
            page = find(session, ["Observation"], parsed.criteria, count=50)
            out.append(sorted(b["id"] for b in page.bodies))
    return out[0], out[1]


def _state(engine: Engine) -> tuple[int, dict[str, list[int]]]:
    """The rows without a value, and each Observation's non-empty array (PostgreSQL)."""
    with engine.connect() as conn:
        bare = conn.execute(
            text(
                "SELECT count(*) FROM search_index WHERE kind = 4 AND target_key IS NULL"
                " AND reference IS NULL"
            )
        ).scalar_one()
        if engine.dialect.name != "postgresql":
            return bare, {}
        arrays = conn.execute(
            text(
                "SELECT r.id, t.refs FROM search_terms AS t JOIN resource AS r"
                " USING (resource_key) WHERE r.resource_type = 'Observation'"
            )
        )
        return bare, {rid: list(refs) for rid, refs in arrays if refs}


def _keys(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        performer = conn.execute(
            text(
                "SELECT param_id FROM search_param WHERE resource_type = 'Observation'"
                " AND param = 'performer' AND kind = 4"
            )
        ).scalar_one()
        d0 = conn.execute(text("SELECT resource_key FROM resource WHERE id = 'd0'")).scalar_one()
    return performer, d0


def test_0051_bare_references_to_markers_and_back(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        _save(engine)
        answers = _missing(engine)
        assert answers == (["o4"], ["o1", "o2", "o3"])
        performer, d0 = _keys(engine)
        marker, named = performer << SHIFT, ref_key(performer, d0)
        at_head = _state(engine)
        if engine.dialect.name == "postgresql":
            assert at_head == (0, {"o1": [marker], "o2": [marker, named], "o3": [marker]})
        else:
            assert at_head == (3, {})  # o3's two alike displays are one value

        downgrade(engine, "0050")
        bare, arrays = _state(engine)
        assert bare == 3  # o1, o2, o3: one row each, as before 0051
        if engine.dialect.name == "postgresql":
            assert arrays == {"o2": [named]}  # o1's and o3's rows held only markers
            with engine.connect() as conn:  # each resource's rows numbered apart
                doubled = conn.execute(
                    text(
                        "SELECT count(*) FROM (SELECT resource_key, row_id FROM search_index"
                        " GROUP BY 1, 2 HAVING count(*) > 1) AS d"
                    )
                ).scalar_one()
            assert doubled == 0
        assert _missing(engine) == answers

        migrate(engine)
        assert _state(engine) == at_head
        assert _missing(engine) == answers
    finally:
        engine.dispose()
