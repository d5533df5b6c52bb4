"""Audit searches by patient and entity at a realistic size on PostgreSQL: audit_link rows
under their hash index (migration 0045) against ``audit_record.links`` under its GIN index
(migration 0048, decision 0119), the same synthetic log in both.

    .venv/bin/python bench/pg_audit_links_reads.py [--messages 100000] [--rounds 300]

Two schemas (``bench_pgaudit_links_a`` at 0045, ``_b`` at head, made by the migrations
themselves) get the same log: per message three records, one of them naming its patient
and eight versioned Observations (the bench's lab messages: 9.6 links a message), a
patient every four messages. Each round runs, in both schemas in turn, what the AuditEvent
search runs (a count and the newest page of 50) for one patient and one entity (every
version), and the disclosure report's query; p50 / p90 of the client's time (ms; the host's
load moves these), the client's CPU (mean), the server's planning and execution time and
the shared buffers each plan touches (``EXPLAIN (ANALYZE, BUFFERS)``; load does not move
the buffers). Sizes of both forms are printed. The schemas are dropped at the end unless
``--keep``.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from typing import Any

import psycopg
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from adapter.audit.disclosures import records_about
from adapter.audit.search import criteria
from adapter.store import make_engine, migrate
from adapter.store.audit_log import AuditRecord
from adapter.store.audit_reference import ENTITY_SQL, entity_of, pack, unpack, versions

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SCHEMAS = {"0045": "bench_pgaudit_links_a", "head": "bench_pgaudit_links_b"}
_COLUMNS = (
    "seq, recorded, action, outcome, actor, client, facility, address, channel, "
    "correlation_id, request_id, message_id, body, prev_hash, hash"
)

# one synthetic log: seq 3m-2 .. 3m for message m (1-based); the third names the links
_RECORDS = """
INSERT INTO audit_record (seq, recorded, action, outcome, actor, facility, correlation_id,
    message_id, body, prev_hash, hash{links})
SELECT s, now() - (s || ' ms')::interval,
    CASE s %% 3 WHEN 1 THEN '0' WHEN 2 THEN '2' ELSE '1' END, 's', 'source:lis',
    'county-hospital', substring(sha256(('m' || (s + 2) / 3)::bytea) FROM 1 FOR 16),
    substring(sha256(('m' || (s + 2) / 3)::bytea) FROM 1 FOR 16),
    sha256(('b' || s)::bytea) || sha256(('c' || s)::bytea) || sha256(('d' || s)::bytea)
      || sha256(('e' || s)::bytea) || sha256(('f' || s)::bytea)
      || substring(sha256(('g' || s)::bytea) FROM 1 FOR 12),
    sha256(('h' || s - 1)::bytea), sha256(('h' || s)::bytea){arrays}
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS s
"""
_LINKS = """
CREATE TEMP TABLE syn AS
SELECT m * 3 AS seq, 'p' AS kind, '\\x0101'::bytea || substring(
    sha256(('p' || (m::bigint * 7919) %% %(patients)s::int)::bytea) FROM 1 FOR 16) AS reference
FROM generate_series(1, %(messages)s::int) AS m
UNION ALL
SELECT m * 3, 'e', '\\x0102'::bytea
    || substring(sha256(('o' || m || '-' || j)::bytea) FROM 1 FOR 16) || '\\x0031'::bytea
