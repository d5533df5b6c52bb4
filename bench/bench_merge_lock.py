"""Benchmark: what locking before the merge costs per message (docs/decisions/0009), on
PostgreSQL (default) or SQLite.

    .venv/bin/python bench/bench_merge_lock.py [--rounds 7] [--pg URL | --sqlite]

Input: the ORU fixtures of bench_ingest.py, translated once (the resources each message
makes, with their on_conflict policies), stored under fresh ids per round except the
Patient, which repeats as in a real feed. Each message is one transaction with the
message's resources merged and saved; the two rows take turns message by message:

  unlocked   the order before the fix: read the stored versions (plain SELECT), merge,
             save_resources (which locks the rows only then): the floor, and unsafe
  locked     lock_resources first (placeholder for new merged rows, SELECT ... FOR UPDATE
             with the bodies), merge what it read, save_resources(locked=)

Then the price of correctness under contention, locked only: 8 threads each storing
messages about ONE patient (they queue on its row) against 8 threads about 8 patients.
Medians over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import DEFAULT_PG, batch, load_fixtures, postgres_engine
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adapter.consortium import load_consortium
from adapter.pipeline.merge import merge_stored, reads_stored
from adapter.runtime import make_pipeline
from adapter.settings import Settings
from adapter.store import (
    lock_resources,
    make_engine,
    migrate,
    read_resource,
    save_resources,
)
from adapter.store import session_factory as make_session_factory

ROOT = Path(__file__).resolve().parent.parent
THREADS = 8
Message = tuple[list[dict[str, Any]], dict[Any, dict[str, Any]]]


def translated(factory: sessionmaker[Session]) -> list[Message]:
    settings = Settings(database_url="sqlite://", config=ROOT / "fixtures" / "consortium.yaml")
    consortium = load_consortium(settings.config)
    pipeline = make_pipeline(settings, consortium, factory)
    out: list[Message] = []
    for source, raw in batch(load_fixtures(consortium), 1, "lock"):
        outcome = pipeline.translate(raw, source)
        if not outcome.failed:
            out.append((outcome.resources, outcome.policies))
    return out


def renamed(message: Message, tag: str, patient: str | None = None) -> Message:
    """Fresh ids for everything but the Patient (or the Patient given)."""
    resources, policies = message
    out = []
    for resource in resources:
        copy = dict(resource)
        if resource["resourceType"] == "Patient":
            copy["id"] = patient or resource["id"]
            copy["identifier"] = [*resource.get("identifier", []), {"value": tag}]
        else:
            copy["id"] = f"{resource['id'][:50]}-{tag}"
        out.append(copy)
    return out, policies


def store_unlocked(session: Session, message: Message, now: datetime) -> None:
    resources, policies = message
    read = lambda t, i: read_resource(session, t, i)  # noqa: E731
    merged = [merge_stored(r, read, policies)[0] for r in resources]
    save_resources(session, merged, message_id=None, now=now)


def store_locked(session: Session, message: Message, now: datetime) -> None:
    resources, policies = message
    keys = [(r["resourceType"], r["id"]) for r in resources]
    missing = [k for k, r in zip(keys, resources, strict=True) if reads_stored(r, policies)]
    locked = lock_resources(session, keys, create_missing=missing, now=now)
    merged = [merge_stored(r, locked.body, policies)[0] for r in resources]
    save_resources(session, merged, message_id=None, now=now, locked=locked)


Store = Callable[[Session, Message, datetime], None]


def one(factory: sessionmaker[Session], store: Store, message: Message) -> float:
    start = time.perf_counter()
    with factory.begin() as session:
        store(session, message, datetime.now(UTC))
    return time.perf_counter() - start


def contended(factory: sessionmaker[Session], messages: list[Message], same: bool) -> float:
    """Messages per second with THREADS threads; same=True: all about one patient."""
    per_thread = len(messages) // THREADS
    barrier = threading.Barrier(THREADS + 1)
    tag = uuid.uuid4().hex[:8]

    def work(n: int) -> None:
        mine = [
            renamed(m, f"{tag}-{n}-{i}", patient=f"p-{tag}" if same else f"p-{tag}-{n}")
            for i, m in enumerate(messages[n * per_thread : (n + 1) * per_thread])
        ]
        barrier.wait()
        for message in mine:
            with factory.begin() as session:
                store_locked(session, message, datetime.now(UTC))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return per_thread * THREADS / (time.perf_counter() - start)


def run(engine: Engine, rounds: int, label: str) -> None:
    factory = make_session_factory(engine)
    messages = translated(factory)
    times: dict[str, list[float]] = {"unlocked": [], "locked": []}
    rates: dict[str, list[float]] = {"8 patients": [], "one patient": []}
    for round_no in range(rounds):
        per: dict[str, list[float]] = {"unlocked": [], "locked": []}
        for i, message in enumerate(messages):
            for name, store in (("unlocked", store_unlocked), ("locked", store_locked))[
                :: 1 if i % 2 else -1
            ]:
                per[name].append(one(factory, store, renamed(message, f"r{round_no}{name}{i}")))
        for name in per:
            times[name].append(statistics.mean(per[name]))
        rates["8 patients"].append(contended(factory, messages, same=False))
        rates["one patient"].append(contended(factory, messages, same=True))
    med = statistics.median
    base, locked = med(times["unlocked"]) * 1000, med(times["locked"]) * 1000
    print(f"\n== {label}: {len(messages)} messages per row and round, {rounds} rounds")
    print(f"   unlocked (read, merge, save; the floor) {base:7.2f} ms per message")
    print(f"   locked   (lock, merge, save)             {locked:7.2f} ms per message")
    print(f"   locked / unlocked: {locked / base:.2f}x")
    print(
        f"   {THREADS} threads, 8 patients: {med(rates['8 patients']):6.0f} msg/s;"
        f" one patient: {med(rates['one patient']):6.0f} msg/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    ap.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL URL (default {DEFAULT_PG})")
    ap.add_argument("--sqlite", action="store_true", help="SQLite (a temp file) instead")
    args = ap.parse_args()
    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{tmp}/bench.db")
            migrate(engine)
            try:
                run(engine, args.rounds, "SQLite (WAL, temp file)")
            finally:
                engine.dispose()
        return
    made = postgres_engine(args.pg)
    if isinstance(made, str):
        sys.exit(f"PostgreSQL {made}")
    engine, drop = made
    try:
        migrate(engine)
        run(engine, args.rounds, "PostgreSQL (psycopg 3)")
    finally:
        drop()


if __name__ == "__main__":
    main()
