"""SQL statements per message of bulk ingest (``Pipeline.ingest_many``), by kind and table,
on SQLite or PostgreSQL; ``--profile`` prints a cProfile of the same run instead
(decision 0050).

    .venv/bin/python bench/store_statements.py [--unique-patients] [--copies 4] [--pg URL]

Input: the ORU fixtures of bench_ingest.py made unique per copy (with ``--unique-patients``
a new patient per copy, births spread), after a warm-up of one copy; batches of 100.
Counted on the engine's ``before_cursor_execute``: a count that does not depend on load.
On PostgreSQL the driver's calls are counted too (``--trips``: each ``execute``, pipelined
``executemany``, ``COPY`` and ``commit`` of psycopg, i.e. the round trips that wait for the
server, BEGIN riding on the first statement's), and the CPU of this process and of the
server backends serving it (Linux ``/proc``) per message: decision 0101.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_ingest import (
    bulk_ingest,
    load_fixtures,
    make_input,
    postgres_engine,
    routed_settings,
)
from sqlalchemy import event
from sqlalchemy.engine import make_url

from adapter.consortium import load_consortium
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate
from adapter.store import session_factory as make_session_factory

_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+\"?(\w+)", re.IGNORECASE)


def bench_engine(pg: str | None, folder: Path) -> tuple[Any, Any]:
    """The benchmark's engine, and its clean-up (None on SQLite): a fresh PostgreSQL schema
    whose backends carry ``application_name=store_statements`` (so ``_backends`` tells them
    apart) when ``pg`` is a URL, else a SQLite file in ``folder``."""
    if pg:
        url = make_url(pg).update_query_dict({"application_name": "store_statements"})
        made = postgres_engine(url.render_as_string(hide_password=False))
        assert not isinstance(made, str), made
        return made
    return make_engine(f"sqlite:///{folder / 'd.db'}"), None


def kind_of(statement: str) -> str:
    words = statement.lstrip().split(None, 2)
    verb = words[0].upper() if words else "?"
    if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "BEGIN"):
        return verb
    tables = sorted(set(_TABLE.findall(statement)) - {"unnest"})
    return f"{verb} {','.join(tables[:3]) or '-'}"


def _cpu() -> float:
    """This process's CPU seconds (user + system; not the translation workers')."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) of other processes of this machine (Linux /proc)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # ended meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


_DUMPED = (
    "inbound_message", "resource", "resource_version", "search_index", "search_terms",
    "outbox", "identity_record", "identity_key", "identity_history", "identity_review",
    "care_relationship",
)  # fmt: skip
_STAMPS = re.compile(r'"(lastUpdated|recorded|lastModified)":"[^"]*"')  # the run's times