FROM generate_series(1, %(messages)s::int) AS m, generate_series(1, 8) AS j
"""
# head: each record's links in their stored form (audit_reference.pack_links: every element
# here is shorter than 255 bytes), written in its final form (no UPDATE: the dead versions
# would stay while another session's snapshot is older)
_ARRAY = (
    ", (SELECT string_agg(set_byte('\\x00'::bytea, 0, length(e)) || e, ''::bytea ORDER BY e) "
    "FROM (SELECT convert_to(kind, 'UTF8') || reference AS e FROM syn WHERE syn.seq = s) AS x)"
)


def build(messages: int, schemas: dict[str, str] = SCHEMAS) -> None:
    """The synthetic log of ``messages`` messages in each schema, at its revision."""
    for revision, schema in schemas.items():
        with psycopg.connect(PG.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = make_url(PG).update_query_dict({"options": f"-csearch_path={schema}"})
        engine = make_engine(url.render_as_string(hide_password=False))
        migrate(engine, revision)
        engine.dispose()
        with psycopg.connect(PG.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'SET search_path = "{schema}"')
            conn.execute("SET synchronous_commit = off")
            conn.execute(_LINKS, {"messages": messages, "patients": max(1, messages // 4)})
            conn.execute("CREATE INDEX ON syn (seq)")
            head = revision == "head"
            insert = _RECORDS.format(links=", links" if head else "", arrays=_ARRAY if head else "")
            step = 100_000
            for first in range(1, 3 * messages + 1, step):
                last = min(first + step - 1, 3 * messages)
                conn.execute(insert, {"first": first, "last": last})
            if not head:
                conn.execute("INSERT INTO audit_link SELECT * FROM syn ORDER BY seq")
            for table in (
                ("audit_record", "audit_link") if revision != "head" else ("audit_record",)
            ):
                conn.execute(f"VACUUM ANALYZE {table}")


def _sizes() -> None:
    with psycopg.connect(PG.replace("+psycopg", "")) as conn:
        for revision, schema in SCHEMAS.items():
            conn.execute(f'SET search_path = "{schema}"')
            rows = conn.execute(
                "SELECT relname, pg_relation_size(oid), pg_indexes_size(oid) FROM pg_class "
                "WHERE relnamespace = %s::regnamespace AND relname IN "
                "('audit_record', 'audit_link') ORDER BY 1",
                (schema,),
            ).fetchall()
            total = sum(table + indexes for _, table, indexes in rows)
            parts = ", ".join(f"{n} {t / 2**20:.1f} + indexes {i / 2**20:.1f}" for n, t, i in rows)
            print(f"{revision}: {parts} MB; in all {total / 2**20:.1f} MB")


def _old(where: str) -> tuple[str, str]:
    return (
        f"SELECT count(*) FROM audit_record WHERE {where}",
        f"SELECT {_COLUMNS} FROM audit_record WHERE {where} ORDER BY seq DESC LIMIT 50",
    )


def _queries(patient: bytes, entity: bytes) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    """name -> form -> (sql, params): at 0045 as the code of 0045 writes them, at head as
    the code of this tree compiles them."""
    hashed = f"({ENTITY_SQL.format(col='reference')})"
    low, high, _ = versions(unpack(entity))
    p_old = (
        f"seq IN (SELECT seq FROM audit_link WHERE kind = 'p' AND reference = %(r)s "
        f"AND {hashed} IN (%(h)s))"
    )
    e_old = (
        f"seq IN (SELECT seq FROM audit_link WHERE kind = 'e' AND reference >= %(lo)s "
        f"AND reference < %(hi)s AND {hashed} IN (%(h)s))"
    )
    old_p = {"r": patient, "h": entity_of(patient)}
    old_e = {"lo": low, "hi": high, "h": entity_of(low)}
    patient_ref, entity_ref = unpack(patient), unpack(entity)

    def new(statement: Any) -> tuple[str, dict[str, Any]]:
        compiled = statement.compile(dialect=postgresql.psycopg.dialect())
        return str(compiled), dict(compiled.params)

    def search(params: list[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
        where = criteria(params)
        count = select(func.count()).select_from(AuditRecord).where(*where)
        page = select(AuditRecord).where(*where).order_by(AuditRecord.seq.desc()).limit(50)
        return [new(count), new(page)]

    out: dict[str, dict[str, Any]] = {}
    pc, pp = _old(p_old)
    out["patient count"] = {"0045": (pc, old_p), "head": search([("patient", patient_ref)])[0]}
    out["patient page"] = {"0045": (pp, old_p), "head": search([("patient", patient_ref)])[1]}
    ec, ep = _old(e_old)
    out["entity count"] = {"0045": (ec, old_e), "head": search([("entity", entity_ref)])[0]}
    out["entity page"] = {"0045": (ep, old_e), "head": search([("entity", entity_ref)])[1]}
    disclose = f"SELECT {_COLUMNS} FROM audit_record WHERE {p_old} ORDER BY seq"
    out["disclosures"] = {
        "0045": (disclose, old_p),
        "head": new(records_about([patient_ref]).order_by(AuditRecord.seq)),
    }
    return out


_BUFFERS = re.compile(r"Buffers: shared (?:hit=(\d+))?\s*(?:read=(\d+))?")


_TIME = re.compile(r"(?:Planning|Execution) Time: ([0-9.]+) ms")


def _plan(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> tuple[int, float]:
    """The shared buffers the plan touched and the server's time (ms): planning and
    execution."""
    plan = [row[0] for row in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)]
    found = _BUFFERS.search(next(line for line in plan if "Buffers:" in line))
    took = sum(float(m[1]) for line in plan for m in [_TIME.search(line)] if m)
    touched = sum(int(g) for g in found.groups() if g) if found else 0
    return touched, took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--keep", action="store_true", help="keep the schemas (and reuse them)")
    ap.add_argument("--reuse", action="store_true", help="the schemas are there already")
    args = ap.parse_args()
    if not args.reuse:
        started = time.perf_counter()
        build(args.messages)
        print(
            f"built {args.messages} messages in each form in {time.perf_counter() - started:.0f} s"
        )
    _sizes()
    conns = {}
    for revision, schema in SCHEMAS.items():
        conns[revision] = psycopg.connect(PG.replace("+psycopg", ""), autocommit=True)
        conns[revision].execute(f'SET search_path = "{schema}"')
    picker = conns["0045"]
    messages = picker.execute("SELECT count(*) / 3 FROM audit_record").fetchone()[0]
    rng = random.Random(7)
    timings: dict[tuple[str, str], list[float]] = {}
    buffers: dict[tuple[str, str], list[int]] = {}
    server: dict[tuple[str, str], list[float]] = {}
    client: dict[tuple[str, str], list[float]] = {}  # this process's CPU
    found: dict[tuple[str, str], list[Any]] = {}
    for n in range(args.rounds):
        m = rng.randrange(1, messages + 1)
        patient, entity = (
            bytes(r[0])
            for r in picker.execute(
                "(SELECT reference FROM audit_link WHERE seq = %(s)s AND kind = 'p' LIMIT 1) "
                "UNION ALL (SELECT substring(reference FROM 1 FOR 18) FROM audit_link "
                "WHERE seq = %(s)s AND kind = 'e' LIMIT 1)",
                {"s": 3 * m},
            ).fetchall()
        )
        assert pack(unpack(patient)) == patient
        for name, forms in _queries(patient, entity).items():
            order = ("0045", "head") if n % 2 == 0 else ("head", "0045")
            answers = []
            for form in order:
                sql, params = forms[form]
                conn = conns[form]
                started, cpu = time.perf_counter(), time.process_time()
                rows = conn.execute(sql, params).fetchall()
                timings.setdefault((name, form), []).append((time.perf_counter() - started) * 1e3)
                client.setdefault((name, form), []).append((time.process_time() - cpu) * 1e3)
                answers.append([r[0] for r in rows])
                touched, took = _plan(conn, sql, params)
                buffers.setdefault((name, form), []).append(touched)
                server.setdefault((name, form), []).append(took)
            assert answers[0] == answers[1], (name, answers)
            found.setdefault((name, "rows"), []).append(len(answers[0]))
    for (name, form), times in sorted(timings.items()):
        times.sort()
        p50, p90 = statistics.median(times), times[int(0.9 * len(times))]
        print(
            f"{name:14} {form:5} p50 {p50:7.3f} ms  p90 {p90:7.3f} ms  "
            f"client CPU {statistics.mean(client[(name, form)]):6.3f} ms  "
            f"server (plan + run) p50 {statistics.median(server[(name, form)]):6.3f} ms  "
            f"buffers {statistics.median(buffers[(name, form)]):5.0f}  "
            f"rows {statistics.mean(found[(name, 'rows')]):.1f}"
        )
    for conn in conns.values():
        conn.close()
    if not args.keep:
        with psycopg.connect(PG.replace("+psycopg", ""), autocommit=True) as conn:
            for schema in SCHEMAS.values():
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
