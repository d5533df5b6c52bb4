"""Decision 0135: does a message cost more as the tables grow? Exact, load-independent counts.

    # 1. fill a store with unique messages natively (no valgrind), copied at each M
    .venv/bin/python bench/profiling/icount_growth_0135.py fill 2000,10000,20000 /tmp/g
    # 2. instructions: the same N new messages into an empty store and into the filled one,
    #    only the measured bulk call collected (no 0 run needed, unlike icount_0120.py)
    PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no \\
        --toggle-collect=functools_reduce --callgrind-out-file=/tmp/g/cg.M \\
        .venv/bin/python bench/profiling/icount_growth_0135.py run COPIES [/tmp/g/M.db]
    # 3. statements and SQLite pages of the same run (natively: the counters are exact)
    .venv/bin/python bench/profiling/icount_growth_0135.py count COPIES [/tmp/g/M.db]
    # 4. PostgreSQL: statements and buffers a message (auto_explain) at each M, one schema
    BENCH_PG_PREFIX=bench_me .venv/bin/python bench/profiling/icount_growth_0135.py \\
        pg COPIES 0,20000 [URL]
    # 5. one process across slices, as bench_ingest --slices runs: per slice statements,
    #    pages, the collector's passes and objects, the per-process caches' sizes, CPU
    .venv/bin/python bench/profiling/icount_growth_0135.py slices 10 2000

Run from a worktree's root (its ``adapter`` is imported). Every message is a new patient
(``bench_delivery.Patients``, births spread), as ``bench_ingest --unique-patients
--spread-births``; the filled store's patient serial is kept beside it (``M.db.json``) so
the measured messages are new patients there too. A run: copy of the store (or a new one),
the pipeline built, a warm-up of 2 copies (30 fixtures a copy), then COPIES copies with
``ingest_many`` (batches of 100) inside ``functools.reduce``: valgrind instruments from
just before it (``callgrind_control -i on``) and collects only inside it, so the total is
the bulk call's alone. Instructions a message: ``I / (30 * COPIES)``; growth at M: that
figure on the M store minus it on the empty store.
Set ``PYTHONHASHSEED=0`` for every run.

Pages: SQLite's own per-connection counters (``sqlite3_db_status``: page cache hits and
misses, the misses read from the file) through ctypes on every connection the engine opens,
and ``sqlite3_trace_v2``-style statement counts (``set_trace_callback``: every statement
run, each row of an executemany included).
"""

from __future__ import annotations

import _sqlite3
import ctypes
import functools
import gc
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_delivery import Patients
from bench_ingest import bulk_ingest, load_fixtures, make_input, routed_settings
from sqlalchemy import event, text

from adapter.consortium import load_consortium
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate, session_factory

# sqlite3.h: SQLITE_DBSTATUS_CACHE_HIT / _MISS / _WRITE
_HIT, _MISS, _WRITE = 7, 8, 9
_lib = ctypes.CDLL(_sqlite3.__file__)  # its libsqlite3's symbols, the one Python uses
_lib.sqlite3_db_status.argtypes = [
    ctypes.c_void_p,
    ctypes.c_int,
    ctypes.POINTER(ctypes.c_int),
    ctypes.POINTER(ctypes.c_int),
    ctypes.c_int,
]
_lib.sqlite3_db_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_lib.sqlite3_db_filename.restype = ctypes.c_char_p


def _handle(conn: sqlite3.Connection) -> int:
    """The ``sqlite3 *`` of a Python connection: the first field after PyObject_HEAD."""
    return ctypes.c_void_p.from_address(id(conn) + object.__basicsize__).value or 0


