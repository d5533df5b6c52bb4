"""Migration 0024 on a database that holds data (SQLite, and PostgreSQL in the -m db pass):
a store at 0022 holding the text rows the store wrote before (a CodeableConcept's text
beside a coding with the same display) is upgraded; exactly those rows go, a concept text
of its own stays, and searches (``:text`` among them) answer as before the upgrade and as a
store written at head. On PostgreSQL the index's primary key is dropped and the downgrade
builds it again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, MetaData, Table, insert, inspect, text

from adapter.fhir.index_values import IndexValue, index_values, normalize_text
from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from adapter.store.resources import index_row
from tests.api.search_fixtures import LOINC, T0, resources
from tests.integration.index_0024 import columns_0024, rows_0024
from tests.integration.test_migration_0018 import QUERIES as QUERIES_0018
from tests.integration.test_migration_0018 import search_answers as _answers

LOCAL = "https://qingshan.example.cn/fhir/sid/county-hospital/lab-item"
LONG = "很长的检验项目名称" * 30  # 270 characters: value_norm cut to a key, the whole kept

# (id, the concept's text, whether a coding's display already gives it)
_CONCEPTS: list[tuple[str, str, bool]] = [
    ("t1", "葡萄糖", True),  # the usual lab result: text = the local item's display
    ("t2", "Hb (venous)", False),  # a text of its own
    ("t3", LONG, True),
    ("t4", "glucose", True),  # the display ＧＬＵＣＯＳＥ: the same once normalised
    ("t5", LONG[:-1] + "X", False),  # the same 200-character key, another text
]


def _extra() -> list[dict[str, Any]]:
    pa = {"reference": "Patient/pa"}
    displays = {"t1": "葡萄糖", "t2": "Hemoglobin", "t3": LONG, "t4": "ＧＬＵＣＯＳＥ", "t5": LONG}
    out = []
    for oid, concept_text, _ in _CONCEPTS:
        code = {
            "coding": [
                {"system": LOINC, "code": "2345-7", "display": "Glu [Mass/volume]"},
                {"system": LOCAL, "code": f"L-{oid}", "display": displays[oid]},
            ],
            "text": concept_text,
        }
        out.append(
            {
                "resourceType": "Observation",
                "id": oid,
                "status": "final",
                "code": code,
                "subject": pa,
                "effectiveDateTime": "2026-05-03T08:00:00+08:00",
            }
        )
    return out


QUERIES: list[tuple[str, list[tuple[str, str]]]] = [
    *QUERIES_0018,
    ("Observation", [("code:text", "葡萄糖")]),
    ("Observation", [("code:text", "glucose")]),
    ("Observation", [("code:text", "GLU [mass")]),
    ("Observation", [("code:text", "hb (ven")]),
    ("Observation", [("code:text", "hemo")]),
    ("Observation", [("code:text", LONG[:50])]),
    ("Observation", [("code:text", "血常规")]),  # a concept with only text (the fixtures)
    ("Observation", [("code:missing", "false")]),
    ("Observation", [("code:missing", "true")]),
    ("Observation", [("code", f"{LOCAL}|L-t1")]),
    ("Observation", [("code:text", "葡萄糖"), ("_sort", "-code")]),
]


def _save(engine: Engine) -> None:
    factory = make_factory(engine)
    for n, body in enumerate([*resources(), *_extra()]):
        with factory.begin() as session:
            save_resources(session, [body], message_id=None, now=T0 + timedelta(minutes=n))


def _text_rows(engine: Engine) -> list[tuple[Any, ...]]:
    """The token rows without code: (resource id, param, value_norm, value_norm_full); at
    head or in 0024's form (type, parameter and kind by name)."""
    with engine.connect() as conn:
        if "param_id" in {c["name"] for c in inspect(conn).get_columns("search_index")}:
            keys = dict(conn.execute(text("SELECT resource_key, id FROM resource")).all())
            return sorted(
                (keys[r["resource_key"]], r["param"], r["value_norm"], r["value_norm_full"])
                for r in rows_0024(conn)
                if r["kind"] == "token" and r["code"] is None and r["value_norm"] is not None
            )
        return sorted(
            conn.execute(
                text(
                    "SELECT r.id, si.param, si.value_norm, si.value_norm_full FROM search_index si"
                    " JOIN resource r ON r.resource_key = si.resource_key"
                    " WHERE si.kind = 'token' AND si.code IS NULL AND si.value_norm IS NOT NULL"
                )
            ).all()
        )


_INDEX_0024 = Table("search_index", MetaData(), *columns_0024())


