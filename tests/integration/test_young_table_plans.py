"""Plans that stay on an index while a table has no statistics yet (a young table: autovacuum
not yet run, or off). Decision 0090: the drain's DELETE of a batch's search index rows, an
IN list of constants, was planned as a Seq Scan of the whole search index."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from adapter.store import make_engine, migrate
from adapter.store.resources import _delete_index_rows


@pytest.fixture
def young(blank_database_url: str) -> Iterator[Engine]:
    """A store of its own, just migrated: the run's shared schema may have been analysed by
    a test before (a migration test takes it down and up again with rows in it, and an
    upgrade analyses a table that holds rows)."""
    engine = make_engine(blank_database_url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        pytest.skip("PostgreSQL's planner")
    migrate(engine)
    yield engine
    engine.dispose()


def test_deleting_a_batchs_index_rows_stays_on_the_index_without_statistics(
    young: Engine,
) -> None:
    engine = young
    sent: list[tuple[str, Any]] = []

    def remember(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM SEARCH_INDEX"):
            sent.append((statement, params))

    with engine.connect() as conn:  # one transaction, rolled back
        analysed = conn.execute(
            text(
                "SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables "
                "WHERE relname = 'search_index' AND schemaname = current_schema()"
            )
        ).one()
        assert analysed == (None, None)  # a new store's migrations analysed nothing empty
        # a grown index (2,000 resources' rows, as after ~2,000 lab messages' worth of one
        # parameter each); the rows need no resource or parameter for the planner
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(
            text(
                # row_id: the row's number among its resource's rows (decision 0098)
                "INSERT INTO search_index (row_id, resource_key, param_id, kind) "
                "SELECT p - 1, k, p, 0 FROM generate_series(1, 2000) k, generate_series(1, 90) p"
            )
        )
        event.listen(conn, "before_cursor_execute", remember)
        _delete_index_rows(Session(bind=conn), list(range(1001, 1201)))  # a drain batch's
        event.remove(conn, "before_cursor_execute", remember)
        assert len(sent) == 1
        statement, params = sent[0]
        plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + statement, params).scalars())
        # and it deleted exactly the batch's rows
        left = conn.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE resource_key BETWEEN 1001 AND 1200) "
                "FROM search_index"
            )
        ).one()
        assert tuple(left) == (1800 * 90, 0)
        conn.rollback()
    assert "Seq Scan on search_index" not in plan, plan
    assert "ix_search_index_resource" in plan, plan