def _dump(engine: Any, path: Path, tables: tuple[str, ...] = _DUMPED) -> None:
    """The rows of ``_DUMPED``, sorted, one JSON line each: datetimes left out, message ids
    replaced by their bytes' sha256, bodies (decoded) without meta.lastUpdated and
    Provenance.recorded (the time of the run)."""
    import datetime as dt
    import json
    import uuid

    from sqlalchemy import MetaData, select, text

    from adapter.store.body_codec import json_bytes

    metadata = MetaData()
    metadata.reflect(engine, only=list(tables))
    lines: list[str] = []
    with engine.connect() as conn:
        ids: dict[str, str] = {}
        for stored, digest in conn.execute(
            text("SELECT encode(id, 'hex'), encode(sha256, 'hex') FROM inbound_message")
        ):
            ids[stored] = digest  # the 16 bytes of a message id column, as hex
            ids[str(uuid.UUID(hex=stored[-32:]))] = digest  # the text, in bodies
        # a message id in a text is a UUID: one pattern, looked up (an alternation of every
        # id took minutes at a thousand messages)
        pattern = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

        def clean(value: Any) -> Any:
            if isinstance(value, memoryview | bytes):
                value = bytes(value)
                if value.hex() in ids:
                    return ids[value.hex()]
                try:
                    value = json_bytes(value).decode()  # a body (zstd or plain JSON)
                except Exception:
                    return ids.get(value.hex(), value.hex())
            if isinstance(value, str):
                value = _STAMPS.sub("", value)
                return pattern.sub(lambda m: ids.get(m.group(0), m.group(0)), value)
            if isinstance(value, list | dict):
                return clean(json.dumps(value, ensure_ascii=False, sort_keys=True))
            return str(value) if not isinstance(value, int | float | bool | None) else value

        def row_text(row: Any) -> str:
            body = row._mapping.get("body")
            if isinstance(body, memoryview | bytes):
                try:
                    return json_bytes(bytes(body)).decode()
                except Exception:
                    return ""
            return str(body)

        for name in tables:
            table = metadata.tables[name]
            for row in conn.execute(select(table)):
                kept = {
                    k: clean(v)
                    for k, v in row._mapping.items()
                    if not isinstance(v, dt.datetime) and k not in ("raw", "run_id")
                }
                body = str(kept.get("body"))
                if '"resourceType":"Provenance"' in body or '"lastModified"' in row_text(row):
                    # of a body with the run's time (Provenance.recorded, Task.lastModified)
                    kept.pop("content_hash", None)
                lines.append(name + " " + json.dumps(kept, ensure_ascii=False, sort_keys=True))
    path.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
    print(f"{len(lines)} rows written to {path}")


@contextmanager
def _counting_trips(trips: Counter[str]) -> Iterator[None]:
    """psycopg's calls that wait for the server, counted by kind while inside (bench only:
    the cursor and connection classes' methods are wrapped, then put back)."""
    import psycopg

    saved = {
        (psycopg.Cursor, "execute"): psycopg.Cursor.execute,
        (psycopg.Cursor, "executemany"): psycopg.Cursor.executemany,
        (psycopg.Cursor, "copy"): psycopg.Cursor.copy,
        (psycopg.Connection, "commit"): psycopg.Connection.commit,
    }

    def wrapped(cls: type, name: str, original: Any) -> Any:
        def call(self: Any, *a: Any, **k: Any) -> Any:
            if name == "commit":
                trips["COMMIT"] += 1
            else:
                words = str(a[0]).split() if a else ["?"]
                trips[f"{name} {kind_of(' '.join(words[:12]))}"] += 1
            return original(self, *a, **k)

        return call

    for (cls, name), original in saved.items():
        setattr(cls, name, wrapped(cls, name, original))
    try:
        yield
    finally:
        for (cls, name), original in saved.items():
            setattr(cls, name, original)


_APP = "store_statements"


