"""Filling a benchmark schema with millions of stored Observations quickly, on PostgreSQL.

Not through the pipeline: one Observation of each shape is built in Python with its real
search-index rows (``index_values`` / ``index_row``, as the store writes them), and
PostgreSQL copies these templates server-side (``INSERT ... SELECT generate_series``),
putting each row's own id, patient and date where the template has placeholders. The
table indexes (and the index rows' foreign key) are dropped for the load and built again
afterwards, as any bulk load does; the foreign key comes back ``NOT VALID`` (every row
does point at its resource: the templates say so; validating 90 million rows would only
cost time). Rows in the tables are what the store would hold; the resource history table
is left empty (no query here reads it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg

from adapter.fhir.index_values import index_values
from adapter.store.resources import index_row
from bench.pg_schema import INDEX_COLUMNS, with_ids

ID, PATIENT, WHEN = "@ID@", "@PAT@", "@WHEN@"
_WHEN_EXAMPLE = datetime(2022, 1, 1)


@dataclass(frozen=True)
class Shape:
    """One kind of generated Observation: ``build(id, patient id, when text)`` gives its
    body; the filler uses shape ``n % len(shapes)`` for a person's n-th result."""

    build: Callable[[str, str, str], dict[str, Any]]


@contextmanager
def indexes_dropped(conn: psycopg.Connection) -> Iterator[None]:
    """Drop the non-key indexes of ``resource`` and ``search_index`` and the index rows'
    foreign key; build them again on leaving (with more maintenance memory)."""
    tables = ("resource", "search_index")
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = ANY(%s) AND indexname NOT IN (SELECT conname FROM pg_constraint "
        "WHERE connamespace = current_schema()::regnamespace)",
        (list(tables),),
    ).fetchall()
    foreign = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'search_index'::regclass AND contype = 'f'"
    ).fetchall()
    for name, _ in foreign:
        conn.execute(f'ALTER TABLE search_index DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    conn.commit()
    yield
    started = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '512MB'")
    for _, definition in indexes:
        conn.execute(definition)
        conn.commit()
    for name, definition in foreign:
        conn.execute(f'ALTER TABLE search_index ADD CONSTRAINT "{name}" {definition} NOT VALID')
    conn.commit()
    print(f"  {len(indexes)} indexes built in {time.perf_counter() - started:.0f} s", flush=True)


def _templates(conn: psycopg.Connection, shapes: list[Shape]) -> None:
    """Temporary tables of the shapes' bodies (with placeholders) and index rows (with
    their role: 'patient' for a row holding the patient reference, 'date' for the date)."""
    conn.execute("CREATE TEMP TABLE fill_body (shape int, body text) ON COMMIT PRESERVE ROWS")
    types = {"value_date_start": "timestamptz", "value_date_end": "timestamptz"}
    types["value_number"] = "numeric"
    types.update(system_id="int", param_id="int", kind="int", resource_key="bigint")
    types["target_key"] = "bigint"
    columns = ", ".join(f"{c} {types.get(c, 'text')}" for c in INDEX_COLUMNS)
    # row_id: the row's number among its resource's rows, as the store gives it (0098)
    conn.execute(f"CREATE TEMP TABLE fill_index (shape int, role text, row_id int, {columns})")
    for n, shape in enumerate(shapes):
        body = shape.build(ID, PATIENT, WHEN)
        conn.execute("INSERT INTO fill_body VALUES (%s, %s)", (n, orjson.dumps(body).decode()))
        real = shape.build("x", "x", _WHEN_EXAMPLE.isoformat() + "+00:00")
        for number, value in enumerate(index_values(real)):
            row = index_row("Observation", 0, value)  # the key is the resource row's (_insert)
            with conn.cursor() as cur:  # the ids, as the store would give them (0059, 0071)
                with_ids(cur, [row])
            role = None
            if row["reference"] == "Patient/x":  # written as the person's key (_insert)
                role = "patient"
            elif row["value_date_start"] is not None:
                role = "date"
            conn.execute(
                f"INSERT INTO fill_index (shape, role, row_id, {', '.join(INDEX_COLUMNS)}) "
                f"VALUES (%s, %s, %s, {', '.join(['%s'] * len(INDEX_COLUMNS))})",
                (n, role, number, *(row.get(c) for c in INDEX_COLUMNS)),
            )


@dataclass(frozen=True)
class Group:
    """``persons`` persons ``Patient/<prefix>p<k>``, each with ``per_person`` results with
    ids ``<prefix><k>-<n>``, spread evenly over the filled span."""

    prefix: str
    persons: int
    per_person: int


def fill_observations(
    conn: psycopg.Connection,
    shapes: list[Shape],
    groups: list[Group],
    *,
    facility_id: str,
    start: datetime,
    span_seconds: int,
    slices: int = 50,
) -> None:
    """Every group's Observations, inserted in time order as they would have arrived: in
    ``slices`` periods, each period's results of every person, the persons interleaved, so
    that one person's results lie on different pages as in a store filled over years (not
    side by side, which would flatter the query). Plus one Patient row per person.
    The bodies are made in SQL from text templates, so they are stored as plain JSON (the
    UTF-8 bytes bodies written before migration 0017 have), not compressed: the store reads
    both (decision 0049)."""
    _templates(conn, shapes)
    conn.execute("SET synchronous_commit = off")  # a scratch schema: nothing to lose
    # the persons first, as a feed stores a patient with (or before) their first result:
    # their results' patient rows name them by key (decision 0080)
    for group in groups:
        conn.execute(
            "INSERT INTO resource (resource_type, id, version_id, last_updated, deleted, "
            "content_hash, body, patient_key) "
            f"SELECT 'Patient', '{group.prefix}p' || k, 1, now(), false, 'h', "
            f'convert_to(\'{{"resourceType":"Patient","id":"{group.prefix}p\' || k || \'"}}\', '
            "'UTF8'), "
            f"'Patient/{group.prefix}p' || k FROM generate_series(0, {group.persons - 1}) AS k"
        )
    total = sum(g.persons * g.per_person for g in groups)
    done = 0
    started = time.perf_counter()
    for s in range(slices):
        for group in groups:
            first = s * group.per_person // slices
            last = (s + 1) * group.per_person // slices  # exclusive
            if last > first:
                _insert(conn, group, len(shapes), first, last, facility_id, start, span_seconds)
                done += (last - first) * group.persons
        conn.commit()
        if (s + 1) % 10 == 0 or s + 1 == slices:
            rate = done / (time.perf_counter() - started)
            print(f"  {done:,} / {total:,} Observations ({rate:,.0f}/s)", flush=True)
    conn.execute("DROP TABLE fill_body")
    conn.execute("DROP TABLE fill_index")
    conn.commit()
    keyed_rows_to_terms(conn)


def keyed_rows_to_terms(conn: psycopg.Connection) -> None:
    """On a store at migration 0037 or later (PostgreSQL): the reference rows written with
    a target key become elements of their resource's array, as the store writes them
    (decision 0088), merged with an array the resource has."""
    found = conn.execute("SELECT to_regclass('search_terms')").fetchone()
    if not found or found[0] is None:
        return
    keyed = "kind = 4 AND target_key IS NOT NULL"
    conn.execute(
        "INSERT INTO search_terms AS t (resource_key, refs) SELECT resource_key, "
        f"array_agg(DISTINCT (param_id::bigint << 40) | target_key) FROM search_index "
        f"WHERE {keyed} GROUP BY resource_key ON CONFLICT (resource_key) DO UPDATE SET refs = "
        "ARRAY(SELECT DISTINCT k FROM unnest(t.refs || excluded.refs) AS k ORDER BY k)"
    )
    conn.execute(f"DELETE FROM search_index WHERE {keyed}")
    conn.commit()


def _insert(
    conn: psycopg.Connection,
    group: Group,
    shape_count: int,
    first: int,
    last: int,
    facility_id: str,
    start: datetime,
    span_seconds: int,
) -> None:
    """Results ``first`` to ``last`` (exclusive) of every person of ``group``: ``g`` runs
    over them result-major (person k = g mod persons, result n = first + g / persons)."""
    p, per = group.persons, group.per_person
    t0 = start.strftime("%Y-%m-%d %H:%M:%S")
    pick = (
        f"SELECT mod(g, {p}) AS k, {first} + g / {p} AS n FROM generate_series(0, "
        f"{(last - first) * p - 1}::bigint) AS g"
    )
    seconds = f"floor(n::numeric * {span_seconds} / {per})::float8"
    when = f"timestamptz '{t0}+00' + make_interval(secs => {seconds})"
    rid = f"'{group.prefix}' || k || '-' || n"
    person = f"'{group.prefix}p' || k"
    conn.execute(  # the facility as its facility_name key (decision 0118)
        "INSERT INTO facility_name (name) VALUES (%s) ON CONFLICT DO NOTHING", (facility_id,)
    )
    conn.execute(
        f"""
        INSERT INTO resource (resource_type, id, version_id, last_updated, deleted,
                              content_hash, body, message_id, patient_key, facility_key)
        SELECT 'Observation', {rid}, 1, w, false, 'h',
               convert_to(replace(replace(replace(t.body, '{ID}', {rid}), '{PATIENT}', {person}),
                       '{WHEN}', to_char(w AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')),
                          'UTF8'),
               NULL, 'Patient/' || {person},
               (SELECT facility_key FROM facility_name WHERE name = '{facility_id}')
        FROM ({pick}) AS kn
        CROSS JOIN LATERAL (SELECT {when} AS w) AS tw
        JOIN fill_body t ON t.shape = mod(n, {shape_count})
        """
    )
    picked = ", ".join(
        {
            "resource_key": "r.resource_key",
            "reference": "CASE WHEN ti.role = 'patient' THEN NULL ELSE ti.reference END",
            "target_key": "CASE WHEN ti.role = 'patient' THEN pr.resource_key "
            "ELSE ti.target_key END",
            "value_date_start": "CASE WHEN ti.role = 'date' THEN w ELSE ti.value_date_start END",
            "value_date_end": "CASE WHEN ti.role = 'date' THEN w + interval '1 second' "
            "ELSE ti.value_date_end END",
        }.get(c, f"ti.{c}")
        for c in INDEX_COLUMNS
    )
    conn.execute(
        f"""
        INSERT INTO search_index (row_id, {", ".join(INDEX_COLUMNS)})
        SELECT ti.row_id, {picked}
        FROM ({pick}) AS kn
        CROSS JOIN LATERAL (SELECT {when} AS w) AS tw
        JOIN fill_index ti ON ti.shape = mod(n, {shape_count})
        JOIN resource r ON r.resource_type = 'Observation' AND r.id = {rid}
        JOIN resource pr ON pr.resource_type = 'Patient' AND pr.id = {person}
        """
    )