class Counters:
    """Statements run and page cache hits / misses / writes of every connection opened."""

    def __init__(self, engine: Any, path: str) -> None:
        self.statements = 0
        self.connections: list[sqlite3.Connection] = []
        self.closed = [0, 0, 0]  # pages of connections closed since
        # ICOUNT_BY_STATEMENT=1: statement shape -> (runs, pages fetched, pages missed)
        self.by_statement: dict[str, tuple[int, int, int]] | None = (
            {} if os.environ.get("ICOUNT_BY_STATEMENT") else None
        )
        self._last: dict[int, tuple[list[int], str | None]] = {}

        def on_connect(dbapi: sqlite3.Connection, _record: Any) -> None:
            name = _lib.sqlite3_db_filename(_handle(dbapi), b"main")
            if name is None or os.path.realpath(name.decode()) != os.path.realpath(path):
                raise SystemExit("icount_growth: the sqlite3 handle was not found")
            if os.environ.get("ICOUNT_CACHE_KIB"):  # an experiment: a larger page cache
                dbapi.execute(f"PRAGMA cache_size = -{int(os.environ['ICOUNT_CACHE_KIB'])}")
            handle = _handle(dbapi)
            dbapi.set_trace_callback(lambda sql: self._statement(sql, handle))
            self.connections.append(dbapi)

        def on_close(dbapi: sqlite3.Connection, _record: Any) -> None:
            if dbapi not in self.connections:  # opened before the listener
                return
            for i, v in enumerate(self._pages(dbapi)):
                self.closed[i] += v
            self.connections.remove(dbapi)

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "close", on_close)  # the pool's, across dispose()

    def _statement(self, sql: str, handle: int) -> None:
        self.statements += 1
        if self.by_statement is None:
            return
        # the pages read since this connection's previous statement started were its
        pages = self._handle_pages(handle)
        last, key = self._last.get(handle, (pages, None))
        if key is not None:
            runs, fetched, missed = self.by_statement.get(key, (0, 0, 0))
            self.by_statement[key] = (
                runs + 1,
                fetched + pages[0] - last[0],
                missed + pages[1] - last[1],
            )
        self._last[handle] = (pages, _shape(sql))

    @staticmethod
    def _handle_pages(handle: int) -> list[int]:
        out = []
        for op in (_HIT, _MISS, _WRITE):
            cur, high = ctypes.c_int(), ctypes.c_int()
            _lib.sqlite3_db_status(handle, op, ctypes.byref(cur), ctypes.byref(high), 0)
            out.append(cur.value)
        return out

    def _pages(self, conn: sqlite3.Connection) -> list[int]:
        return self._handle_pages(_handle(conn))

    def snapshot(self) -> dict[str, int]:
        pages = list(self.closed)
        for conn in self.connections:
            for i, v in enumerate(self._pages(conn)):
                pages[i] += v
        return {
            "statements": self.statements,
            "page_hits": pages[0],
            "page_misses": pages[1],
            "page_writes": pages[2],
        }


_LITERAL = re.compile(r"X'[0-9A-Fa-f]*'|'(?:[^']|'')*'|\b-?\d+(?:\.\d+)?\b")
_LIST = re.compile(r"\((?:\?\s*,\s*)+\?\)")


def _shape(sql: str) -> str:
    """A statement without its values (the trace gives the expanded SQL)."""
    return " ".join(_LIST.sub("(?...)", _LITERAL.sub("?", sql)).split())[:140]


def _serial(db: Path) -> int:
    side = Path(f"{db}.json")
    return int(json.loads(side.read_text())["serial"]) if side.exists() else 0


def _setup(db: Path) -> tuple[Any, Any, Any, list[Any]]:
    settings = routed_settings(db.parent)
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    consortium = load_consortium(settings.config)
    fixtures = load_fixtures(consortium)
    pipeline = make_pipeline(settings, consortium, session_factory(engine))
    return engine, pipeline, bulk_ingest(pipeline, 100), fixtures


