"""Benchmark: what the audit log holds per lab message, table by table, index by index,
column by column (decision 0074), at ingest and after delivery (and the outbox prune).

    .venv/bin/python bench/audit_size.py [--messages 300] [--cycles 2] [--pg URL | --no-pg]

Input and delivery as ``bench_retention.py`` (unique lab messages, the example consortium's
destinations, an in-process ordered sink, batches of 200). Each database is fresh; the
first night fills the empty tables, the figure is the growth over the later nights per
message (``ingest``: after the bulk ingest of the night, before delivery; ``delivered``:
after delivery and the outbox prune). Bytes: SQLite ``dbstat`` (pages of each b-tree),
PostgreSQL ``pg_table_size`` / ``pg_relation_size`` after ``VACUUM ANALYZE``. Column bytes
are the stored values' mean length (``length()`` / ``octet_length()``), links per record by
action and kind.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_delivery import Patients
from bench_ingest import (
    DEFAULT_PG,
    bulk_ingest,
    database_parts,
    load_fixtures,
    make_input,
    postgres_engine,
    routed_settings,
)
from bench_retention import Sink, deliver
from pg_schema import maintain_own_schema
from sqlalchemy import Engine, text

from adapter.consortium import load_consortium
from adapter.delivery.retention import prune
from adapter.runtime import make_pipeline
from adapter.settings import Settings
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_session_factory

AUDIT = ("audit_record", "audit_link", "audit_name")


def audit_parts(engine: Engine) -> dict[str, float]:
    """Bytes of each audit table and index ("table" or "table/index")."""
    out: dict[str, float] = {}
    for (table, index), (_rows, size) in database_parts(engine).items():
        if table in AUDIT:
            out[f"{table}/{index}" if index else table] = size
    out["all tables"] = sum(size for (_r, size) in database_parts(engine).values())
    return out


def _columns(engine: Engine, table: str) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return [r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({table})")]
        return list(
            conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = :t AND table_schema = current_schema() "
                    "ORDER BY ordinal_position"
                ),
                {"t": table},
            ).scalars()
        )


# a SQLite integer's record size by its magnitude (1, 2, 3, 4, 6 or 8 bytes), else the bytes
_SQLITE_SIZE = (
    "CASE typeof({c}) WHEN 'integer' THEN CASE WHEN abs({c}) < 128 THEN 1 "
    "WHEN abs({c}) < 32768 THEN 2 WHEN abs({c}) < 8388608 THEN 3 WHEN abs({c}) < 2147483648 "
    "THEN 4 WHEN abs({c}) < 140737488355328 THEN 6 ELSE 8 END WHEN 'real' THEN 8 "
    "ELSE length(CAST({c} AS BLOB)) END"
)


def column_bytes(engine: Engine, table: str) -> dict[str, float]:
    """Mean stored bytes of each column of ``table``."""
    size = _SQLITE_SIZE if engine.dialect.name == "sqlite" else "pg_column_size({c})"
    columns = _columns(engine, table)
    if not columns:
        return {}
    parts = ", ".join(f"avg(coalesce({size.format(c=c)}, 0))" for c in columns)
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT {parts} FROM {table}")).one()
    return {c: float(v or 0) for c, v in zip(columns, row, strict=True)}


def links_by_action(engine: Engine) -> list[tuple[str, str, int, int]]:
    """(action, kind, records, links) over the whole log."""
    names = _columns(engine, "audit_link")
    if "kind" in names:
        kind = "l.kind"
        join = "audit_link l"
    else:
        kind = "n.kind"
        join = "audit_link l JOIN audit_name n ON n.id = l.name"
    with engine.connect() as conn:
        records = dict(
            conn.execute(text("SELECT action, count(*) FROM audit_record GROUP BY action")).all()
        )
        rows = conn.execute(
            text(
                f"SELECT r.action, {kind}, count(*) FROM {join} "
                "JOIN audit_record r ON r.seq = l.seq GROUP BY r.action, " + kind
            )
        ).all()
    return [(a, k, records[a], n) for a, k, n in rows] + [
        (a, "-", n, 0) for a, n in records.items() if a not in {r[0] for r in rows}
    ]


def plans(engine: Engine) -> None:
    """The plan of each query the audit log's readers make, as the code builds it, on a
    patient, an entity and a message of this log."""
    from sqlalchemy import event, select

    from adapter.audit.search import criteria
    from adapter.store.audit_log import AuditLink, AuditRecord

    factory = make_session_factory(engine)
    with factory() as session:
        patient, entity = (
            session.execute(
                select(AuditLink.reference).where(AuditLink.kind == kind).limit(1)
            ).scalar_one()
            for kind in ("patient", "entity")
        )
        base = entity.split("/_history/")[0]
        queries = {
            "search patient": [("patient", patient)],
            "search entity, any version": [("entity", base)],
            "search entity, one version": [("entity", entity)],
            "search correlation-id": [("correlation-id", "x")],
            "search date": [("date", "ge2026-01-01")],
        }
        explain = "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
        connection = session.connection()

        def prefixed(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            return explain + statement, parameters

        print("   plans:")
        event.listen(connection, "before_cursor_execute", prefixed, retval=True)
        try:
            for label, params in queries.items():
                query = (
                    select(AuditRecord.seq)
                    .where(*criteria(params))
                    .order_by(AuditRecord.seq.desc())
                    .limit(20)
                )
                rows = connection.execute(query).all()
                print(f"     {label}:")
                for row in rows:
                    print(f"       {row[-1]}")
            # the disclosure report's query (adapter/audit/disclosures.py) and verify's
            about = select(AuditLink.seq).where(
                AuditLink.kind == "patient", AuditLink.reference.in_([patient])
            )
            others = {
                "disclosures": select(AuditRecord.seq)
                .where(AuditRecord.seq.in_(about))
                .order_by(AuditRecord.seq),
                "verify / archive links": select(AuditLink.seq, AuditLink.reference).where(
                    AuditLink.seq.between(1, 500)
                ),
            }
            for label, query in others.items():
                print(f"     {label}:")
                for row in connection.execute(query).all():
                    print(f"       {row[-1]}")
        finally:
            event.remove(connection, "before_cursor_execute", prefixed)


def run(name: str, engine: Engine, settings: Settings, args: argparse.Namespace) -> None:
    migrate(engine)
    consortium = load_consortium(settings.config)
    factory = make_session_factory(engine)
    pipeline = make_pipeline(settings, consortium, factory)
    fixtures = load_fixtures(consortium)
    patients = Patients(spread_births=True)
    bulk = bulk_ingest(pipeline, 100)
    sinks: dict[str, Sink] = {}
    copies = max(1, args.messages // len(fixtures))
    per_cycle = copies * len(fixtures)
    grew = {"ingest": {}, "delivered": {}}  # type: dict[str, dict[str, float]]

    def measure() -> dict[str, float]:
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                maintain_own_schema(lambda s: conn.execute(text(s)), vacuum=True)
        return audit_parts(engine)

    last = measure()
    for cycle in range(args.cycles):
        bulk(make_input(fixtures, copies, f"c{cycle}.", patients))
        at_ingest = measure()
        deliver(engine, factory, sinks, True, 200)
        prune(factory, cutoff=datetime.now(UTC) + timedelta(seconds=1), batch=1000)
        delivered = measure()
        if cycle:  # the first night fills the empty tables
            for part, size in at_ingest.items():
                grew["ingest"][part] = grew["ingest"].get(part, 0.0) + size - last.get(part, 0.0)
            for part, size in delivered.items():
                grew["delivered"][part] = (
                    grew["delivered"].get(part, 0.0) + size - last.get(part, 0.0)
                )
        last = delivered
    measured = per_cycle * (args.cycles - 1)
    print(f"\n{name}: KB per lab message (KB = 1024), load {os.getloadavg()[0]:.1f}")
    print(f"   {'part':58} {'ingest':>8} {'deliv.':>8}")
    for part in sorted(grew["delivered"], key=lambda p: (p == "all tables", p)):
        a, b = grew["ingest"].get(part, 0.0), grew["delivered"][part]
        print(f"   {part:58} {a / 1024 / measured:8.3f} {b / 1024 / measured:8.3f}")
    audit = {w: sum(v for p, v in grew[w].items() if p != "all tables") for w in grew}
    print(
        f"   {'audit log':58} {audit['ingest'] / 1024 / measured:8.3f} "
        f"{audit['delivered'] / 1024 / measured:8.3f}"
    )
    print("   mean stored bytes per column:")
    for table in AUDIT:
        cols = column_bytes(engine, table)
        if cols:
            print(f"     {table}: " + ", ".join(f"{c} {v:.1f}" for c, v in cols.items()))
    print("   links per record (action, kind, records, links per record):")
    for action, kind, records, links in sorted(links_by_action(engine)):
        print(f"     {action:24} {kind:8} {records:6} {links / records:6.2f}")
    if args.plans:
        plans(engine)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cycles", type=int, default=2, help="nights, >= 2 (default 2)")
    ap.add_argument("--messages", type=int, default=300, help="messages per night (300)")
    ap.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL URL (default {DEFAULT_PG})")
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    ap.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    ap.add_argument("--plans", action="store_true", help="also EXPLAIN the audit searches")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        if not args.no_sqlite:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'audit.db'}")
            run("SQLite", engine, settings, args)
            engine.dispose()
        if not args.no_pg:
            made = postgres_engine(args.pg)
            if isinstance(made, str):
                print(f"PostgreSQL {made}: skipped")
                return
            engine, drop = made
            try:
                run("PostgreSQL", engine, settings, args)
            finally:
                drop()


if __name__ == "__main__":
    main()