def _backends(engine: Any, known: list[int] | None = None) -> list[int]:
    """The pids of the PostgreSQL backends of this run (its application_name), with
    ``known`` ones still alive; [] on SQLite or when the server is not on this machine."""
    if engine.dialect.name != "postgresql":
        return []
    from sqlalchemy import text

    with engine.connect() as conn:
        pids = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"), {"a": _APP}
        ).scalars()
        found = sorted(set(pids) | set(known or []))
    return [p for p in found if Path(f"/proc/{p}/stat").exists()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--unique-patients", action="store_true")
    ap.add_argument("--pg", help="a PostgreSQL URL instead of a temporary SQLite file")
    ap.add_argument("--profile", action="store_true", help="cProfile instead of counting")
    ap.add_argument("--top", type=int, default=45)
    ap.add_argument("--profile-out", help="with --profile: also write the pstats to this file")
    ap.add_argument(
        "--translate-workers",
        type=int,
        default=0,
        help="translate in N worker processes (decision 0054): the profile, the counts and "
        "--plain's instructions are then the main process's store work",
    )
    ap.add_argument(
        "--plain",
        action="store_true",
        help="only ingest (no listener): for an instruction count of the whole process, "
        "run under valgrind with --copies N and --copies 0, difference / messages",
    )
    ap.add_argument(
        "--dump",
        help="write the stored rows to this file, without what differs from run to run "
        "(times, message ids as their sha256): two runs of the same input compare equal",
    )
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        drop = None
        if args.pg:
            # the backends of this run are told apart by their application_name
            url = make_url(args.pg).update_query_dict({"application_name": _APP})
            made = postgres_engine(url.render_as_string(hide_password=False))
            assert not isinstance(made, str), made
            engine, drop = made
        else:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        stack = ExitStack()  # the translation workers, stopped before the engine goes
        try:
            migrate(engine)
            pipeline = make_pipeline(settings, consortium, make_session_factory(engine))
            patients: Any = None
            if args.unique_patients:
                from bench_delivery import Patients

                patients = Patients(spread_births=True)
            bulk = bulk_ingest(pipeline, 100)
            if args.translate_workers:
                stack.enter_context(pipeline.translation_workers(args.translate_workers))
            bulk(make_input(fixtures, 1, "w", patients))  # warm-up
            messages = make_input(fixtures, args.copies, "m", patients)
            if args.plain:
                pool = pipeline.translation_pool
                pids = pool.pids() if pool is not None else []
                backends = _backends(engine)
                cpu, wall, workers = _cpu(), time.perf_counter(), _cpu_of(pids)
                server = _cpu_of(backends)
                bulk(messages)
                cpu, wall = _cpu() - cpu, time.perf_counter() - wall
                workers = _cpu_of(pids) - workers
                server = _cpu_of(_backends(engine, backends)) - server
                n = max(1, len(messages))
                print(
                    f"{len(messages)} messages: this process's CPU {1000 * cpu / n:.2f} ms "
                    f"per message, the translation workers' {1000 * workers / n:.2f} ms, "
                    + (f"the database backends' {1000 * server / n:.2f} ms, " if backends else "")
                    + f"wall {1000 * wall / n:.2f} ms"
                )
                return
            if args.profile:
                # the storing thread's CPU, not the wall: on a loaded host the wall is
                # mostly waiting for a CPU, which cProfile would charge to whatever ran
                profile = cProfile.Profile(time.thread_time)
                profile.runcall(bulk, messages)
                if args.profile_out:
                    profile.dump_stats(args.profile_out)
                stats = pstats.Stats(profile).sort_stats("cumulative")
                stats.print_stats(args.top)
                pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
                return
            counts: Counter[str] = Counter()
            trips: Counter[str] = Counter()
            if engine.dialect.name == "postgresql":
                stack.enter_context(_counting_trips(trips))
            backends = _backends(engine)
            cpu, server = _cpu(), _cpu_of(backends)  # a backend started later: from 0

            def count(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
                counts[kind_of(statement)] += 1

            event.listen(engine, "before_cursor_execute", count)
            bulk(messages)
            event.remove(engine, "before_cursor_execute", count)
            cpu = _cpu() - cpu
            server = _cpu_of(_backends(engine, backends)) - server  # the same or more pids
            n = len(messages)
            print(f"{n} messages, {engine.dialect.name}, unique patients: {args.unique_patients}")
            for kind, value in counts.most_common():
                print(f"  {value / n:7.3f}  {kind}")
            print(f"  {sum(counts.values()) / n:7.3f}  total per message")
            if trips:
                print("driver calls per message (PostgreSQL):")
                for kind, value in trips.most_common():
                    print(f"  {value / n:7.3f}  {kind}")
                print(f"  {sum(trips.values()) / n:7.3f}  round trips per message")
            if args.dump:
                _dump(engine, Path(args.dump))
            print(
                f"CPU per message (with the listeners): this process {1000 * cpu / n:.2f} ms"
                + (f", the database backends {1000 * server / n:.2f} ms" if backends else "")
            )
        finally:
            stack.close()
            if drop:
                drop()
            engine.dispose()


if __name__ == "__main__":
    main()
