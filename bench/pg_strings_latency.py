"""String search latency on PostgreSQL through the store's own code, p50 and p95 per search
form (decision 0114: string values as dictionary ids in the token arrays; run it on a tree
before and after, alternating, to compare).

Loads N Patients (``--patients``, default 120,000) with county-like names and addresses
(surnames drawn Zipf-like from 60, given names of one or two characters from 90, 5 % in
pinyin; one province, five counties with their postal codes, 20 towns, 640 villages,
groups 1-12) into a KEPT schema (``--schema``; loaded once when empty, by the tree's own
COPY loader, which writes the tree's form), then times each search ``--runs`` times after
one warm-up (wall ms of the whole call) and prints p50 / p95, the process CPU ms per call,
the PostgreSQL backend's CPU ms per call (/proc, 10 ms ticks: a mean over the runs) and
the load. Drop the schema by hand after (``DROP SCHEMA name CASCADE``).

    .venv/bin/python bench/pg_strings_latency.py --schema str_branch [--patients 120000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapter.fhir.search_query import parse_search  # noqa: E402
from adapter.store import make_engine, migrate, session_factory  # noqa: E402
from adapter.store.search import find  # noqa: E402
from bench.bench_search import DEFAULT_PG, T0  # noqa: E402
from bench.pg_schema import (  # noqa: E402
    ResourceCopy,
    loaded_rows,
    maintain_own_schema,
    scratch_schema,
)
from bench.pg_tokens_latency import timed  # noqa: E402

SURNAMES = (
    "张王李刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
    "彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红"
    "娥玲芬燕彬鹏辉斌宇浩凯健俊帆帅旭宁龙林欣怡晨阳佳琪子轩梓涵雨"
    "萱诗雅博文一诺思远家豪"
)
PINYIN = ("Zhang", "Wang", "Li", "Liu", "Chen")
COUNTIES = (("青山县", "415100"), ("石门县", "415300"), ("桃源县", "415700"),
            ("临澧县", "415200"), ("澧县", "415500"))  # fmt: skip
TOWNS = [
    a + b + "镇"
    for a, b in zip(
        "柳石桥新龙白马黄金清水长乐高东西南北中", "河桥头塘门沙岭坪江湾" * 2, strict=False
    )
]
SEARCHES: list[tuple[str, list[tuple[str, str]]]] = [
    ("family=张 (frequent)", [("family", "张")]),
    ("family=范 (rare)", [("family", "范")]),
    ("name=张伟", [("name", "张伟")]),
    ("name:exact=张伟", [("name:exact", "张伟")]),
    ("name:contains=伟", [("name:contains", "伟")]),
    ("given=秀", [("given", "秀")]),
    ("address=柳河 (a town's villages)", [("address", "柳河")]),
    ("address-city=青山县", [("address-city", "青山县")]),
    ("family, given, city", [("family", "张"), ("given", "伟"), ("address-city", "青山县")]),
    ("name=zhang (pinyin)", [("name", "zhang")]),
    ("family=张, _sort=given", [("family", "张"), ("_sort", "given")]),
    ("a patient: _id, name:missing=false", [("_id", "p4321"), ("name:missing", "false")]),
    ("family:missing=true", [("family:missing", "true")]),
    ("whole type, _sort=family", [("_sort", "family")]),
    ("family=张, _total=accurate", [("family", "张"), ("_total", "accurate")]),
    ("name:contains=伟, _total=accurate", [("name:contains", "伟"), ("_total", "accurate")]),
]


def patient(n: int, rng: random.Random) -> dict[str, Any]:
    weights = [1 / (k + 1) for k in range(len(SURNAMES))]
    if rng.random() < 0.05:
        family, given = rng.choice(PINYIN), rng.choice(("Wei", "Min", "Jun", "Fang"))
        text_name = f"{family} {given}"
    else:
        family = rng.choices(SURNAMES, weights)[0]
        given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
        text_name = family + given
    county, postal = rng.choice(COUNTIES)
    town = rng.choice(TOWNS)
    village = town[:-1] + rng.choice("新老东西南北上下") + rng.choice("街屯庄湾") + "村"
    line = f"{village}{rng.randint(1, 12)}组"
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "name": [{"text": text_name, "family": family, "given": [given]}],
        "address": [{"line": [line], "city": county, "state": "湖南省", "postalCode": postal}],
    }


def load(conn: Any, patients: int) -> None:
    rng = random.Random(14)
    rows = ResourceCopy()
    for n in range(patients):
        rows.add(patient(n, rng), last_updated=T0.isoformat(), patient_key=f"Patient/p{n}")
        if (n + 1) % 20_000 == 0:
            rows.flush(conn)
    rows.flush(conn)


def _run(session: Any, params: list[tuple[str, str]]) -> int:
    parsed = parse_search("Patient", [*params, ("_count", "20")])
    page = find(session, ["Patient"], parsed.criteria, count=20, sort=parsed.sort,
                total=parsed.total)  # fmt: skip
    return len(page.bodies)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=120_000)
    ap.add_argument("--schema", required=True, help="kept schema (loaded when empty)")
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--only", default="", help="comma-separated search numbers")
    ap.add_argument("--pg", default=os.environ.get("BENCH_PG", DEFAULT_PG))
    args = ap.parse_args()
    with scratch_schema(args.pg, "str", keep=args.schema) as schema:
        engine = make_engine(schema.url)
        if loaded_rows(schema, "Patient") == 0:
            migrate(engine)
            with schema.connect() as conn:
                started = time.perf_counter()
                load(conn, args.patients)
                conn.commit()
                conn.autocommit = True
                maintain_own_schema(conn.execute, vacuum=True)
            print(f"loaded in {time.perf_counter() - started:.0f} s")
        factory = session_factory(engine)
        wanted = {int(n) for n in args.only.split(",") if n}
        print(f"load average at start {os.getloadavg()[0]:.1f}")
        print(f"{'#':>2} {'search':34} {'p50 ms':>8} {'p95 ms':>8} {'cpu ms':>7} {'pg cpu':>7}"
              f" {'found':>6}")  # fmt: skip
        with factory() as session:
            backend = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            session.rollback()
            for n, (label, params) in enumerate(SEARCHES):
                if wanted and n not in wanted:
                    continue
                found = _run(session, params)  # warm-up
                session.rollback()
                p50, p95, per, pg_cpu = timed(
                    session, partial(_run, session, params), args.runs, backend
                )
                print(f"{n:2} {label:34} {p50:8.2f} {p95:8.2f} {per:7.2f} {pg_cpu:7.2f} {found:6}")
        engine.dispose()
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
