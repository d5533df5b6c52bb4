"""Migration 0032 on a database that holds data (SQLite, and PostgreSQL in the -m db pass):
a reference to a resource of the store is held as its target's resource key (decision 0080).

A store written at head holds both forms: the references whose target was stored when
they were written as keys, the others (a target stored later, another server's URL, a
``urn:uuid:``, a type the store does not index, an identifier only) as text. Downgraded
to 0030 every reference is text again; upgraded, every one whose target is stored now is a
key (the later target too). Every reference search (criteria, id only, type modifier,
``:identifier``, ``:missing``, chains, ``_has``, ``_include`` / ``_revinclude`` with
``:iterate``, sorts) answers exactly as the store written at head did, on both sides and
after a second round trip, and a save after the upgrade is found."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, inspect, text

from adapter.store import make_engine, migrate, save_resources
from adapter.store import session_factory as make_factory
from adapter.store.engine import downgrade
from tests.api.search_fixtures import T0
from tests.integration.index_0024 import rows_0024
from tests.integration.keyed_rows import as_compared, index_sql, untyped
from tests.integration.test_migration_0018 import search_answers as _answers
from tests.integration.test_migration_0028 import QUERIES as QUERIES_0028
from tests.integration.test_migration_0028 import _save_dated, _without_key

# written after the fixtures, one message each, in this order: ``late`` refers to the
# Patient ``pz`` stored only after it (its row keeps the text until the upgrade)
_REFERRING: list[dict[str, Any]] = [
    {
        "resourceType": "Observation",
        "id": "late",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/pz"},
        "performer": [
            {"reference": "https://other.example.org/fhir/Practitioner/far"},  # Type/id
            {"reference": "urn:uuid:8a6c2f3e-1111-4222-8333-944455556666"},
            {"identifier": {"system": "urn:oid:1.2.156.1.qs.staff", "value": "S-17"}},
        ],
        "specimen": {"reference": "Specimen/sp-none"},  # never stored
    },
    {"resourceType": "Patient", "id": "pz", "name": [{"family": "赵", "given": ["六"]}]},
    {
        "resourceType": "DiagnosticReport",
        "id": "dz",
        "status": "final",
        "code": {"text": "血常规"},
        "subject": {"reference": "Patient/pz"},
        "result": [{"reference": "Observation/late"}, {"reference": "Observation/oa1"}],
    },
]

QUERIES: list[tuple[str, list[tuple[str, str]]]] = [
    *QUERIES_0028,
    ("Observation", [("subject", "Patient/pz")]),
    ("Observation", [("patient", "pz")]),
    ("Observation", [("subject:Patient", "pa")]),
    ("Observation", [("performer", "Practitioner/far")]),
    ("Observation", [("performer", "Practitioner/dr1")]),
    ("Observation", [("performer", "urn:uuid:8a6c2f3e-1111-4222-8333-944455556666")]),
    ("Observation", [("performer:identifier", "urn:oid:1.2.156.1.qs.staff|S-17")]),
    ("Observation", [("specimen", "Specimen/sp-none")]),
    ("Observation", [("specimen:missing", "true")]),
    ("Observation", [("performer:missing", "false")]),
    ("Observation", [("subject", "Patient/pa,Patient/pz")]),
    ("Observation", [("subject.name", "赵")]),
    ("Observation", [("subject:Patient.name", "张")]),
    ("Patient", [("_has:Observation:subject:code", "718-7")]),
    ("Patient", [("_has:DiagnosticReport:subject:status", "final")]),
    ("Observation", [("_has:DiagnosticReport:result:status", "final")]),
    ("Observation", [("_include", "Observation:subject"), ("_include", "Observation:performer")]),
    ("DiagnosticReport", [("_include", "DiagnosticReport:result")]),
    (
        "DiagnosticReport",
        [("_include", "DiagnosticReport:result"), ("_include:iterate", "Observation:subject")],
    ),
    ("Patient", [("_revinclude", "Observation:subject")]),
    ("Patient", [("_revinclude", "DiagnosticReport:subject"), ("_revinclude", "Observation:*")]),
    ("Observation", [("_sort", "subject")]),
    ("Observation", [("_sort", "-subject")]),
    ("Observation", [("_sort", "-performer,date")]),
    ("Observation", [("code", "718-7"), ("_sort", "patient")]),
]


def _save(engine: Engine) -> None:
    _save_dated(engine)
    factory = make_factory(engine)
    for n, body in enumerate(_REFERRING):
        with factory.begin() as session:
            save_resources(session, [body], message_id=None, now=T0 + timedelta(days=3, minutes=n))


def _forms(engine: Engine) -> tuple[int, int]:
    """(reference rows held as a key, reference rows held as text)."""
    with engine.connect() as conn:
        if "target_key" not in {c["name"] for c in inspect(conn).get_columns("search_index")}:
            keyed = 0
        else:
            keyed = conn.execute(
                text(f"SELECT count(*) FROM {index_sql(conn)} s WHERE target_key IS NOT NULL")
            ).scalar_one()
        texts = conn.execute(
            text("SELECT count(*) FROM search_index WHERE kind = 4 AND reference IS NOT NULL")
        ).scalar_one()
        return keyed, texts


def _late_subject(engine: Engine) -> tuple[Any, Any]:
    """The (text, key) of ``late``'s subject row."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                f"SELECT si.reference, si.target_key FROM {index_sql(conn)} si"
                " JOIN resource r ON r.resource_key = si.resource_key"
                " JOIN search_param p ON p.param_id = si.param_id"
                " WHERE r.id = 'late' AND p.param = 'patient' AND si.kind = 4"
            )
        ).one()


