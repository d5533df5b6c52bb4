"""SQLite's plans of the searches over the WITHOUT ROWID search index (decision 0085): a
probe of one resource's rows (``:not``, ``:missing=true``, a sort's rivals and its
resources without a value) reads them through the table's key (resource_key, kind,
row_id), and a criterion through a per-kind index reads nothing from the table. SQLite has
no statistics in a store: left free it prefers the covering per-kind index for the probes,
which then read every row of the parameter once per resource (seconds at 20,000
Observations, bench/search_index_plans.py --sqlite). The plans are read from the
statements the search sends, the answers checked against the data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event

from adapter.fhir.search_query import parse_search
from adapter.store import session_factory
from adapter.store.search import find

pytestmark = pytest.mark.filterwarnings("ignore")


def _observation(n: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"o{n}",
        "status": "final" if n % 3 else "amended",
        "code": {"coding": [{"system": "http://loinc.org", "code": f"100{n % 4}-3"}]},
        "subject": {"reference": f"Patient/p{n % 5}"},
        "effectiveDateTime": f"2025-0{1 + n % 9}-1{n % 10}",
    }
    if n % 2:
        body["valueQuantity"] = {"value": n, "unit": "g/L"}
    return body


@contextmanager
def _statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "search_index" in statement and not statement.startswith("EXPLAIN"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def _search(engine: Engine, params: list[tuple[str, str]]) -> tuple[list[str], str]:
    """The ids found (in order) and the plans of the statements sent."""
    parsed = parse_search("Observation", params)
    with _statements(engine) as sent, session_factory(engine)() as session:
        page = find(session, ["Observation"], parsed.criteria, count=100, sort=parsed.sort)
    with engine.connect() as conn:
        plans = [
            str(row[-1])
            for statement, parameters in sent
            for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        ]
    return [body["id"] for body in page.bodies], "\n".join(plans)


_KEY = "USING PRIMARY KEY (resource_key=? AND kind=?)"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([("status:not", "final")], {f"o{n}" for n in range(30) if n % 3 == 0}),
        ([("value-quantity:missing", "true")], {f"o{n}" for n in range(30) if n % 2 == 0}),
    ],
)
def test_a_negated_probe_reads_the_resource_rows_by_key(
    engine: Engine,
    save: Callable[..., Any],
    params: list[tuple[str, str]],
    expected: set[str],
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plan")
    save([_observation(n) for n in range(30)])

    ids, plan = _search(engine, params)

    assert set(ids) == expected
    assert _KEY in plan, plan
    assert "SCAN" not in plan.replace("SCAN CONSTANT ROW", ""), plan


def test_a_sort_reads_its_rivals_and_the_rows_without_value_by_key(
    engine: Engine, save: Callable[..., Any]
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plan")
    save([_observation(n) for n in range(30)])
    # o0 changed: its new value, the largest, places it first
    save([{**_observation(0), "valueQuantity": {"value": 99, "unit": "g/L"}}])

    ids, plan = _search(engine, [("_sort", "-value-quantity")])

    valued = sorted((n for n in range(1, 30, 2)), reverse=True)
    assert ids[:16] == ["o0", *(f"o{n}" for n in valued)]
    assert set(ids[16:]) == {f"o{n}" for n in range(2, 30, 2)}  # then those without one
    # the leading rows in the index's order; each one's rivals and the rest by key
    assert "ix_search_index_quantity" in plan, plan
    assert plan.count(_KEY) >= 2, plan


def test_a_criterion_through_a_kind_index_reads_no_table_row(
    engine: Engine, save: Callable[..., Any]
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plan")
    save([_observation(n) for n in range(30)])

    ids, plan = _search(engine, [("code", "1001-3")])

    assert set(ids) == {f"o{n}" for n in range(30) if n % 4 == 1}
    assert "USING COVERING INDEX ix_search_index_token" in plan, plan
