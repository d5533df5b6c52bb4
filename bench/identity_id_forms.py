"""Benchmark for decision 0123 (PostgreSQL: the patient index's ids and
``resource.patient_key`` as 16 bytes), measurement only: nothing in the adapter changes.

``sizes SCHEMA``: compact copies of a kept bench schema's tables (``BENCH_KEEP_PG=1
bench/bench_ingest.py ...`` prints its name) with their ids as today's text, as
``UuidText``'s stored form (``bytea``: a UUID's 16 bytes, any other id its UTF-8 bytes)
and as ``uuid`` (a non-UUID id would need a column of its own); each copy gets the
original's indexes. KB a message, table + indexes.

``visibility``: visibility's SQL shape (adapter/store/visibility.py, ``_patient_keys``)
on a synthetic schema of ``--records`` patient records (two a person), ten resources each
and as many of patients not in care; one facility cares for every person. Timed (server
execution time, best of ``--rounds``) and read (shared buffers, which load does not move):
the care set alone, and one patient's resources under the condition, in the three forms.
Today's text form builds ``'Patient/' || record`` for every record of the care set; the
16-byte forms compare the stored bytes with the stored bytes.

    .venv/bin/python bench/identity_id_forms.py sizes bench_pgids_942e6b7c93
    .venv/bin/python bench/identity_id_forms.py visibility [--records 30000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import re
import statistics

import psycopg

DSN = "postgresql://postgres@127.0.0.1:5432/test"
UUID = r"'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"
# the columns converted, with the prefix the stored form leaves out
TABLES = {
    "identity_record": {"patient_id": "", "person_id": ""},
    "identity_key": {"patient_id": ""},
    "identity_history": {"patient_id": "", "person_id": "", "previous_person_id": ""},
    "care_relationship": {"person_id": ""},
    "resource": {"patient_key": "Patient/"},
}
VIS = "bench_pgids_vis"


def _bare(column: str, prefix: str) -> str:
    return f"substr({column}, {len(prefix) + 1})" if prefix else column


def as_bytea(column: str, prefix: str) -> str:
    """UuidText's stored form in SQL (the 16-byte NUL rule left out: no such id here)."""
    v = _bare(column, prefix)
    return (
        f"CASE WHEN {v} ~ {UUID} THEN decode(replace({v}, '-', ''), 'hex') "
        f"ELSE convert_to({v}, 'UTF8') END"
    )


def as_uuid(column: str, prefix: str) -> str:
    v = _bare(column, prefix)
    return f"CASE WHEN {v} ~ {UUID} THEN {v}::uuid END"


def sizes(cx: psycopg.Connection, schema: str) -> None:
    cx.execute(f"SET search_path = {schema}")
    row = cx.execute("SELECT count(*) FROM inbound_message").fetchone()
    messages = row[0] if row else 0
    print(f"{messages} messages; KB a message, table + indexes (against text)")
    total = {"bytea": 0.0, "uuid": 0.0}
    for table, columns in TABLES.items():
        names = [
            r[0]
            for r in cx.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (schema, table),
            )
        ]
        indexes = [
            r[0]
            for r in cx.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
                (schema, table),
            )
        ]
        for column, prefix in columns.items():
            counted = cx.execute(
                f"SELECT count({column}), count({as_uuid(column, prefix)}) FROM {table}"
            ).fetchone()
            print(
                f"  {table}.{column}: {counted[0] if counted else 0} values, "
                f"{counted[1] if counted else 0} UUIDs"
            )
        found: dict[str, tuple[int, int]] = {}
        for form, convert in (("text", None), ("bytea", as_bytea), ("uuid", as_uuid)):
            copy = f"pgids_{table}_{form}"
            cx.execute(f"DROP TABLE IF EXISTS {copy}")
            select = ", ".join(
                f"{convert(n, columns[n])} AS {n}" if convert and n in columns else n for n in names
            )
            cx.execute(f"CREATE TABLE {copy} AS SELECT {select} FROM {table}")
            for definition in indexes:
                cx.execute(
                    re.sub(
                        r"INDEX (\w+) ON (\S+)",
                        lambda m, c=copy, f=form: f"INDEX {m.group(1)[:40]}_{f[:2]}x ON {c}",
                        definition,
                    )
                )
            cx.execute(f"VACUUM ANALYZE {copy}")
            got = cx.execute(
                f"SELECT pg_relation_size('{copy}'), pg_total_relation_size('{copy}')"
            ).fetchone()
            found[form] = (got[0], got[1]) if got else (0, 0)
            cx.execute(f"DROP TABLE {copy}")
        base = found["text"][1]

        def kb(n: float) -> float:
            return n / messages / 1024

        parts = []
        for form, (rows, everything) in found.items():
            parts.append(
                f"{form} {kb(rows):.3f}+{kb(everything - rows):.3f} ({kb(everything - base):+.3f})"
            )
            if form in total:
                total[form] += kb(everything - base)
        print(f"  {table}: " + ", ".join(parts))
    print("  in all: " + ", ".join(f"{f} {v:+.3f}" for f, v in total.items()))


