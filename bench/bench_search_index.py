"""Benchmark: three designs of the search_index text keys on PostgreSQL (decision 0012).

    .venv/bin/python bench/bench_search_index.py [--messages 1500] [--rounds 30] [--pg URL]

The index rows are the real ones: every ORU fixture under fixtures/hl7v2/oru translated by
the pipeline, ``index_values`` of each resource, the message copied ``--messages`` times
under new resource ids (about 90 rows a copy). In the "long" data set one copy in ten also
carries an Observation whose valueString is the 2,000-character text of
fixtures/long-text/ct-chest-abdomen-findings.txt, and a code of 900 characters.

Designs, each a table of its own with the partial per-kind indexes of migration 0001:
  full     the text columns indexed whole (before issue 8): the long data set fails
  bounded  the chosen design: keys of at most 200 characters, the whole value in
           <column>_full when cut (adapter/store/index_keys.py)
  expr     expression indexes on left(column, 200), the whole value in the column, and the
           queries repeat the expression (the alternative without extra columns)
  keyed    bounded, the resource named by an integer ``resource_key`` instead of its
           36-character id in every row and index entry (decision 0055)
  interned keyed, the token system an integer ``system_id`` of a small table of systems
           instead of its text in every row and token index entry (decision 0059: the
           store's design); a search by system looks its id up in a scalar subquery

Per design: insert time (one transaction per message, executemany, as save_resources
does), total size of its indexes, and the median time of three searches, with whether
PostgreSQL answered from the index alone (Index Only Scan): a token search with many hits,
the same code with its system (``system|code``), a selective token search, a string prefix
search. Results are printed as a table; the
"full" design has no long row.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from adapter.consortium import load_consortium
from adapter.fhir.index_values import IndexValue, index_values, normalize_text
from adapter.pipeline import Translator
from adapter.store.index_keys import KEY_CHARS, head_key
from adapter.store.resources import index_row
from adapter.store.systems import system_hash
from bench.pg_schema import scratch_schema

ROOT = Path(__file__).resolve().parent.parent
ORU = ROOT / "fixtures" / "hl7v2" / "oru"
LONG = (ROOT / "fixtures" / "long-text" / "ct-chest-abdomen-findings.txt").read_text("utf-8")
LONG_TEXT = "".join(LONG.split())[:2000]  # a 检查所见 of 2,000 characters
LONG_CODE = LONG_TEXT[1000:1900]  # a 900-character code
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
COLUMNS = (
    "resource_type",
    "resource_id",  # resource_key in the keyed designs (_columns)
    "param",
    "kind",
    "system",  # system_id in the interned designs (_columns)
    "code",
    "value",
    "value_norm",
    "reference",
    "system_full",
    "code_full",
    "value_norm_full",
    "reference_full",
)


def base_rows() -> list[tuple[str, str, IndexValue]]:
    consortium = load_consortium(ROOT / "fixtures" / "consortium.yaml")
    translator = Translator(
        consortium,
        mappings_dir=ROOT / "mappings",
        max_bytes=5 * 1024 * 1024,
        default_timezone="Asia/Shanghai",
    )
    rows: list[tuple[str, str, IndexValue]] = []
    for path in sorted(ORU.glob("*/*.hl7")):
        source = path.parent.name
        outcome = translator.translate(path.read_bytes(), source)
        for resource in outcome.resources:
            for value in index_values(resource):
                rows.append((resource["resourceType"], resource["id"], value))
    return rows


def long_rows(rid: str) -> list[tuple[str, str, IndexValue]]:
    return [
        (
            "Observation",
            rid,
            IndexValue(
                "value-string", "string", value=LONG_TEXT, value_norm=normalize_text(LONG_TEXT)
            ),
        ),
        (
            "Observation",
            rid,
            IndexValue("value-concept", "token", system="https://example.cn/lis", code=LONG_CODE),
        ),
    ]


SYSTEMS: dict[str, int] = {}  # the interned designs' system ids, given on first use


def message_rows(
    base: list[tuple[str, str, IndexValue]], n: int, design: str, with_long: bool
) -> list[tuple[Any, ...]]:
    suffix = f"-{n}"
    values = [(t, i + suffix, v) for t, i, v in base]
    if with_long and n % 10 == 0:
        values += long_rows(f"long{suffix}")
    out = []
    keys: dict[str, int] = {}  # the copy's resources numbered, as the store's keys
    for rtype, rid, value in values:
        row = index_row(rtype, n * 100_000 + keys.setdefault(rid, len(keys)), value)
        row["resource_id"] = rid
        system = row["system"]
        row["system"], row["system_full"] = head_key(system)
        row["system_id"] = None if system is None else SYSTEMS.setdefault(system, len(SYSTEMS) + 1)
        if not design.startswith(("bounded", "keyed", "interned")):  # whole values indexed
            for column in ("system", "code", "value_norm", "reference"):
                row[column] = getattr(value, column)
                row[f"{column}_full"] = None
        out.append(tuple(row[c] for c in _columns(design)))
    return out


def _key(design: str) -> str:
    """The column naming the resource: its integer key in the keyed designs, else its id."""
    return "resource_key" if design.startswith(("keyed", "interned")) else "resource_id"


def _columns(design: str) -> tuple[str, ...]:
    named = {"resource_id": _key(design)}
    if design.startswith("interned"):
        named["system"] = "system_id"
    return tuple(
        named.get(c, c) for c in COLUMNS if not (c == "system_full" and named.get("system"))
    )


def create(conn: psycopg.Connection, design: str) -> None:
    key = _key(design)
    key_type = "bigint" if key == "resource_key" else "varchar(64)"
    conn.execute(f"""CREATE TABLE si_{design} (
        row_id bigserial PRIMARY KEY, resource_type varchar(64), {key} {key_type},
        param varchar(64), kind varchar(16), system text, code text, value text,
        value_norm text, reference text, system_full text, code_full text,
        value_norm_full text, reference_full text, system_id int)""")
    t = f"si_{design}"
    if design.startswith("expr"):
        code, system, norm, ref = (
            f"left(code, {KEY_CHARS})",
            f"left(system, {KEY_CHARS})",
            f"left(value_norm, {KEY_CHARS})",
            f"right(reference, {KEY_CHARS})",
        )
    else:
        code, system, norm, ref = "code", "system", "value_norm", "reference"
        if design.startswith("interned"):
            system = "system_id"
    conn.execute(
        f"CREATE INDEX {t}_token ON {t} (resource_type, param, {code}, {system}, "
        f"{key}) WHERE kind = 'token'"
    )
    conn.execute(
        f"CREATE INDEX {t}_string ON {t} (resource_type, param, "
        f"({norm}) text_pattern_ops, {key}) WHERE kind = 'string'"
    )
    conn.execute(
        f"CREATE INDEX {t}_reference ON {t} (resource_type, param, {ref}, "
        f"{key}) WHERE kind = 'reference'"
    )
    whole = key if key == "resource_key" else f"resource_type, {key}"
    conn.execute(f"CREATE INDEX {t}_resource ON {t} ({whole})")


def insert(conn: psycopg.Connection, design: str, rows: list[tuple[Any, ...]]) -> None:
    marks = ", ".join(["%s"] * len(_columns(design)))
    with conn.transaction(), conn.cursor() as cur:
        columns = ", ".join(_columns(design))
        cur.executemany(f"INSERT INTO si_{design} ({columns}) VALUES ({marks})", rows)


def searches(
    design: str, common: tuple[str, str], rare_code: str, prefix: str
) -> dict[str, tuple[str, tuple[Any, ...]]]:
    t, key = f"si_{design}", _key(design)
    common_system, common_code = common
    with_system = (
        f"SELECT {key} FROM {t} WHERE kind = 'token' AND resource_type = 'Observation' AND "
        "param = 'code' AND code = %s AND "
    )
    if design.startswith("interned"):
        with_system += "system_id = (SELECT system_id FROM si_systems WHERE system_hash = %s)"
        system_param = system_hash(common_system)
    elif design.startswith("expr"):
        with_system += f"left(system, {KEY_CHARS}) = left(%s, {KEY_CHARS})"
        system_param = common_system
    else:
        with_system += "system = %s"
        system_param = common_system
    by_system = (with_system, (common_code, system_param))
    if design.startswith("expr"):
        code_eq = f"left(code, {KEY_CHARS}) = left(%s, {KEY_CHARS}) AND code = %s"
        norm_like = f"left(value_norm, {KEY_CHARS}) LIKE %s"
        return {
            "token, many hits": (
                f"SELECT {key} FROM {t} WHERE kind = 'token' AND "
                f"resource_type = 'Observation' AND param = 'code' AND {code_eq}",
                (common_code, common_code),
            ),
            "token system|code": by_system,
            "token, selective": (
                f"SELECT {key} FROM {t} WHERE kind = 'token' AND "
                f"resource_type = 'Observation' AND param = 'code' AND {code_eq}",
                (rare_code, rare_code),
            ),
            "string prefix": (
                f"SELECT {key} FROM {t} WHERE kind = 'string' AND "
                f"resource_type = 'Patient' AND param = 'name' AND {norm_like}",
                (prefix + "%",),
            ),
        }
    return {
        "token, many hits": (
            f"SELECT {key} FROM {t} WHERE kind = 'token' AND "
            "resource_type = 'Observation' AND param = 'code' AND code = %s",
            (common_code,),
        ),
        "token system|code": by_system,
        "token, selective": (
            f"SELECT {key} FROM {t} WHERE kind = 'token' AND "
            "resource_type = 'Observation' AND param = 'code' AND code = %s",
            (rare_code,),
        ),
        "string prefix": (
            f"SELECT {key} FROM {t} WHERE kind = 'string' AND "
            "resource_type = 'Patient' AND param = 'name' AND value_norm LIKE %s",
            (prefix + "%",),
        ),
    }


DESIGNS = (
    "full",
    "bounded",
    "expr",
    "keyed",
    "interned",
    "bounded_long",
    "expr_long",
    "keyed_long",
    "interned_long",
)


def run(url: str, messages: int, rounds: int) -> None:
    base = base_rows()
    codes = [v.code for t, _, v in base if t == "Observation" and v.param == "code" and v.code]
    common_code = max(set(codes), key=codes.count)
    common = next(
        (v.system or "", v.code)
        for t, _, v in base
        if t == "Observation" and v.param == "code" and v.code == common_code and v.system
    )
    rare = min(set(codes), key=codes.count)
    names = [v.value_norm for t, _, v in base if t == "Patient" and v.param == "name"]
    prefix = (names[0] or "")[:1]
    print(
        f"{len(base)} index rows a copy (all ORU fixtures), {messages} copies; token code "
        f"{common!r} ({codes.count(common_code)} a copy), {rare!r} ({codes.count(rare)}); "
        f"name prefix {prefix!r}"
    )
    with scratch_schema(url, "bench_si") as schema, schema.connect(autocommit=True) as conn:
        _run(conn, base, messages, rounds, (common, rare, prefix))


def _run(
    conn: psycopg.Connection,
    base: list[tuple[str, str, IndexValue]],
    messages: int,
    rounds: int,
    probes: tuple[tuple[str, str], str, str],
) -> None:
    create(conn, "full")
    try:
        insert(conn, "full", message_rows(base, 0, "full", True))
        print("full + long: stored (unexpected)")
    except psycopg.errors.ProgramLimitExceeded as exc:
        print(f"full + long: refused, {str(exc).splitlines()[0]}")
    conn.execute("DROP TABLE si_full")
    for design in DESIGNS:
        create(conn, design)
    # the designs take turns, copy by copy, so machine noise hits them alike
    spent = dict.fromkeys(DESIGNS, 0.0)
    rows_total = dict.fromkeys(DESIGNS, 0)
    for n in range(messages):
        for design in DESIGNS:
            rows = message_rows(base, n, design, design.endswith("_long"))
            started = time.perf_counter()
            insert(conn, design, rows)
            spent[design] += time.perf_counter() - started
            rows_total[design] += len(rows)
    conn.execute(
        "CREATE TABLE si_systems (system_id int PRIMARY KEY, system text,"
        " system_hash varchar(64) UNIQUE)"
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO si_systems VALUES (%s, %s, %s)",
            [(n, s, system_hash(s)) for s, n in SYSTEMS.items()],
        )
    sizes = {}
    for design in DESIGNS:
        conn.execute(f"VACUUM ANALYZE si_{design}")
        sizes[design] = conn.execute(
            f"SELECT pg_indexes_size('si_{design}'), pg_table_size('si_{design}')"
        ).fetchone()
    queries = {d: searches(d, *probes) for d in DESIGNS}
    samples: dict[tuple[str, str], list[float]] = {}
    index_only: dict[tuple[str, str], bool] = {}
    for design, named in queries.items():
        for name, (sql, params) in named.items():
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params))
            index_only[(design, name)] = "Index Only" in plan
            conn.execute(sql, params).fetchall()  # warm
    for _ in range(rounds):
        for design, named in queries.items():
            for name, (sql, params) in named.items():
                t0 = time.perf_counter()
                conn.execute(sql, params).fetchall()
                samples.setdefault((design, name), []).append(time.perf_counter() - t0)
    names = list(queries["full"])
    floor = spent["full"] / messages * 1000
    print()
    print(
        "| design | rows | insert ms / copy (x full) | indexes MB | table MB | "
        + " | ".join(f"{n}: ms (index-only)" for n in names)
        + " |"
    )
    print("|---" * (5 + len(names)) + "|")
    for design in DESIGNS:
        per_copy = spent[design] / messages * 1000
        cells = " | ".join(
            f"{statistics.median(samples[(design, n)]) * 1000:.2f} "
            f"({'yes' if index_only[(design, n)] else 'no'})"
            for n in names
        )
        index_bytes, table_bytes = sizes[design]
        print(
            f"| {design.replace('_long', ' + long')} | {rows_total[design]} | "
            f"{per_copy:.1f} ({per_copy / floor:.2f}) | {index_bytes / 1e6:.1f} | "
            f"{table_bytes / 1e6:.1f} | {cells} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--pg", default=DEFAULT_PG)
    args = parser.parse_args()
    run(args.pg, args.messages, args.rounds)


if __name__ == "__main__":
    main()