def _add_old_text_rows(engine: Engine) -> int:
    """The rows the store wrote before 0024 for a text its codings' displays already give
    (``engine`` at 0022)."""
    rows = []
    with engine.connect() as conn:
        keys = dict(conn.execute(text("SELECT id, resource_key FROM resource")).all())
    for oid, concept_text, repeated in _CONCEPTS:
        if repeated:
            value = IndexValue(
                "code", "token", value=concept_text, value_norm=normalize_text(concept_text)
            )
            row = index_row("Observation", keys[oid], value)
            row["system_id"] = row.pop("system")
            row["value"] = None  # a token's text is kept normalised only
            rows.append(row)
    with engine.begin() as conn:
        conn.execute(insert(_INDEX_0024), rows)
    return len(rows)


def _has_primary_key(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_constraint"
                    " WHERE conrelid = 'search_index'::regclass AND contype = 'p'"
                )
            ).scalar_one()
        )


def test_store_writes_no_text_row_a_display_already_gives() -> None:
    concept = {
        "resourceType": "Observation",
        "id": "x",
        "status": "final",
        "code": {
            "coding": [{"system": LOCAL, "code": "2001", "display": "葡萄糖"}, {"code": "g"}],
            "text": " 葡萄糖 ",
        },
        "category": [{"text": "检验"}, {"coding": [{"code": "lab", "display": "检验 "}]}],
    }
    rows = [(v.param, v.code, v.value_norm) for v in index_values(concept) if v.kind == "token"]
    code_rows = [r for r in rows if r[0] == "code"]
    assert code_rows == [("code", "2001", "葡萄糖"), ("code", "g", None)]
    # another concept of the parameter: its text row stays (the rule is per concept)
    assert ("category", None, "检验") in rows and ("category", "lab", "检验") in rows


def test_0024_drops_redundant_text_rows_and_answers_as_before(
    database_url: str, blank_database_url: str
) -> None:
    head, old = make_engine(database_url), make_engine(blank_database_url)
    try:
        _save(head)
        expected = _answers(head, QUERIES)
        assert all(ids or extra for ids, _, extra in expected[: len(QUERIES_0018)])
        found = {
            q[1][0][1]: set(a[0])
            for q, a in zip(QUERIES, expected, strict=True)
            if q[1][0][0] == "code:text" and len(q[1]) == 1
        }
        assert found["葡萄糖"] == {"t1"} and found["glucose"] == {"t4"}
        assert found["hb (ven"] == {"t2"} and found[LONG[:50]] == {"t3", "t5"}
        assert found["GLU [mass"] == {f"t{n}" for n in range(1, 6)}
        at_head = _text_rows(head)
        kept = {(r[0], r[2]) for r in at_head}
        assert ("t2", "hb (venous)") in kept and (
            "t5",
            normalize_text(LONG[:-1] + "X")[:200],
        ) in kept
        assert not {"t1", "t3", "t4"} & {r[0] for r in at_head}

        # a store at 0022 as the code before wrote it: written at head (the rows 0024 would
        # delete are added below), then downgraded through 0026's downgrade
        migrate(old)
        _save(old)
        downgrade(old, "0022")
        assert _text_rows(old) == at_head
        added = _add_old_text_rows(old)
        assert added == 3 and len(_text_rows(old)) == len(at_head) + added
        if old.dialect.name == "postgresql":
            assert _has_primary_key(old)

        migrate(old)
        assert _text_rows(old) == at_head  # exactly the redundant rows went
        assert _answers(old, QUERIES) == expected
        if old.dialect.name == "postgresql":
            assert not _has_primary_key(old)
            with old.connect() as conn:  # each row numbered among its resource's (0098)
                ids = list(conn.execute(text("SELECT resource_key, row_id FROM search_index")))
            assert len(ids) == len(set(ids)) and all(i[1] is not None for i in ids)

        # a save after the upgrade: rows get their ids, no redundant text row
        late = {**_extra()[0], "id": "late"}
        with make_factory(old).begin() as session:
            save_resources(session, [late], message_id=None, now=T0 + timedelta(days=1))
        assert "late" not in {r[0] for r in _text_rows(old)}
        late_answer = _answers(old, [("Observation", [("code:text", "葡萄糖")])])
        assert set(late_answer[0][0]) == {"t1", "late"}

        before_down = _answers(old, QUERIES)
        rows_before = _text_rows(old)

        downgrade(old, "0022")
        if old.dialect.name == "postgresql":
            assert _has_primary_key(old)
        assert _text_rows(old) == rows_before
        migrate(old)  # and up again: the same answers
        assert _answers(old, QUERIES) == before_down
    finally:
        head.dispose()
        old.dispose()