def fill(sizes: list[int], folder: Path) -> None:
    """One growing store, copied to ``folder/M.db`` when it holds about M messages."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "fill.db"
        engine, _pipeline, bulk, fixtures = _setup(db)
        patients = Patients(spread_births=True)
        bulk(make_input(fixtures, 2, "warm.", patients))
        copies, step = 2, 10  # copies a call: bulk runs of 300 messages
        for target in sorted(sizes):
            while (copies + step) * len(fixtures) <= target:
                bulk(make_input(fixtures, step, f"fill{copies}.", patients))
                copies += step
            engine.dispose()  # WAL checkpointed into the file on the last close
            out = folder / f"{target}.db"
            shutil.copyfile(db, out)
            stored = copies * len(fixtures)
            Path(f"{out}.json").write_text(
                json.dumps({"serial": patients.serial, "messages": stored})
            )
            print(f"{out}: {stored} messages, patient serial {patients.serial}", flush=True)
        engine.dispose()


def _instrument() -> None:
    """Valgrind's instrumentation on from here (``--instr-atstart=no``: the start-up, the
    copy of the store and the warm-up ran uninstrumented, several times faster)."""
    command = ["callgrind_control", "-i", "on", str(os.getpid())]
    for _ in range(20):  # the embedded gdbserver answers once the process has run a while
        if "not detected" not in subprocess.run(command, capture_output=True, text=True).stderr:
            return
        time.sleep(1)
    raise SystemExit("icount_growth: callgrind_control found no callgrind process")


def run(copies: int, store: Path | None, count: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "run.db"
        if store is not None:
            shutil.copyfile(store, db)
        engine, _pipeline, bulk, fixtures = _setup(db)
        counters = Counters(engine, str(db)) if count else None
        if counters is not None:  # connections opened before the listener: start again
            engine.dispose()
        patients = Patients(spread_births=True)
        patients.serial = _serial(store) if store is not None else 0
        bulk(make_input(fixtures, 2, "warm2.", patients))
        messages = make_input(fixtures, copies, "run.", patients)
        before = counters.snapshot() if counters else {}
        if counters is not None and counters.by_statement is not None:
            counters.by_statement.clear()  # the measured messages' statements only
        if not count:
            _instrument()
        # only what runs inside functools.reduce is collected (--toggle-collect)
        functools.reduce(lambda _, batch: bulk(batch), [messages], 0)
        if counters is not None:
            after = counters.snapshot()
            n = len(messages)
            for key, (runs, fetched, missed) in sorted(
                (counters.by_statement or {}).items(), key=lambda kv: -kv[1][1]
            )[:25]:
                print(
                    f"{runs / n:8.2f} runs {fetched / n:9.1f} pages {missed / n:7.1f} missed  {key}"
                )
            print(
                json.dumps(
                    {
                        "store": str(store or "empty"),
                        "messages": n,
                        **{k: round((after[k] - before[k]) / n, 2) for k in after},
                    }
                )
            )
        engine.dispose()


def _cache_sizes() -> dict[str, int]:
    """Entries of the per-process caches the bulk keeps (adapter/store/interning.py and
    the module-level plan caches): what could grow within a process."""
    from adapter.store import interning

    sizes: dict[str, int] = {}
    for obj in interning._all:
        sizes[obj.table.name] = sum(len(c) for c in obj._cache.values())
    return sizes


def _grown(kinds: Counter[str]) -> dict[str, int]:
    """The object types whose count grew most since the previous call (``kinds`` updated)."""
    now = Counter(type(o).__name__ for o in gc.get_objects())
    grown = {k: now[k] - kinds.get(k, 0) for k in now}
    kinds.clear()
    kinds.update(now)
    return dict(sorted(grown.items(), key=lambda kv: -kv[1])[:5])


def slices(count: int, size: int) -> None:
    """One process, one growing store: what each slice costs in exact counts."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "slices.db"
        engine, _pipeline, bulk, fixtures = _setup(db)
        counters = Counters(engine, str(db))
        engine.dispose()
        patients = Patients(spread_births=True)
        bulk(make_input(fixtures, 2, "warm.", patients))
        passes = [0, 0, 0]
        collected = [0]

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "stop":
                passes[info["generation"]] += 1
                collected[0] += info["collected"]

        gc.callbacks.append(on_gc)
        copies = max(1, size // len(fixtures))
        kinds: Counter[str] = Counter()
        _grown(kinds)
        for n in range(count):
            messages = make_input(fixtures, copies, f"z{n}.", patients)
            before, p0, c0 = counters.snapshot(), list(passes), collected[0]
            cpu = time.process_time()
            bulk(messages)
            cpu_ms = (time.process_time() - cpu) * 1000 / len(messages)
            after = counters.snapshot()
            m = len(messages)
            print(
                json.dumps(
                    {
                        "slice": n + 1,
                        "stored_before": (2 + n * copies) * len(fixtures),
                        **{k: round((after[k] - before[k]) / m, 2) for k in after},
                        "gc_passes": [a - b for a, b in zip(passes, p0, strict=True)],
                        "gc_collected": collected[0] - c0,
                        "heap_objects": len(gc.get_objects()),
                        "heap_growth": _grown(kinds),
                        "caches": _cache_sizes(),
                        "cpu_ms": round(cpu_ms, 2),
                        "utc": time.strftime("%H:%M:%S", time.gmtime()),
                        "load": round(os.getloadavg()[0], 1),
                    }
                ),
                flush=True,
            )
        engine.dispose()


class PgCounters:
    """PostgreSQL: statements sent (each row of an executemany counted) and the buffers
    every statement touched, from ``auto_explain`` (loaded per session, no server change;
    its plans sent to this client as NOTICEs): the top plan node's ``Buffers:`` line of
    each statement, nested ones (foreign-key checks) logged and counted on their own."""

    def __init__(self, engine: Any) -> None:
        self.on = False
        self.statements = 0
        self.plans = 0
        self.buffers = {"hit": 0, "read": 0, "dirtied": 0, "written": 0}

        def on_connect(dbapi: Any, _record: Any) -> None:
            if not self.on:
                return
            with dbapi.cursor() as cur:
                cur.execute("LOAD 'auto_explain'")
                for name, value in (
                    ("log_min_duration", "0"),
                    ("log_analyze", "on"),
                    ("log_buffers", "on"),
                    ("log_timing", "off"),
                    ("log_nested_statements", "on"),
                    ("log_level", "notice"),
                ):
                    cur.execute(f"SET auto_explain.{name} = {value}")
            dbapi.commit()
            dbapi.add_notice_handler(self._notice)

        def before(_conn: Any, _cur: Any, _sql: str, params: Any, _ctx: Any, many: bool) -> None:
            if self.on:
                self.statements += len(params) if many else 1

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "before_cursor_execute", before)

    def _notice(self, diag: Any) -> None:
        text = diag.message_primary or ""
        if "Buffers:" not in text:
            if text.startswith("duration:"):
                self.plans += 1
            return
        self.plans += 1
        line = text[text.index("Buffers:") :].split("\n", 1)[0]
        for kind in self.buffers:
            for part in line.split(","):
                words = part.split()
                for word in words:
                    if word.startswith(kind + "="):
                        self.buffers[kind] += int(word.split("=")[1])

    def snapshot(self) -> dict[str, int]:
        return {"statements": self.statements, "plans": self.plans, **self.buffers}


