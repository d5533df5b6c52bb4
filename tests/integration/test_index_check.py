"""The stored search index is what the current code derives from the stored bodies
(decision 0130): every row and array element of every resource, its interned ids
(``search_param``, ``search_system``, PostgreSQL's ``search_token`` and ``search_terms``)
named by what they stand for, after a mixed ingest that creates the parameters on the way
(lab, referral, discharge; bulk batches with translation workers, a batch whose first
message rolls back, single messages, the POST /ingest drain; on PostgreSQL a serialization
failure retried). ``adapter store check-index`` is the same check for operators. Runs on
SQLite and, in the ``-m db`` pass, on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from adapter.cli import app
from adapter.pipeline.drain import drain
from adapter.pipeline.receipt import Receipt
from adapter.settings import get_settings
from adapter.store import make_engine, reindex
from adapter.store import session_factory as make_factory
from adapter.store.index_check import check_index, describe
from adapter.store.interning import forget_all
from adapter.store.models import Base, Resource, SearchParam
from tests.integration.referral_support import pipeline_for
from tests.integration.test_bulk_ingest import _fixtures, _routed
from tests.integration.test_long_values import (
    REFUSED_WORD,
    _refused_oru,
    long_oru,
    refusing_database,  # noqa: F401  (a fixture, found by its name)
)

ROOT = Path(__file__).resolve().parents[2]
XML = ROOT / "fixtures" / "xml"


def _documents() -> list[tuple[bytes, Receipt]]:
    """Referral slips and discharge summaries of the example consortium."""
    paths = [
        (XML / "referral" / "shiqiao-his" / "up-slip.xml", "shiqiao-his"),
        (XML / "referral" / "county-emr" / "down-slip.xml", "county-emr"),
        (XML / "discharge" / "county-emr" / "basic.xml", "county-emr"),
        (XML / "discharge" / "county-emr" / "tcm-down-referral.xml", "county-emr"),
        (XML / "discharge" / "county-emr" / "corrected.xml", "county-emr"),
    ]
    return [(path.read_bytes(), Receipt(source, "cli", peer=path.name)) for path, source in paths]


def _checked(factory: sessionmaker[Session]) -> None:
    """Every current resource's rows are exactly the derived ones, no row is an orphan."""
    with factory() as session:
        found = check_index(session)
        session.rollback()
    assert found.resources > 50 and found.rows > 500
    assert found.ok, "\n".join(describe(found))


def test_index_rows_are_what_the_bodies_give_after_a_mixed_ingest(
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    refusing_database: None,  # noqa: F811
) -> None:
    labs = _fixtures()
    pipeline = pipeline_for(_routed(tmp_path), session_factory)
    # an empty store: the first message of the first batch creates parameters and rolls
    # back (a value the database refuses), the others create them again
    refused = (_refused_oru("CHECK0001"), Receipt("std-hl7v2", "cli"))
    first = list(pipeline.ingest_many([refused, *labs[:8]], batch=10))
    assert [r.status for r in first][:1] == ["quarantined"]
    assert all(r.status.startswith("processed") for r in first[1:])
    with session_factory() as session:
        assert session.scalar(select(SearchParam.param_id).limit(1)) is not None
    with pipeline.translation_workers(2):  # translated (and derived) in other processes
        pool = pipeline.translation_pool
        assert pool is not None
        pool.min_batch = 1
        worked = list(pipeline.ingest_many(labs[8:16], batch=4))
    assert all(r.status.startswith("processed") for r in worked)
    for raw, receipt in _documents()[:3]:  # one transaction a message
        assert pipeline.ingest(raw, receipt).status.startswith("processed")
    # kept on receipt, stored by the drain: the other slips, summaries and labs
    for raw, receipt in [*_documents()[3:], *labs[16:]]:
        pipeline.receive(raw, Receipt(receipt.source_system, "http", peer=receipt.peer))
    assert drain(pipeline, batch=6) == len(_documents()[3:]) + len(labs[16:])
    with session_factory() as session:
        types = set(session.scalars(select(Resource.resource_type).distinct()))
    assert {"Composition", "Task", "ServiceRequest", "Observation", "Patient"} <= types
    _checked(session_factory)


def test_the_check_finds_a_row_that_names_another_parameter(
    session_factory: sessionmaker[Session], engine: Engine, tmp_path: Path
) -> None:
    """The check can fail: one row given another parameter's id (the same kind: only the
    name tells them apart), a row left by a deleted resource."""
    pipeline = pipeline_for(_routed(tmp_path), session_factory)
    list(pipeline.ingest_many(_fixtures()[:6], batch=10))
    with engine.begin() as conn:
        dates = dict(
            conn.execute(
                text(
                    "SELECT resource_type, param_id FROM search_param WHERE param = 'date'"
                    " AND resource_type IN ('Observation', 'DiagnosticReport')"
                )
            ).all()
        )
        victim = conn.execute(
            text(
                "SELECT min(i.resource_key) FROM search_index i"
                f" WHERE i.param_id = {dates['Observation']}"
            )
        ).scalar_one()
        conn.execute(
            text(
                f"UPDATE search_index SET param_id = {dates['DiagnosticReport']}"
                f" WHERE resource_key = {victim} AND param_id = {dates['Observation']}"
            )
        )
    forget_all()
    with session_factory() as session:
        found = check_index(session)
        session.rollback()
    assert not found.ok and found.different == 1 and found.orphans == 0
    (difference,) = found.differences
    assert (difference.resource_type, difference.resource_key) == ("Observation", victim)
    assert [row[1] for row in difference.stored_only] == [("DiagnosticReport", "date", 3)]
    assert [row[1] for row in difference.derived_only] == [("Observation", "date", 3)]
    assert found.by_param == {("DiagnosticReport", "date", 3): 1}
    # a row of no current resource
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE resource SET deleted = TRUE WHERE resource_key = {victim}"))
    with session_factory() as session:
        found = check_index(session)
        session.rollback()
    assert found.different == 0 and found.orphans > 0


