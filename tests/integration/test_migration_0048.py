"""Migration 0048 on a database that holds an audit log (SQLite, and PostgreSQL in the -m db
pass): written at head, taken down to 0045 (PostgreSQL: the arrays become audit_link rows
again, one per link, with audit_link's two indexes; the column, its index and function
gone; SQLite: the column gone, audit_link untouched) and up again (the arrays rebuilt byte
for byte); the searches, the disclosure report and verify answer the same after it, and
records written after it chain on."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, inspect, text

from adapter.audit.chain import links_of
from adapter.audit.disclosures import disclosures
from adapter.audit.search import search_records
from adapter.audit.verify import verify
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_factory
from adapter.store.audit_reference import link_element, pack_links
from adapter.store.engine import downgrade
from tests.audit.audit_support import fill, records
from tests.audit.test_audit_link_entity import SEARCHES, UUID, _fill

_INDEXES = {"ix_audit_link_seq", "ix_audit_link_entity"}


def _answers(engine: Engine) -> list[Any]:
    found: list[Any] = []
    with make_factory(engine)() as session:
        for params in SEARCHES:
            total, page = search_records(session, params, count=100, offset=0)
            found.append((total, [r.seq for r in page]))
        found.append(disclosures(session, f"Patient/{UUID}", every_action=True))
    return found


def _arrays(engine: Engine) -> list[tuple[int, bytes | None]]:
    """Each record's stored links (``pack_links``), in seq order."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, links FROM audit_record ORDER BY seq")).all()
    return [(seq, None if links is None else bytes(links)) for seq, links in rows]


def _link_rows(engine: Engine) -> set[tuple[int, str, bytes]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, kind, reference FROM audit_link")).all()
    return {(seq, kind, bytes(ref) if not isinstance(ref, str) else ref) for seq, kind, ref in rows}


def test_0048_moves_the_links_and_back_and_answers_the_same(blank_database_url: str) -> None:
    engine = make_engine(blank_database_url)
    try:
        migrate(engine)
        factory = make_factory(engine)
        fill(factory)  # three messages through the pipeline
        _fill(factory)  # every form of reference
        postgresql = engine.dialect.name == "postgresql"
        before, arrays = _answers(engine), _arrays(engine)
        implied = {
            r["seq"]: sorted(link_element(k, ref) for k, ref in links_of(orjson.loads(r["body"])))
            for r in records(factory)
        }
        if postgresql:  # each record's links: its body's, sorted; NULL for none
            assert arrays == [
                (seq, pack_links(implied[seq]) if implied[seq] else None) for seq in sorted(implied)
            ]
        else:
            assert all(links is None for _, links in arrays)
        sqlite_links = None if postgresql else _link_rows(engine)

        downgrade(engine, "0047")
        assert "links" not in {c["name"] for c in inspect(engine).get_columns("audit_record")}
        assert {ix["name"] for ix in inspect(engine).get_indexes("audit_link")} >= {
            "ix_audit_link_seq"
        }
        rows = _link_rows(engine)
        if postgresql:
            assert {ix["name"] for ix in inspect(engine).get_indexes("audit_link")} == _INDEXES
            assert rows == {
                (seq, chr(e[0]), e[1:]) for seq, elements in implied.items() for e in elements
            }
            with engine.connect() as conn:
                assert not conn.execute(
                    text(
                        "SELECT count(*) FROM pg_proc WHERE proname = 'audit_link_hashes'"
                        " AND pronamespace = current_schema()::regnamespace"
                    )
                ).scalar_one()
        else:
            assert rows == sqlite_links

        migrate(engine)
        assert ("audit_link" in inspect(engine).get_table_names()) is not postgresql
        assert _arrays(engine) == arrays  # byte for byte
        assert _answers(engine) == before
        with factory() as session:
            assert verify(session).ok
        _fill(factory)  # written after the round trip: chained, found, verified
        with factory() as session:
            assert verify(session).ok
            total, _ = search_records(session, SEARCHES[0], count=1, offset=0)
        assert total == 2 * before[0][0] == 6
    finally:
        engine.dispose()