def _texts_naming_stored(engine: Engine) -> int:
    """Reference rows held as text although they name a stored resource."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM search_index si JOIN resource r"
                " ON r.resource_type || '/' || r.id = si.reference WHERE si.kind = 4"
            )
        ).scalar_one()


def _rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        # without the identifiers' types: two forms since 0042 (keyed_rows.untyped)
        return untyped([_without_key(r) for r in rows_0024(conn)])


def test_0032_references_as_keys_answer_as_before(
    database_url: str, blank_database_url: str
) -> None:
    head, old = make_engine(database_url), make_engine(blank_database_url)
    try:
        _save(head)
        expected = _answers(head, QUERIES)
        tail = expected[len(QUERIES_0028) :]
        assert all(ids or extra for ids, _, extra in tail)  # every reference query finds
        assert tail[0][0] == ["late"] and tail[1][0] == ["late"]  # the text row is found
        keyed, texts = _forms(head)
        assert keyed > 0 and texts > 0  # both forms at head
        assert _late_subject(head)[0] == "Patient/pz"  # stored after: text
        written = _rows(head)

        migrate(old)
        _save(old)
        downgrade(old, "0030")
        assert _forms(old) == (0, keyed + texts)  # every reference as text
        # 0030's rows: what 0030's searches read (PostgreSQL: keyed_rows.as_compared)
        assert as_compared(old, _rows(old)) == as_compared(old, written)

        migrate(old)
        assert as_compared(old, _rows(old)) == as_compared(old, written)
        after_keyed, after_texts = _forms(old)
        # every reference whose target is stored now is a key (``late``'s subject too)
        assert after_keyed + after_texts == keyed + texts and after_keyed > keyed
        assert _texts_naming_stored(old) == 0 < _texts_naming_stored(head)
        assert _late_subject(old)[0] is None
        assert _answers(old, QUERIES) == expected

        # a save after the upgrade: a key, and found
        later = {
            "resourceType": "Observation",
            "id": "later",
            "status": "final",
            "subject": {"reference": "Patient/pz"},
        }
        with make_factory(old).begin() as session:
            save_resources(session, [later], message_id=None, now=T0 + timedelta(days=4))
        found = _answers(old, [("Observation", [("subject", "Patient/pz")])])
        assert found[0][0] == ["later", "late"]
        assert _forms(old)[0] == after_keyed + 1

        rows_before = _rows(old)
        downgrade(old, "0030")
        migrate(old)
        assert as_compared(old, _rows(old)) == as_compared(old, rows_before)
    finally:
        head.dispose()
        old.dispose()