@pytest.mark.db
def test_a_serialization_failure_retried_leaves_the_index_whole(
    session_factory: sessionmaker[Session], engine: Engine, tmp_path: Path
) -> None:
    """PostgreSQL breaks a message's transaction after its rows were written (40001, the
    first time only): the message is tried again and its rows are the derived ones."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's serialization failure")
    with engine.begin() as conn:
        conn.execute(text("CREATE SEQUENCE test_once"))
        conn.execute(
            text(
                "CREATE FUNCTION test_fail_once() RETURNS trigger AS $$ BEGIN "
                "IF NEW.status LIKE 'processed%' AND nextval('test_once') = 1 THEN "
                "RAISE EXCEPTION 'serialization by the test' USING ERRCODE = '40001'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER test_fail_once BEFORE INSERT OR UPDATE ON inbound_message"
                " FOR EACH ROW EXECUTE FUNCTION test_fail_once()"
            )
        )
    try:
        pipeline = pipeline_for(_routed(tmp_path), session_factory)
        labs = _fixtures()
        result = pipeline.ingest(*labs[0])  # an empty store: its parameters are new
        assert result.status.startswith("processed")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT last_value FROM test_once")).scalar_one() >= 2
            conn.execute(text("ALTER SEQUENCE test_once RESTART"))
        bulk = list(pipeline.ingest_many([*labs[1:], *_documents()], batch=10))
        assert all(r.status.startswith("processed") for r in bulk)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER test_fail_once ON inbound_message"))
            conn.execute(text("DROP FUNCTION test_fail_once()"))
            conn.execute(text("DROP SEQUENCE test_once"))
    _checked(session_factory)


@pytest.fixture
def env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ADAPTER_DATABASE_URL", database_url)
    monkeypatch.setenv("ADAPTER_CONFIG", str(ROOT / "fixtures" / "consortium.yaml"))
    monkeypatch.setenv("ADAPTER_MAPPINGS_DIR", str(ROOT / "mappings"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_adapter_store_check_index(
    env: None, session_factory: sessionmaker[Session], engine: Engine, tmp_path: Path
) -> None:
    pipeline = pipeline_for(_routed(tmp_path), session_factory)
    list(pipeline.ingest_many([(long_oru(control="CLI00001"), Receipt("std-hl7v2", "cli"))]))
    result = CliRunner().invoke(app, ["store", "check-index"])
    assert result.exit_code == 0, result.output
    assert "0 resources differ; 0 rows of no current resource" in result.output
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM search_index WHERE kind = 3"))  # the dates
    result = CliRunner().invoke(app, ["store", "check-index"])
    assert result.exit_code == 1, result.output
    assert "resources differ" in result.output and REFUSED_WORD not in result.output
    assert "only derived" in result.output
    result = CliRunner().invoke(app, ["reindex"])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(app, ["store", "check-index"]).exit_code == 0


def _emptied(url: str) -> None:
    """Every table emptied and its ids started again through an engine of its own: what
    restoring another backup under a running process looks like to that process."""
    other = make_engine(url, poolclass=NullPool)
    try:
        with other.begin() as conn:
            if other.dialect.name == "postgresql":
                names = conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                        " AND tablename <> 'alembic_version'"
                    )
                ).scalars()
                conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
                return
            for table in reversed(Base.metadata.sorted_tables):
                if table.info.get("dialect") in (None, "sqlite"):
                    conn.execute(table.delete())
    finally:
        other.dispose()


def test_the_check_finds_rows_written_with_ids_cached_from_another_store(
    session_factory: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    """The interning tables only grow (adapter/store/interning.py): a process that cached
    ids before its database was emptied and filled again by another (a backup restored
    under it) writes rows naming other parameters. The check finds them; ``reindex``
    writes them again."""
    labs = _fixtures()
    pipeline = pipeline_for(_routed(tmp_path), session_factory)
    list(pipeline.ingest_many(labs[:3], batch=10))  # this process caches the ids
    _emptied(database_url)
    elsewhere = make_engine(database_url, poolclass=NullPool)
    try:  # another process stores documents first: the parameters get other ids
        other = pipeline_for(_routed(tmp_path), make_factory(elsewhere))
        for raw, receipt in _documents()[2:3]:
            assert other.ingest(raw, receipt).status.startswith("processed")
    finally:
        elsewhere.dispose()
    results = list(pipeline.ingest_many(labs[3:6], batch=10))  # with the ids it cached
    assert all(r.status.startswith("processed") for r in results)
    with session_factory() as session:
        found = check_index(session)
        session.rollback()
    assert not found.ok and found.different > 0
    with session_factory.begin() as session:
        reindex(session)
    with session_factory() as session:
        found = check_index(session)
        session.rollback()
    assert found.ok, "\n".join(describe(found))
