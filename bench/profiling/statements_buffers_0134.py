"""Statements and buffers a search of ``bench/pg_strings_latency.py`` sends (decision 0134):
load-independent figures beside that benchmark's times.

Each search is run once through the store's ``find`` with a ``before_cursor_execute``
listener that keeps every statement and its parameters; each kept statement is then run
again as ``EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`` in the same transaction. Printed per
search: the statements, the rows each returned and the shared buffers (hit + read) of
each plan's top node, with the total, and the answer (the total and the first 450 ids in
pages of 50, hashed: two trees agree when the hashes do); ``--plans`` prints the plans'
text too (the statement count then counts their lines). Works on any
tree whose ``find`` and ``pg_strings_latency.SEARCHES`` have this form (0afd79b on).

    .venv/bin/python bench/profiling/statements_buffers_0134.py --schema S [--only 8,2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import event

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from adapter.fhir.search_query import parse_search  # noqa: E402
from adapter.store import make_engine, session_factory  # noqa: E402
from adapter.store.search import find  # noqa: E402
from bench.bench_search import DEFAULT_PG  # noqa: E402
from bench.pg_schema import scratch_schema  # noqa: E402
from bench.pg_strings_latency import SEARCHES, _run  # noqa: E402


def _buffers(node: dict[str, Any]) -> int:
    return int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))


def _answer(session: Any, params: list[tuple[str, str]]) -> str:
    """The search's total and every page's ids (pages of 50), hashed: the same answer on
    two trees gives the same text."""
    parsed = parse_search("Patient", [*params, ("_count", "50")])
    ids: list[str] = []
    offset, total = 0, None
    while True:
        page = find(session, ["Patient"], parsed.criteria, count=50, offset=offset,
                    sort=parsed.sort, total=parsed.total)  # fmt: skip
        total = page.total if offset == 0 else total
        ids.extend(b["id"] for b in page.bodies)
        if not page.has_more or offset >= 400:
            break
        offset += 50
    return f"total {total} ids {len(ids)} {hashlib.sha256(' '.join(ids).encode()).hexdigest()[:12]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schema", required=True, help="a schema pg_strings_latency loaded")
    ap.add_argument("--only", default="", help="comma-separated search numbers")
    ap.add_argument("--plans", action="store_true", help="print each plan's text")
    ap.add_argument("--pg", default=os.environ.get("BENCH_PG", DEFAULT_PG))
    args = ap.parse_args()
    wanted = {int(n) for n in args.only.split(",") if n}
    with scratch_schema(args.pg, "str", keep=args.schema) as schema:
        engine = make_engine(schema.url)
        seen: list[tuple[str, Any]] = []

        @event.listens_for(engine, "before_cursor_execute")
        def _keep(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            seen.append((statement, params))

        factory = session_factory(engine)
        with factory() as session:
            for n, (label, params) in enumerate(SEARCHES):
                if wanted and n not in wanted:
                    continue
                _run(session, params)  # warm: the caches, the dictionary pages
                session.rollback()
                seen.clear()
                found = _run(session, params)
                sent = list(seen)
                seen.clear()
                total = statements = 0
                lines = []
                for statement, bound in sent:
                    if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                        continue
                    raw = (
                        session.connection()
                        .exec_driver_sql(
                            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, bound
                        )
                        .scalar_one()
                    )
                    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
                    statements += 1
                    top = plan["Plan"]
                    total += _buffers(top)
                    head = " ".join(statement.split())[:70]
                    lines.append(
                        f"   {_buffers(top):7d} buffers {int(top['Actual Rows']):7d} rows "
                        f"{plan['Execution Time']:8.2f} ms  {head}"
                    )
                    if args.plans:
                        txt = session.connection().exec_driver_sql(
                            "EXPLAIN (ANALYZE, BUFFERS) " + statement, bound
                        )
                        lines.extend("      " + row[0] for row in txt)
                seen.clear()
                session.rollback()
                answer = _answer(session, params)
                session.rollback()
                print(f"{n:2} {label:36} found {found:3}  statements {statements}  "
                      f"buffers {total}  ({answer})")  # fmt: skip
                print("\n".join(lines))
        engine.dispose()


if __name__ == "__main__":
    main()