def _setup(cx: psycopg.Connection, records: int) -> None:
    cx.execute(f"DROP SCHEMA IF EXISTS {VIS} CASCADE")
    cx.execute(f"CREATE SCHEMA {VIS}")
    cx.execute(f"SET search_path = {VIS}")
    cx.execute(
        "CREATE TABLE idt AS SELECT gen_random_uuid()::text AS patient_id,"
        f" NULL::text AS person_id FROM generate_series(1, {records})"
    )
    cx.execute("UPDATE idt SET person_id = patient_id")
    # every second record linked to the person of the one before it
    cx.execute(
        "WITH n AS (SELECT patient_id, row_number() OVER (ORDER BY patient_id) AS k FROM idt)"
        " UPDATE idt SET person_id = p.patient_id FROM n a JOIN n p ON p.k = a.k - 1"
        " WHERE idt.patient_id = a.patient_id AND a.k % 2 = 0"
    )
    cx.execute("CREATE TABLE ct AS SELECT DISTINCT person_id, 'f1'::text AS facility_id FROM idt")
    cx.execute(
        "CREATE TABLE rt AS SELECT 'Patient/' || patient_id AS patient_key FROM idt,"
        " generate_series(1, 10) UNION ALL SELECT 'Patient/' || gen_random_uuid()::text"
        f" FROM generate_series(1, {records * 10})"
    )
    for form, convert in (("b", as_bytea), ("u", as_uuid)):
        cx.execute(
            f"CREATE TABLE id{form} AS SELECT {convert('patient_id', '')} AS patient_id,"
            f" {convert('person_id', '')} AS person_id FROM idt"
        )
        cx.execute(
            f"CREATE TABLE c{form} AS SELECT {convert('person_id', '')} AS person_id,"
            " facility_id FROM ct"
        )
        cx.execute(
            f"CREATE TABLE r{form} AS SELECT {convert('patient_key', 'Patient/')} AS patient_key"
            " FROM rt"
        )
    for form in "tbu":
        cx.execute(f"ALTER TABLE id{form} ADD PRIMARY KEY (patient_id)")
        cx.execute(f"CREATE INDEX ON id{form} (person_id)")
        cx.execute(f"CREATE INDEX ON c{form} (facility_id, person_id)")
        cx.execute(f"CREATE INDEX ON r{form} (patient_key)")
        for table in (f"id{form}", f"c{form}", f"r{form}"):
            cx.execute(f"VACUUM ANALYZE {table}")


def _care_set(form: str) -> str:
    """visibility._patient_keys over the facility's noted ids, in one form."""
    noted = f"SELECT person_id FROM c{form} WHERE facility_id = 'f1'"
    persons = f"{noted} UNION SELECT person_id FROM id{form} WHERE patient_id IN ({noted})"
    records = (
        f"SELECT person FROM ({persons}) p(person)"
        f" UNION SELECT patient_id FROM id{form} WHERE person_id IN ({persons})"
    )
    key = "'Patient/' || record" if form == "t" else "record"
    return f"SELECT {key} FROM ({records}) r(record)"


def _measure(cx: psycopg.Connection, query: str, params: tuple[object, ...]) -> tuple[float, int]:
    plan = cx.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}", params).fetchone()
    top = plan[0][0] if plan else {}
    return top["Execution Time"], top["Plan"].get("Shared Hit Blocks", 0) + top["Plan"].get(
        "Shared Read Blocks", 0
    )


def visibility(cx: psycopg.Connection, records: int, rounds: int) -> None:
    _setup(cx, records)
    one = cx.execute("SELECT patient_id FROM idt WHERE patient_id <> person_id LIMIT 1").fetchone()
    pid = one[0] if one else ""
    keys = {"t": f"Patient/{pid}", "b": bytes.fromhex(pid.replace("-", "")), "u": pid}
    casts = {"t": "text", "b": "bytea", "u": "uuid"}
    times: dict[str, list[float]] = {}
    reads: dict[str, int] = {}
    for _ in range(rounds):
        for form in "tbu":  # alternated, round by round
            for what, query, params in (
                ("care set", f"SELECT count(*) FROM ({_care_set(form)}) s", ()),
                (
                    "one patient",
                    f"SELECT count(*) FROM r{form} WHERE patient_key = %s::{casts[form]}"
                    f" AND patient_key IN ({_care_set(form)})",
                    (keys[form],),
                ),
            ):
                ms, buffers = _measure(cx, query, params)
                times.setdefault(f"{what} {form}", []).append(ms)
                reads[f"{what} {form}"] = buffers
    names = {"t": "text", "b": "bytea", "u": "uuid"}
    print(f"{records} records in care; server ms best / median of {rounds}, shared buffers")
    for label, values in times.items():
        what, form = label.rsplit(" ", 1)
        print(
            f"  {what:12} {names[form]:6} {min(values):8.1f} {statistics.median(values):8.1f}"
            f" {reads[label]:7}"
        )
    cx.execute(f"DROP SCHEMA {VIS} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("sizes").add_argument("schema")
    vis = sub.add_parser("visibility")
    vis.add_argument("--records", type=int, default=30_000)
    vis.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--pg", default=DSN)
    args = parser.parse_args()
    with psycopg.connect(args.pg, autocommit=True) as cx:
        if args.what == "sizes":
            sizes(cx, args.schema)
        else:
            visibility(cx, args.records, args.rounds)


if __name__ == "__main__":
    main()
