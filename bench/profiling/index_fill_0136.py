"""How much of a PostgreSQL store's b-tree indexes is fill left by page splits (decision
0136): per index, its size now, its leaf density (``pgstatindex``, when the pgstattuple
extension is installed in some schema), and, with ``--reindex``, its size after
``REINDEX`` (a fresh build packs leaves to 90 %); all per stored message.

Run it on a schema a benchmark kept (``BENCH_KEEP_PG=1 BENCH_PG_PREFIX=... bench/
bench_ingest.py ...`` prints "kept PostgreSQL schema S"). ``--reindex`` rebuilds that
schema's indexes: use it on a study copy only.

    .venv/bin/python bench/profiling/index_fill_0136.py --schema S [--reindex] [--min-kb 1000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from adapter.store import make_engine  # noqa: E402
from bench.bench_search import DEFAULT_PG  # noqa: E402

INDEXES = (
    "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = :schema AND c.relkind = 'i' AND c.relam = 403 "
    "AND pg_relation_size(c.oid) >= :least ORDER BY 2 DESC"
)
EXTENSION = (
    "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
    "WHERE e.extname = 'pgstattuple'"
)
TOTAL = (
    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relkind = 'r'"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=DEFAULT_PG)
    ap.add_argument("--schema", required=True)
    ap.add_argument("--reindex", action="store_true", help="rebuild each index (a copy only)")
    ap.add_argument("--min-kb", type=int, default=1000, help="only indexes at least this big")
    args = ap.parse_args()
    engine = make_engine(args.url)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        messages = conn.execute(
            text(f'SELECT count(*) FROM "{args.schema}".inbound_message')
        ).scalar_one()
        stat = conn.execute(text(EXTENSION)).scalar()
        before = conn.execute(text(TOTAL), {"schema": args.schema}).scalar_one()
        print(f"{args.schema}: {messages} messages, {before / messages / 1024:.2f} KB a message")
        print(f"{'index':44} {'KB/msg':>7} {'density %':>9} {'rebuilt':>8} {'fill':>7}")
        rows = conn.execute(text(INDEXES), {"schema": args.schema, "least": args.min_kb * 1024})
        for name, size in rows.all():
            qualified = f'"{args.schema}"."{name}"'
            density = "-"
            if stat:
                density = "{:.1f}".format(
                    conn.execute(
                        text(f'SELECT avg_leaf_density FROM "{stat}".pgstatindex(:i)'),
                        {"i": qualified},
                    ).scalar_one()
                )
            line = f"{name:44} {size / messages / 1024:7.2f} {density:>9}"
            if args.reindex:
                conn.execute(text(f"REINDEX INDEX {qualified}"))
                after = conn.execute(
                    text("SELECT pg_relation_size(CAST(:i AS regclass))"), {"i": qualified}
                ).scalar_one()
                line += f" {after / messages / 1024:8.2f} {(size - after) / messages / 1024:7.2f}"
            print(line)
        if args.reindex:
            after = conn.execute(text(TOTAL), {"schema": args.schema}).scalar_one()
            print(
                f"after REINDEX: {after / messages / 1024:.2f} KB a message "
                f"({(before - after) / messages / 1024:.2f} KB of split fill)"
            )


if __name__ == "__main__":
    main()
