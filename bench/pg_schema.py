"""A PostgreSQL schema of one benchmark run: made at the start, dropped at the end (also when
the run fails), so runs never see each other's tables or leave any behind; and the COPY
loader of resource rows with their real search-index rows that the search benchmarks share."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from adapter.fhir.index_values import index_values
from adapter.store.body_codec import pack
from adapter.store.id_forms import key_bytes
from adapter.store.models import KINDS
from adapter.store.resource_keys import local_target
from adapter.store.resources import index_rows
from adapter.store.search_terms import term_rows
from adapter.store.search_tokens import fold_rows_sql
from adapter.store.systems import system_hash


@dataclass(frozen=True)
class Schema:
    name: str
    libpq_url: str  # for psycopg.connect (no SQLAlchemy driver name)
    url: str  # a SQLAlchemy URL whose connections work in the schema

    def connect(self, **kwargs: Any) -> psycopg.Connection:
        """A psycopg connection working in the schema."""
        return psycopg.connect(self.libpq_url, options=f"-csearch_path={self.name}", **kwargs)


@contextmanager
def scratch_schema(url: str, prefix: str, keep: str | None = None) -> Iterator[Schema]:
    """``url``: a PostgreSQL URL, with or without a SQLAlchemy driver (``+psycopg``).
    ``keep``: a schema name to make if missing and leave behind (a large data set loaded
    once and queried by later runs, e.g. on a quieter machine); drop it by hand after."""
    parsed = make_url(url)
    libpq = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    name = keep or f"{prefix}_{uuid.uuid4().hex[:8]}"
    engine_url = parsed.set(drivername="postgresql+psycopg").update_query_dict(
        {"options": f"-csearch_path={name}"}
    )
    with psycopg.connect(libpq, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')
        try:
            yield Schema(name, libpq, engine_url.render_as_string(hide_password=False))
        finally:
            if keep is None:
                admin.execute(f'DROP SCHEMA "{name}" CASCADE')


def loaded_rows(schema: Schema, resource_type: str) -> int:
    """How many ``resource_type`` rows a kept schema holds already (0 when new)."""
    with schema.connect() as conn:
        found = conn.execute("SELECT to_regclass('resource') IS NOT NULL").fetchone()
        if not found or not found[0]:
            return 0
        row = conn.execute(
            "SELECT count(*) FROM resource WHERE resource_type = %s", (resource_type,)
        ).fetchone()
        return int(row[0]) if row else 0


INDEX_COLUMNS = (
    "resource_key",
    "param_id",  # search_param's id (decision 0071)
    "kind",  # as its number (KINDS)
    "system_id",  # search_system's id (decision 0059)
    "code",
    "value",
    "value_norm",
    "value_date_start",
    "value_date_end",
    "value_number",
    "reference",
    "code_full",
    "value_norm_full",
    "reference_full",
    "target_key",  # a reference to a resource of the store: its key (decision 0080)
)
_RESOURCE_COPY = (
    "COPY resource (resource_type, id, resource_key, version_id, last_updated, deleted, "
    "content_hash, body, message_id, patient_key, facility_key) FROM STDIN"
)


def copy_value(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    text_value = str(value)
    return text_value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


class ResourceCopy:
    """Resource rows (version 1) and the index rows the store would write for them,
    gathered in memory and written with COPY by ``flush``."""

    def __init__(self) -> None:
        self._resources, self._rows = io.StringIO(), []
        self._key = 0  # resource keys given (a new schema); the sequence set past them
        self._keys: dict[str, int] = {}  # ``Type/id`` -> key of every resource added

    def add(
        self,
        body: dict[str, Any],
        *,
        last_updated: str,
        patient_key: str | None,
        facility_key: int | None = None,  # a ``facility_name`` key (decision 0118)
    ) -> None:
        rtype, rid = body["resourceType"], body["id"]
        stored = "\\x" + pack(body).hex()  # bytea in COPY's text format (decision 0049)
        # the key as the column stores it: the bare id in 16 bytes (decision 0123)
        key = None if patient_key is None else "\\x" + key_bytes(patient_key).hex()
        self._key += 1
        values = (
            rtype, rid, self._key, 1, last_updated, "f", "h", stored, None, key, facility_key,
        )  # fmt: skip
        self._resources.write("\t".join(copy_value(v) for v in values) + "\n")
        self._keys[f"{rtype}/{rid}"] = self._key
        self._rows.extend(index_rows(rtype, self._key, index_values(body)))

    def flush(self, conn: psycopg.Connection) -> None:
        """COPY what was added, commit, and start again empty."""
        with conn.cursor() as cur:
            with_ids(cur, self._rows)
            with_targets(self._rows, self._keys)
            rows, terms = self._rows, []
            if cur.execute("SELECT to_regclass('search_terms')").fetchone()[0] is not None:
                # PostgreSQL since migration 0037: a reference named by key is an element of
                # its resource's array, not a row (adapter/store/search_terms.py, 0088)
                keyed = [r for r in rows if r.get("target_key") is not None]
                rows = [r for r in rows if r.get("target_key") is None]
                terms = term_rows(
                    (r["resource_key"], r["param_id"], r["target_key"]) for r in keyed
                )
            index = io.StringIO()
            numbers: dict[int, int] = {}  # row_id: each resource's rows numbered (0098)
            for row in rows:
                key = row["resource_key"]
                number = numbers[key] = numbers.get(key, -1) + 1
                values = "\t".join(copy_value(row[c]) for c in INDEX_COLUMNS)
                index.write(f"{number}\t{values}\n")
            with cur.copy(_RESOURCE_COPY) as copy:
                copy.write(self._resources.getvalue())
            columns = ", ".join(("row_id", *INDEX_COLUMNS))
            with cur.copy(f"COPY search_index ({columns}) FROM STDIN") as copy:
                copy.write(index.getvalue())
            if terms:
                with cur.copy("COPY search_terms (resource_key, refs) FROM STDIN") as copy:
                    for term in terms:
                        copy.write_row(term)
            if cur.execute("SELECT to_regclass('search_token')").fetchone()[0] is not None:
                # since migration 0043: the movable token values are dictionary ids in
                # their resource's array (adapter/store/search_tokens.py, decision 0103)
                for statement in fold_rows_sql():
                    cur.execute(statement)
            cur.execute(
                "SELECT setval('resource_key_seq', (SELECT max(resource_key) FROM resource))"
            )
        conn.commit()
        self._resources, self._rows = io.StringIO(), []


def system_ids(cur: psycopg.Cursor[Any], systems: set[str]) -> dict[str, Any]:
    """The search_system ids of ``systems``, created where missing (as the store does)."""
    if systems:
        cur.executemany(
            "INSERT INTO search_system (system, system_hash) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING",
            [(s, system_hash(s)) for s in sorted(systems)],
        )
    cur.execute(
        "SELECT system, system_id FROM search_system WHERE system_hash = ANY(%s)",
        ([system_hash(s) for s in systems],),
    )
    return dict(cur.fetchall())


def param_ids(cur: psycopg.Cursor[Any], triples: set[tuple[str, str, int]]) -> dict[Any, Any]:
    """The search_param ids of (type, row name, kind number) triples, created where missing
    (as the store does, decision 0071)."""
    if triples:
        cur.executemany(
            "INSERT INTO search_param (resource_type, param, kind) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            sorted(triples),
        )
    cur.execute("SELECT resource_type, param, kind, param_id FROM search_param")
    return {(t, p, k): i for t, p, k, i in cur.fetchall()}


def with_ids(cur: psycopg.Cursor[Any], rows: list[dict[str, Any]]) -> None:
    """``index_row``'s dictionaries as the table holds them: ``system_id``, ``param_id`` and
    the kind's number, given as the store gives them (decisions 0059, 0071)."""
    # an identifier's row carrying its type: the type's system as text in value_number (0098)
    typed = [r for r in rows if isinstance(r.get("value_number"), str)]
    named = {r["system"] for r in rows if r["system"] is not None}
    systems = system_ids(cur, named | {r["value_number"] for r in typed})
    params = param_ids(cur, {(r["resource_type"], r["param"], KINDS[r["kind"]]) for r in rows})
    for row in typed:
        row["value_number"] = systems[row["value_number"]]
    for row in rows:
        row["system_id"] = systems.get(row["system"])
        row["kind"] = KINDS[row["kind"]]
        row["param_id"] = params[row["resource_type"], row["param"], row["kind"]]


