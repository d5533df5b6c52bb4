"""The patient and entity searches over a record's links: audit_link's key on SQLite, on
PostgreSQL ``audit_record.links`` under a GIN index of its entities' hashes (migration 0048,
decision 0119; a hash index of audit_link from migration 0040 to 0048, decision 0092).

* ``element_hash`` (Python) and ``audit_link_hashes`` (the index's function) agree on every
  form a stored reference takes (packed, versioned, text, escaped, empty);
* the patient and entity searches and the disclosure report can read that index (the
  plan, sequential scans off) and find what the key found: every version of an entity and
  nothing that only looks like it, on both databases (tests/audit/test_audit_search.py
  too), including an entity that ends in ``/_history``;
* verify names a record whose stored links were changed, added to or removed;
* migration 0040 on a filled log: every link kept, the key gone and the index there (and
  back again on downgrade), the searches answering the same, verify clean.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, delete, insert, inspect, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.expression import ClauseElement, Executable

from adapter.audit.disclosures import disclosures, records_about
from adapter.audit.events import AuditEvent, record
from adapter.audit.search import criteria, search_records
from adapter.audit.verify import verify
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_factory
from adapter.store.audit_log import AuditLink, AuditRecord
from adapter.store.audit_reference import (
    element_hash,
    link_element,
    pack,
    pack_links,
    unpack_links,
)
from adapter.store.engine import downgrade

UUID = "0b6f8a52-3c1e-4d7a-9e21-5f0c8d9b7a10"
OTHER = "0b6f8a52-3c1e-4d7a-9e21-5f0c8d9b7a11"
REFERENCES = [
    f"Observation/{UUID}/_history/1",  # packed, versioned
    f"Observation/{UUID}/_history/2",
    f"Observation/{UUID}",  # packed, no version
    f"Observation/{OTHER}/_history/1",  # packed: the same first 17 bytes
    "Observation/o1/_history/1",  # text
    "Observation/o1",
    "Observation/o1x/_history/1",
    "Observation/o1/ahistory/1",  # "_" is not a wildcard
    "Observation/o1/_history0",
    "Odd/_history/_history/3",  # an entity that ends in "/_history"
    "Odd/_history",
    f"Unknowntype/{UUID}/_history/1",  # a UUID of a type that is not packed: text
    "\x01Observation/o1/_history/1",  # escaped on storage
]
SEARCHES: list[list[tuple[str, str]]] = [
    [("entity", f"Observation/{UUID}")],
    [("entity", f"Observation/{UUID}/_history/2")],
    [("entity", f"Observation/{OTHER}")],
    [("entity", "Observation/o1")],
    [("entity", "Observation/o1/_history/1")],
    [("entity", "Observation/o1x")],
    [("entity", "Odd/_history")],
    [("entity", "Odd")],
    [("entity", f"Unknowntype/{UUID}")],
    [("entity", "\x01Observation/o1")],
    [("entity", f"Observation/o1,Observation/{UUID}")],
    [("patient", "p1")],
    [("patient", f"Patient/{UUID}")],
    [("patient", "p0"), ("entity", "Observation/o1")],
]


def _fill(factory: sessionmaker[Session]) -> None:
    at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with factory.begin() as session:
        for n, reference in enumerate(REFERENCES):
            patients = (f"Patient/p{n % 2}",) + ((f"Patient/{UUID}",) if n % 3 == 0 else ())
            event = AuditEvent(
                "fhir.read",
                "success",
                "anonymous",
                reference,
                f"req-{n}",
                at,
                entities=(reference,),
                patients=patients,
            )
            record(event, session=session)


def _answers(factory: sessionmaker[Session]) -> list[list[str]]:
    """What each search finds, as the references of the records found."""
    found = []
    with factory() as session:
        for params in SEARCHES:
            _, page = search_records(session, params, count=100, offset=0)
            found.append(sorted(REFERENCES[int(r.correlation_id[4:])] for r in page))
        found.append(
            [str(d["seq"]) for d in disclosures(session, f"Patient/{UUID}", every_action=True)]
        )
    return found


def _expected() -> list[list[str]]:
    """The answers worked out from the references (the key's semantics, decision 0072)."""

    def versions_of(entity: str) -> list[str]:
        return [r for r in REFERENCES if r == entity or r.startswith(entity + "/_history/")]

    def of(entity: str) -> list[str]:
        return versions_of(entity) if "/_history/" not in entity else [entity]

    by_patient = {p: [r for n, r in enumerate(REFERENCES) if n % 2 == p] for p in (0, 1)}
    uuid_patient = [r for n, r in enumerate(REFERENCES) if n % 3 == 0]
    return [
        sorted(of(f"Observation/{UUID}")),
        [f"Observation/{UUID}/_history/2"],
        [f"Observation/{OTHER}/_history/1"],
        sorted(of("Observation/o1")),
        ["Observation/o1/_history/1"],
        ["Observation/o1x/_history/1"],
        sorted(["Odd/_history/_history/3", "Odd/_history"]),
        ["Odd/_history/_history/3"],
        [f"Unknowntype/{UUID}/_history/1"],
        ["\x01Observation/o1/_history/1"],
        sorted(of("Observation/o1") + of(f"Observation/{UUID}")),
        sorted(by_patient[1]),
        sorted(uuid_patient),
        sorted(set(by_patient[0]) & set(of("Observation/o1"))),
        [str(n + 1) for n in range(len(REFERENCES)) if n % 3 == 0],
    ]


def test_the_searches_find_every_version_and_nothing_else(
    session_factory: sessionmaker[Session],
) -> None:
    _fill(session_factory)
    assert _answers(session_factory) == _expected()


def test_element_hash_is_the_index_function(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("the function is PostgreSQL's index")
    stored = (
        [pack(r) for r in REFERENCES]
        + [
            b"",
            b"\x01",
            b"\x01" + bytes(16),  # 17 bytes: too short to be packed
            b"/_history/",
            b"a/_history/b/_history/c",
            pack(f"Patient/{UUID}")[:18] + b"\x00/_history/2",
        ]
    )
    elements = [kind + s for s in stored for kind in (b"p", b"e")] + [b"", b"e"]
    elements.append(b"e" + pack("Observation/" + "x" * 300))  # a length of two bytes
    one = text("SELECT audit_link_hashes(CAST(:e AS bytea))")
    read = text("SELECT audit_link_elements(CAST(:e AS bytea))")
    with engine.connect() as connection:
        for element in elements:
            stored_form = pack_links([element])
            found = connection.execute(one, {"e": stored_form}).scalar_one()
            assert found == [element_hash(element)], element
            assert connection.execute(read, {"e": stored_form}).scalar_one() == [element]
        every = pack_links(elements)
        both = connection.execute(one, {"e": every}).scalar_one()
        assert connection.execute(read, {"e": every}).scalar_one() == elements
        for cut in (1, 2, 25, len(every) - 3):  # cut short in the database: read, no error
            short = connection.execute(read, {"e": every[:cut]}).scalar_one()
            assert short == unpack_links(every[:cut])
    assert sorted(both) == sorted({element_hash(e) for e in elements})  # each once
    assert unpack_links(every) == elements


class _Explain(Executable, ClauseElement):
    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(_Explain)
def _explain(element: _Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN " + str(compiler.process(element.statement, **kw))


def _plan(session: Session, statement: Any) -> str:
    session.execute(text("SET LOCAL enable_seqscan = off"))
    return "\n".join(row[0] for row in session.execute(_Explain(statement)))


def test_the_searches_can_read_the_entity_index(session_factory: sessionmaker[Session]) -> None:
    """PostgreSQL: every search, and the disclosure report, reads the GIN index of the
    links' entity hashes (sequential scans off: which index it can use is what is asked),
    ``<ref>/_history`` too (its versions' entity is another: both are probed). SQLite:
    unchanged."""
    _fill(session_factory)
    with session_factory() as session:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("SQLite keeps its key (the table)")
        for params in SEARCHES:
            plan = _plan(session, select(AuditRecord.seq).where(*criteria(params)))
            assert "ix_audit_record_links" in plan, (params, plan)
        report = records_about(["Patient/p1", f"Patient/{UUID}"])
        assert "ix_audit_record_links" in _plan(session, report)


def _tamper(session: Session, seq: int, change: str) -> None:
    """Change the stored links of record ``seq`` the way the database's owner could."""
    if session.get_bind().dialect.name == "postgresql":
        stored = session.execute(
            text("SELECT links FROM audit_record WHERE seq = :s"), {"s": seq}
        ).scalar_one()
        elements = unpack_links(bytes(stored))
        forged = link_element("patient", "Patient/zz")
        elements = {
            "drop": elements[1:],
            "add": [*elements, forged],
            "swap": [forged, *elements[1:]],
        }[change]
        session.execute(
            text("UPDATE audit_record SET links = :x WHERE seq = :s"),
            {"s": seq, "x": pack_links(elements)},
        )
        return
    if change == "drop":
        first = session.execute(
            select(AuditLink.kind, AuditLink.reference).where(AuditLink.seq == seq).limit(1)
        ).one()
        session.execute(
            delete(AuditLink).where(
                AuditLink.seq == seq, AuditLink.kind == first[0], AuditLink.reference == first[1]
            )
        )
    else:
        if change == "swap":
            session.execute(text("DELETE FROM audit_link WHERE seq = :s"), {"s": seq})
        session.execute(insert(AuditLink).values(seq=seq, kind="patient", reference="Patient/zz"))


@pytest.mark.parametrize("change", ["drop", "add", "swap"])
def test_verify_names_a_record_whose_links_were_changed(
    session_factory: sessionmaker[Session], change: str
) -> None:
    _fill(session_factory)
    with session_factory.begin() as session:
        _tamper(session, 5, change)
    with session_factory() as session:
        report = verify(session)
    assert [(f.kind, f.seq) for f in report.findings] == [("changed", 5)]
    assert "links differ" in report.findings[0].text


def _schema(engine: Engine) -> tuple[list[str] | None, set[str]]:
    inspector = inspect(engine)
    key = inspector.get_pk_constraint("audit_link").get("constrained_columns") or None
    return key, {ix["name"] for ix in inspector.get_indexes("audit_link")}


def _links(engine: Engine) -> list[tuple[Any, ...]]:
    with make_factory(engine)() as session:
        rows = session.execute(select(AuditLink.seq, AuditLink.kind, AuditLink.reference))
        return sorted(tuple(row) for row in rows)


def test_migration_0040_keeps_every_link_and_answers_the_same(blank_database_url: str) -> None:
    """Written at head, taken down to 0038 (the key; on PostgreSQL through 0048's downgrade,
    which gives audit_link back), up to 0040 (the hash index) and to head again."""
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        factory = make_factory(engine)
        _fill(factory)
        before = _answers(factory)
        assert before == _expected()
        postgresql = engine.dialect.name == "postgresql"
        key = ["kind", "reference", "seq"]

        downgrade(engine, "0038")
        assert _schema(engine) == (key, {"ix_audit_link_seq"})
        links = _links(engine)
        assert len(links) == 2 * len(REFERENCES) + sum(n % 3 == 0 for n in range(len(REFERENCES)))

        migrate(engine, "0040")
        after = (None, {"ix_audit_link_seq", "ix_audit_link_entity"}) if postgresql else None
        assert _schema(engine) == (after or (key, {"ix_audit_link_seq"}))
        assert _links(engine) == links

        migrate(engine)
        assert _answers(factory) == before
        with factory() as session:
            assert verify(session).ok
    finally:
        engine.dispose()
