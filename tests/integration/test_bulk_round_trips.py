"""Bulk ingest on PostgreSQL: the statements that wait for the server per message, taken
once per batch (decisions 0101, 0122).

Each statement is a round trip (0.1-0.3 ms on a quiet server, 2-8 ms under load: decision
0099). A batch locks the rows its messages merge, reads the rows they store and takes the
patient index's locks of their Patients in a few statements at its start, and stores its
messages without a savepoint each: what it sends for these does not grow with the number
of its messages. (What it stores is the same as one transaction per message stores:
tests/integration/test_bulk_ingest.py.) SQLite has no round trips: skipped there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from adapter.pipeline.receipt import Receipt
from tests.integration.referral_support import pipeline_for
from tests.integration.test_bulk_ingest import _routed
from tests.integration.test_long_values import long_oru


def _kind(statement: str) -> str | None:
    """The kinds of statement decision 0101 takes once per batch."""
    text = " ".join(statement.split())
    if text.startswith("SAVEPOINT") or text.startswith("RELEASE"):
        return "savepoint"
    if "pg_advisory_xact_lock" in text:
        return "advisory lock"
    if "FOR UPDATE" in text:
        return "row lock"
    if text.startswith("SELECT") and " FROM resource " in f"{text} ":
        return "resource read"
    if text.startswith("SELECT") and "identity_key" in text:
        return "patient index read"  # ``near`` (decision 0122: read for the batch at once)
    if "care_relationship" in text and "INSERT" not in text:
        return "care read apart"  # decision 0122: with the message's first activity upsert
    if text.startswith("INSERT INTO audit_record"):
        return "audit insert"  # the batch's records in one statement, links NULL or not
    return None


def _counted(engine: Engine, run: Callable[[], None]) -> Counter[str]:
    counts: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        kind = _kind(statement)
        if kind is not None:
            counts[kind] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return counts


def test_a_batch_s_locks_reads_and_savepoints_do_not_grow_with_its_messages(
    session_factory: sessionmaker[Session], engine: Engine, tmp_path: Path
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("round trips to PostgreSQL (SQLite runs in the process)")
    pipeline = pipeline_for(_routed(tmp_path), session_factory)
    # the patient and the facility stored first: each message of a batch then merges the
    # stored Patient (locked, read, changed or not) as a night's repeated patients do
    first = list(
        pipeline.ingest_many([(long_oru(control="RT000000"), Receipt("std-hl7v2", "cli"))])
    )
    assert first[0].status == "processed"

    def batch(size: int, tag: str) -> Callable[[], None]:
        items = [
            (long_oru(control=f"RT{tag}{n:04d}", code=f"RT{tag}{n}"), Receipt("std-hl7v2", "cli"))
            for n in range(size)
        ]

        def run() -> None:
            results = list(pipeline.ingest_many(items, batch=size))
            assert [r.status for r in results] == ["processed"] * size

        return run

    two = _counted(engine, batch(2, "A"))
    eight = _counted(engine, batch(8, "B"))
    assert two["row lock"] >= 1 and two["advisory lock"] >= 1  # the batch does lock
    assert eight == two  # four times the messages, the same statements
    assert eight["savepoint"] == 0
    assert eight["care read apart"] == 0
