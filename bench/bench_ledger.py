"""Benchmark: the quarterly referral analysis and the year's XLSX export of the 转诊台账 on
PostgreSQL (issue 12 §4).

    .venv/bin/python bench/bench_ledger.py [--referrals 20000] [--repeat 5] [--pg URL]

Data: a generated year (2026) of a county consortium, 1 county hospital and 15 township
centres: ``--referrals`` ledger rows (about 70 % up from a township to the county, 25 %
down, 5 % between townships; 3 % urgent; diagnoses from 40 ICD-10 codes; every step of
the loop with realistic delays; some rejected, cancelled, incomplete or late) loaded
with COPY into a scratch schema migrated like the adapter's, then ANALYZEd. The analysis
reads only the ledger table (adapter/referral/analysis.py), so rows are generated there
directly; the pipeline that fills it is measured by bench_ingest.py.

Rows printed:
  analysis   adapter.referral.analysis.analyse for Q3 (Jul-Sep), p50 / max of --repeat
  floor      one hand-written SELECT of the same quarter's columns (psycopg, fetchall):
             the rows the analysis must read, nothing computed
  export     adapter referrals ledger --format xlsx for the whole year and for one month,
             each in a child process: seconds, rows and the child's peak RSS (the same
             peak for 12x the rows is the bounded memory of the streaming export)
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zoneinfo import ZoneInfo

from adapter.consortium import load_consortium
from adapter.referral import analysis
from adapter.settings import DEFAULT_CONSORTIUM
from adapter.store import make_engine, migrate, session_factory
from bench.pg_schema import Schema, scratch_schema

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ZONE = ZoneInfo("Asia/Shanghai")
COUNTY = "qingshan-county-hospital"
TOWNS = [f"township-{n:02d}" for n in range(1, 16)]
DEPARTMENTS = ["心内科", "内分泌科", "呼吸科", "神经内科", "骨科", "普外科", "妇产科", "儿科"]
CODES = [f"{letter}{n:02d}.{m}" for letter in "IJEKNCMSG" for n, m in ((10, 0), (20, 9), (44, 1))]
CODES += [
    "I63.9",
    "E11.9",
    "J44.1",
    "I10.x",
    "N18.5",
    "C34.9",
    "S72.0",
    "K80.2",
    "O80.0",
    "R50.9",
    "Z51.1",
    "M17.9",
    "G45.9",
]
REASONS = ["病情需要上级医院诊治", "需进一步检查", "康复期回社区", "慢病管理", "手术治疗"]
COLUMNS = [
    "task_id",
    "request_id",
    "slip_number",
    "direction",
    "emergency",
    "green_channel",
    "backfilled",
    "patient_id",
    "patient_masked",
    "sex",
    "age",
    "insurance",
    "diagnosis_code",
    "diagnosis_text",
    "reason",
    "sender_facility",
    "sender_department",
    "sender_doctor",
    "receiver_facility",
    "receiver_department",
    "receiver_doctor",
    "out_of_county",
    "status",
    "business_status",
    "rejection_reason",
    "created_at",
    "received_at",
    "accepted_at",
    "rejected_at",
    "arrived_at",
    "admitted_at",
    "discharged_at",
    "feedback_at",
    "followed_up_at",
    "follow_ups",
    "closed_at",
    "feedback_document",
    "follow_up_record",
    "missing",
    "updated_at",
    "next_due_at",
    "next_due_kind",
]


def generate(rng: random.Random, n: int) -> list[tuple[object, ...]]:
    start = datetime(2026, 1, 1, tzinfo=ZONE).astimezone(UTC)
    rows = []
    for i in range(n):
        created = start + timedelta(minutes=rng.uniform(0, 365 * 24 * 60))
        roll = rng.random()
        town = rng.choice(TOWNS)
        if roll < 0.70:
            direction, sender, receiver = "up", town, COUNTY
        elif roll < 0.95:
            direction, sender, receiver = "down", COUNTY, town
        else:
            direction, sender, receiver = "same", town, rng.choice(TOWNS)
        out = direction == "up" and rng.random() < 0.04
        if out:
            receiver = "市第一人民医院"
        t = {
            k: None
            for k in (
                "received",
                "accepted",
                "rejected",
                "arrived",
                "admitted",
                "discharged",
                "feedback",
                "followed",
                "closed",
            )
        }
        status, business, reason = "requested", "requested", None
        fate = rng.random()
        t["received"] = created + timedelta(minutes=rng.expovariate(1 / 120))
        if fate < 0.04:
            status, business, t["received"] = "cancelled", "expired", None
            t["closed"] = created + timedelta(days=3)
        elif fate < 0.10:
            status, business = "rejected", "rejected"
            reason = rng.choice(
                ["bed-full", "out-of-scope", "incomplete-records", "patient-declined"]
            )
            t["rejected"] = t["closed"] = t["received"] + timedelta(hours=rng.uniform(0.5, 30))
        else:
            t["accepted"] = t["received"] + timedelta(minutes=rng.expovariate(1 / 240))
            status, business = "accepted", "accepted"
            if rng.random() < 0.93:
                t["arrived"] = t["accepted"] + timedelta(hours=rng.uniform(1, 80))
                status, business = "in-progress", "arrived"
                if rng.random() < 0.6:
                    t["admitted"], business = t["arrived"], "admitted"
                if rng.random() < 0.88:
                    t["discharged"] = t["arrived"] + timedelta(days=rng.uniform(1, 12))
                    t["feedback"] = t["discharged"]
                    status, business = "completed", "closed"
                    t["closed"] = t["discharged"] + timedelta(hours=2)
                    if rng.random() < 0.75:
                        t["followed"] = t["discharged"] + timedelta(days=rng.uniform(0.5, 8))
        missing = "[]" if rng.random() > 0.07 else '["病史", "治疗经过"]'
        code = rng.choice(CODES)
        rows.append(
            (
                f"t{i:06d}",
                f"s{i:06d}",
                f"ZZ-2026-{i:06d}",
                direction,
                rng.random() < 0.03,
                rng.random() < 0.01,
                rng.random() < 0.02,
                f"p{rng.randrange(n // 2):06d}",
                "张*英",
                rng.choice(["male", "female"]),
                rng.randint(1, 95),
                rng.choice(["职工医保", "居民医保", "自费"]),
                code,
                f"诊断 {code}",
                rng.choice(REASONS),
                sender,
                rng.choice(DEPARTMENTS),
                "医生",
                receiver,
                rng.choice(DEPARTMENTS),
                None,
                out,
                status,
                business,
                reason,
                created,
                t["received"],
                t["accepted"],
                t["rejected"],
                t["arrived"],
                t["admitted"],
                t["discharged"],
                t["feedback"],
                t["followed"],
                1 if t["followed"] else 0,
                t["closed"],
                "Composition/x" if t["feedback"] else None,
                None,
                missing,
                created,
                None,
                None,
            )
        )
    return rows


def load(schema: Schema, rows: list[tuple[object, ...]]) -> None:
    with schema.connect() as conn:
        with conn.cursor().copy(f"COPY referral_ledger ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        conn.execute("ANALYZE referral_ledger")
        conn.commit()


def child_export(url: str, start: str, end: str, target: str) -> None:
    """In a child process: export the ledger [start, end] to XLSX; print rows and peak RSS."""
    from adapter.referral import report

    consortium = load_consortium(DEFAULT_CONSORTIUM)
    factory = session_factory(make_engine(url))
    first = datetime.fromisoformat(start).replace(tzinfo=ZONE)
    last = datetime.fromisoformat(end).replace(tzinfo=ZONE)
    began = time.perf_counter()
    with factory() as session:
        count = report.export(
            consortium,
            report.rows(session, report.Filters(start=first, end=last)),
            "xlsx",
            Path(target),
        )
    took = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{count} {took:.2f} {peak:.1f} {os.path.getsize(target) / 1e6:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--referrals", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg", default=os.environ.get("ADAPTER_TEST_DATABASE_URL", DEFAULT_PG))
    parser.add_argument("--child-export", nargs=4, metavar=("URL", "FROM", "TO", "FILE"))
    args = parser.parse_args()
    if args.child_export:
        child_export(*args.child_export)
        return
    consortium = load_consortium(DEFAULT_CONSORTIUM)
    with scratch_schema(args.pg, "bench_ledger") as schema:
        engine = make_engine(schema.url)
        migrate(engine)
        rows = generate(random.Random(12), args.referrals)
        began = time.perf_counter()
        load(schema, rows)
        print(
            f"load      {len(rows)} referrals of 2026, 1 county hospital + 15 townships: "
            f"{time.perf_counter() - began:.1f} s"
        )
        factory = session_factory(engine)
        start, end = analysis.quarter(2026, 3, ZONE)
        times, result = [], {}
        for _ in range(args.repeat):
            began = time.perf_counter()
            with factory() as session:
                result = analysis.analyse(session, consortium, start, end)
            times.append(time.perf_counter() - began)
        floors = []
        select = (
            f"SELECT {', '.join(analysis.COLUMNS)} FROM referral_ledger "
            "WHERE created_at >= %s AND created_at < %s"
        )
        for _ in range(args.repeat):
            began = time.perf_counter()
            with schema.connect() as conn:
                quarter_rows = conn.execute(select, (start, end)).fetchall()
                conn.execute(f"{select} ", (start - (end - start), start)).fetchall()
            floors.append(time.perf_counter() - began)
        p50, floor = statistics.median(times), statistics.median(floors)
        print(
            f"analysis  Q3 2026, {result['tasks']} rows (+ the quarter before for the trend): "
            f"p50 {p50 * 1000:.0f} ms, max {max(times) * 1000:.0f} ms (goal < 2000 ms)"
        )
        print(
            f"floor     the same two SELECTs by hand (psycopg fetchall, {len(quarter_rows)} rows): "
            f"p50 {floor * 1000:.0f} ms; ratio {p50 / floor:.1f}x"
        )
        print(
            f"          down ratio {result['down_ratio']}, acceptance {result['acceptance_rate']}, "
            f"median to accept {result['median_minutes_to_accept']} min"
        )
        engine.dispose()
        for label, first, last in (
            ("year", "2026-01-01", "2027-01-01"),
            ("month", "2026-06-01", "2026-07-01"),
        ):
            target = f"/tmp/bench_ledger_{os.getpid()}_{label}.xlsx"
            out = subprocess.run(
                [sys.executable, __file__, "--child-export", schema.url, first, last, target],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            os.unlink(target)
            count, took, peak, size = out[-4:]
            print(
                f"export    {label}: {count} rows to XLSX in {took} s, {size} MB, "
                f"child peak RSS {peak} MB"
            )
    print(f"load average {os.getloadavg()[0]:.1f} (2 cores, shared)")


if __name__ == "__main__":
    main()