def with_targets(rows: list[dict[str, Any]], keys: dict[str, int]) -> None:
    """A reference to a resource stored (``keys``: ``Type/id`` -> key) as the store writes
    it: the target's key, no text (decision 0080)."""
    for row in rows:
        reference = row.get("reference")
        key = keys.get(reference) if reference and local_target(reference) else None
        row["target_key"] = key
        if key is not None:
            row["reference"] = None


def analyze(conn: psycopg.Connection) -> None:
    with conn.cursor() as cur:
        cur.execute("ANALYZE resource")
        cur.execute("ANALYZE search_index")
        if cur.execute("SELECT to_regclass('search_terms')").fetchone()[0] is not None:
            cur.execute("ANALYZE search_terms")  # decision 0088
    conn.commit()


def maintain_own_schema(run: Callable[[str], Any], *, vacuum: bool = False) -> None:
    """``ANALYZE`` (or ``VACUUM (ANALYZE)``) of the current schema's tables only. A bare
    ``ANALYZE`` or ``VACUUM`` does every table of the database: the other schemas of a shared
    server too (other benchmarks, test runs whose young-table plans it changed), and takes
    as long as all of them. ``run`` executes one statement and returns its rows
    (``psycopg.Connection.execute``, or ``lambda s: conn.execute(text(s))``)."""
    tables = run(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
    ).fetchall()
    if tables:
        names = ", ".join('"' + name.replace('"', '""') + '"' for (name,) in tables)
        run(("VACUUM (ANALYZE) " if vacuum else "ANALYZE ") + names)