def _statio(engine: Any) -> dict[str, int]:
    """Blocks of the schema's tables and indexes (toast included) found in shared buffers
    and read into them, every statement counted (COPY too, which auto_explain does not
    see): ``pg_statio_user_tables`` of the current schema, after the backends' statistics
    are flushed (at most once a second) and a fresh snapshot taken."""
    time.sleep(1.5)
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        hit, read = conn.execute(
            text(
                "SELECT sum(coalesce(heap_blks_hit, 0) + coalesce(idx_blks_hit, 0) "
                "+ coalesce(toast_blks_hit, 0) + coalesce(tidx_blks_hit, 0)), "
                "sum(coalesce(heap_blks_read, 0) + coalesce(idx_blks_read, 0) "
                "+ coalesce(toast_blks_read, 0) + coalesce(tidx_blks_read, 0)) "
                "FROM pg_statio_user_tables WHERE schemaname = current_schema()"
            )
        ).one()
    return {"statio_hit": int(hit or 0), "statio_read": int(read or 0)}


def pg(copies: int, sizes: list[int], url: str) -> None:
    """PostgreSQL: statements and buffers a message of COPIES copies into a store holding
    each of ``sizes`` messages (filled without auto_explain, ANALYZEd as bench_ingest's
    slices do), in one process and one schema (BENCH_PG_PREFIX names it)."""
    from bench_ingest import postgres_engine

    from bench.pg_schema import maintain_own_schema

    made = postgres_engine(url)
    if isinstance(made, str):
        raise SystemExit(made)
    engine, drop = made
    folder = tempfile.TemporaryDirectory(prefix="icount_growth_")
    try:
        settings = routed_settings(Path(folder.name))
        migrate(engine)
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))
        bulk = bulk_ingest(pipeline, 100)
        counters = PgCounters(engine)
        patients = Patients(spread_births=True)
        # ICOUNT_FLOOR_FILL=N: past N stored messages, fill with bench_ingest's floor (its
        # rows in the same tables, about 6 times faster; no patient-index rows)
        floor_from = int(os.environ.get("ICOUNT_FLOOR_FILL", "-1"))
        floor = None
        if floor_from >= 0:
            from bench_ingest import Floor, floor_tables

            floor = Floor(engine, consortium, floor_tables(pipeline, consortium))
        bulk(make_input(fixtures, 2, "warm.", patients))
        stored = 2 * len(fixtures)
        for target in sorted(sizes):
            while stored + 10 * len(fixtures) <= target:
                batch = make_input(fixtures, 10, f"fill{stored}.", patients)
                if floor is not None and stored >= floor_from:
                    floor.ingest_many(batch, 100)
                else:
                    bulk(batch)
                stored += 10 * len(fixtures)
            with engine.begin() as conn:
                maintain_own_schema(lambda q, c=conn: c.execute(text(q)))
            engine.dispose()
            counters.on = True
            before = {**counters.snapshot(), **_statio(engine)}
            messages = make_input(fixtures, copies, f"run{stored}.", patients)
            bulk(messages)
            after = {**counters.snapshot(), **_statio(engine)}
            counters.on = False
            engine.dispose()
            n = len(messages)
            print(
                json.dumps(
                    {
                        "stored_before": stored,
                        "messages": n,
                        **{k: round((after[k] - before[k]) / n, 2) for k in after},
                        "utc": time.strftime("%H:%M:%S", time.gmtime()),
                    }
                ),
                flush=True,
            )
            stored += n
        if floor is not None:
            floor.close()
    finally:
        drop()
        folder.cleanup()


def main() -> None:
    logging.disable(logging.WARNING)
    mode = sys.argv[1]
    if mode == "fill":
        fill([int(m) for m in sys.argv[2].split(",")], Path(sys.argv[3]))
    elif mode in ("run", "count"):
        store = Path(sys.argv[3]) if len(sys.argv) > 3 else None
        run(int(sys.argv[2]), store, mode == "count")
    elif mode == "pg":
        url = (
            sys.argv[4]
            if len(sys.argv) > 4
            else "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
        pg(int(sys.argv[2]), [int(m) for m in sys.argv[3].split(",")], url)
    elif mode == "slices":
        slices(int(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
