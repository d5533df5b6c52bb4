"""The patient index on an oversized block: look-alike records without a national ID.

    .venv/bin/python bench/bench_lookalike_block.py [--records 2000] [--edge 200]
        [--pg URL | --no-pg] [--no-sqlite]

One patient copied under new local numbers (the same name, birth date, sex, phone and
township, no national ID: a lab's test patient, 无名氏 in an emergency, 某某之子 with the
mother's phone) shares the birth-date + surname key with every earlier copy. Each record goes
through the resolver (``index_patients``: key locks, candidates, the rules, the link, the
review queue) in its own transaction, on a temporary SQLite file and, with --pg (default:
$ADAPTER_TEST_DATABASE_URL), on a temporary PostgreSQL schema.

The first ``--edge`` records and the last ``--edge`` are measured; the records between are
written directly (the rows the resolver writes for a record: identity_record, identity_key,
no review item), so that a commit that is quadratic in the block finishes: the block the
last records meet is the same for every commit. Runs on any commit since the index has
``index_patients`` (decision 0056 compares its base this way).

Printed per database, for the first and the last ``--edge`` records: the time per record
(p50, mean), the statements sent per record (a SQLAlchemy event: repeatable where time is
not), the review items each queued (mean), and the floor: one primary-key read of the
index in its own transaction, in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapter.identity.features import features_of  # noqa: E402
from adapter.identity.index import records as rows  # noqa: E402
from adapter.identity.index.locks import key_hash  # noqa: E402
from adapter.identity.index.resolve import index_patients  # noqa: E402
from adapter.identity.rules import rules_at  # noqa: E402
from adapter.store import make_engine, migrate, session_factory  # noqa: E402
from adapter.store.identity_tables import (  # noqa: E402
    IdentityKey,
    IdentityRecord,
    IdentityReview,
)

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def lookalike(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"lab-{n:06d}",
        "name": [{"use": "official", "family": "赵", "given": ["小红"], "text": "赵小红"}],
        "birthDate": "1975-04-12",
        "gender": "female",
        "telecom": [{"system": "phone", "value": "13907310000"}],
        "address": [{"text": "湖南省青山县石桥镇观音村1组"}],
        "identifier": [{"system": "urn:lab:mrn", "value": f"MRN{n:06d}"}],
    }


def fill(factory: Any, rules: Any, first: int, last: int) -> None:
    """Records ``first`` .. ``last - 1`` as the resolver stores them (no review items)."""
    records, keys = [], []
    for n in range(first, last):
        f = features_of(lookalike(n), "f1", rules)
        at = NOW + timedelta(seconds=n)
        records.append(
            {
                "patient_id": f.record,
                "person_id": rows.own_person_id(f.record),
                "facility_id": "f1",
                "link_kind": "auto",
                "rule_version": rules.version,
                "rule": "no-match",
                "score": 0.0,
                "evidence": {},
                "features": f.as_json(),
                "created_at": at,
                "updated_at": at,
            }
        )
        keys += [{"key_hash": key_hash(k), "patient_id": f.record} for k in f.blocking_keys()]
    with factory.begin() as session:
        session.execute(IdentityRecord.__table__.insert(), records)
        session.execute(IdentityKey.__table__.insert(), keys)


def run(url: str, total: int, edge: int, label: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    factory = session_factory(engine)
    rules = rules_at(None)
    sent: list[int] = [0]

    def count(*_: Any) -> None:
        sent[0] += 1

    event.listen(engine, "before_cursor_execute", count)

    def measure(numbers: range) -> tuple[list[float], list[int], list[int]]:
        times, statements, queued = [], [], []
        for n in numbers:
            sent[0] = 0
            t0 = time.perf_counter()
            with factory.begin() as session:
                outcome = index_patients(
                    session,
                    [lookalike(n)],
                    facility_id="f1",
                    rules=rules,
                    now=NOW + timedelta(seconds=n),
                )
            times.append(time.perf_counter() - t0)
            statements.append(sent[0])
            queued.append(outcome.reviews)
        return times, statements, queued

    started = time.perf_counter()
    first = measure(range(edge))
    fill(factory, rules, edge, total - edge)
    last = measure(range(total - edge, total))
    floor = []
    for n in range(0, total, max(1, total // 200)):
        t0 = time.perf_counter()
        with factory.begin() as session:
            session.get(IdentityRecord, f"lab-{n:06d}")
        floor.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    event.remove(engine, "before_cursor_execute", count)
    with factory() as session:
        items = session.scalar(select(func.count()).select_from(IdentityReview))
    ms = 1000.0
    floor_p50 = statistics.median(floor)
    load = Path("/proc/loadavg").read_text().strip()
    print(f"\n== {label}: {total} look-alike records (the first and last {edge} measured)")
    for name, (times, statements, queued) in (("first", first), ("last", last)):
        print(
            f"  {name:5} {edge}: p50 {statistics.median(times) * ms:7.2f} ms, mean "
            f"{statistics.mean(times) * ms:7.2f} ms per record "
            f"({statistics.median(times) / floor_p50:.0f}x floor); "
            f"statements {min(statements)}-{max(statements)}; review items queued "
            f"{statistics.mean(queued):.1f} per record"
        )
    print(
        f"  floor       one primary-key read, own transaction: p50 {floor_p50 * ms:.2f} ms\n"
        f"  review items {items}; {elapsed:.1f} s; load average "
        f"{load}"
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--edge", type=int, default=200)
    parser.add_argument("--pg", default=os.environ.get("ADAPTER_TEST_DATABASE_URL"))
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    if args.records < 2 * args.edge:
        parser.error("--records must be at least twice --edge")
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "index.db"
            run(f"sqlite:///{path}", args.records, args.edge, "SQLite (temporary file)")
    if args.pg and not args.no_pg:
        schema = f"bench_la_{uuid.uuid4().hex[:8]}"
        admin = make_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            url = make_url(args.pg).update_query_dict({"options": f"-csearch_path={schema}"})
            run(url.render_as_string(hide_password=False), args.records, args.edge, "PostgreSQL")
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
