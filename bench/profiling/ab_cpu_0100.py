"""Decision 0100's A/B in one process, alternated round by round (the order swapped each
round, process CPU time): this tree's code ("branch") against the base's patched back in
("base": ``Hl7v2Format.release`` a no-op, ``decode_undeclared`` executed from the base
tree's source, so a message's parsed view is freed by the cyclic collector as before; and
SQLite's executemanys and savepoints through SQLAlchemy's execution, as before).
The host's load hits both variants alike.

    ADAPTER_AB_BASE=/work/wt/bulkcpu-base .venv/bin/python bench/profiling/ab_cpu_0100.py \\
        same [COPIES]               # bulk ingest both ways into two stores: every stored
                                    # row of every table, every result and issue compared
    ... bulk [ROUNDS] [COPIES]      # ingest_many CPU, batches of 100, SQLite (temp file)
    ... garbage                     # cyclic garbage per message, both ways

``ADAPTER_AB_URL`` (a PostgreSQL URL): the stores go there, a schema of their own each
(dropped at the end), instead of SQLite files.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_ingest import (
    bulk_ingest,
    load_fixtures,
    make_input,
    postgres_engine,
    routed_settings,
)
from sqlalchemy import Engine, select

import adapter.hl7v2.parser as parser
import adapter.store.fast_insert as fast_insert
from adapter.consortium import load_consortium
from adapter.heap import settled
from adapter.mapping.formats.base import SourceFormat
from adapter.mapping.formats.hl7v2 import Hl7v2Format
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate, session_factory

BASE = os.environ.get("ADAPTER_AB_BASE", "/work/wt/bulkcpu-base")
URL = os.environ.get("ADAPTER_AB_URL")
base_charsets = types.ModuleType("base_charsets")
sys.modules["base_charsets"] = base_charsets
exec(
    compile(Path(f"{BASE}/adapter/hl7v2/charsets.py").read_text(), "base_charsets", "exec"),
    base_charsets.__dict__,
)

saved = {
    "release": Hl7v2Format.release,
    "decode": parser.decode_undeclared,
    "observed": fast_insert._observed,
}


def use(which: str) -> None:
    if which == "base":
        Hl7v2Format.release = SourceFormat.release  # type: ignore[method-assign]
        parser.decode_undeclared = base_charsets.decode_undeclared
        fast_insert._observed = lambda connection: True  # through SQLAlchemy, as before
    else:
        fast_insert._observed = saved["observed"]
        Hl7v2Format.release = saved["release"]  # type: ignore[method-assign]
        parser.decode_undeclared = saved["decode"]


logging.disable(logging.WARNING)


@contextmanager
def store(tmp: Path, name: str) -> Iterator[Engine]:
    """An empty migrated store: a SQLite file, or a schema of its own on PostgreSQL."""
    if URL is None:
        engine = make_engine(f"sqlite:///{tmp / name}.db")
        migrate(engine)
        yield engine
        engine.dispose()
        return
    made = postgres_engine(URL)
    if isinstance(made, str):
        raise SystemExit(f"PostgreSQL {made}")
    engine, drop = made
    try:
        migrate(engine)
        yield engine
    finally:
        drop()


def pipeline_for(settings: Any, engine: Engine) -> Any:
    return make_pipeline(settings, load_consortium(settings.config), session_factory(engine))


# columns whose values differ between two runs whatever the code (new uuids, clocks)
_RUN_DEPENDENT = {
    "id", "message_id", "received_at", "processed_at", "last_updated", "created_at",
    "updated_at", "at", "recorded_at", "next_attempt_at", "prev_hash", "hash", "body",
    "raw", "sha256", "content_hash", "recorded", "correlation_id", "request_id",
}  # fmt: skip


# a random (version 4) uuid: a message's id, and what is named after it (its Provenance,
# the Binary of its bytes); the resources' own ids are version 5 (adapter/mapping/ids.py)
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _r(value: Any) -> str:
    return _UUID4.sub("<uuid4>", repr(value))


def _clock(column: Any) -> bool:
    """A time column (the run's clock: received, started, recorded ...)."""
    from datetime import datetime

    from adapter.store.types import UTCDateTime

    if isinstance(column.type, UTCDateTime):
        return True
    try:
        return column.type.python_type is datetime
    except NotImplementedError:
        return False


def table_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, without the columns a run makes up (kept: counts)."""
    from adapter.store.models import Base

    meta = Base.metadata  # the store's own types (a reflected table reads them as text)
    out: dict[str, list[tuple[Any, ...]]] = {}
    from sqlalchemy import inspect

    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        for name, table in sorted(meta.tables.items()):
            if name not in present:  # a table of the other database (search_terms)
                continue
            cols = [c for c in table.c if c.name not in _RUN_DEPENDENT and not _clock(c)]
            rows = conn.execute(select(*cols)).all() if cols else []
            count = conn.execute(select(table.c[table.c.keys()[0]])).all()
            stored = sorted((tuple(map(_r, r)) for r in rows), key=repr)
            out[name] = [*stored, ("rows", len(count))]
    return out


def same() -> None:
    """The same input ingested by each variant into a store of its own: every table's rows
    (but for run-made values: ids, times, bodies' stamps), results and issues compared."""
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        fixtures = load_fixtures(load_consortium(settings.config))
        msgs = make_input(fixtures, copies, "same.", None)
        seen: dict[str, Any] = {}
        for who in ("base", "branch"):
            use(who)
            with store(Path(tmp), who) as engine:
                pipeline = pipeline_for(settings, engine)
                from adapter.pipeline.receipt import Receipt

                items = [(raw, Receipt(source, "cli")) for source, raw in msgs]
                results = [
                    (r.status, r.resources, [(i["severity"], i["code"], i["diagnostics"],
                     i.get("location"), i.get("expression")) for i in r.as_dict()["issues"]])
                    for r in pipeline.ingest_many(items, batch=100)
                ]  # fmt: skip
                bodies = _bodies(engine)
                seen[who] = (results, table_rows(engine), bodies)
        a, b = seen["base"], seen["branch"]
        assert a[0] == b[0], "results or issues differ"
        assert a[1].keys() == b[1].keys()
        for name in a[1]:
            if a[1][name] != b[1][name]:
                diff = [(x, y) for x, y in zip(a[1][name], b[1][name], strict=False) if x != y]
                raise SystemExit(f"table {name} differs: {diff[:2]}")
        if a[2] != b[2]:
            diff = [(x, y) for x, y in zip(a[2], b[2], strict=False) if x != y]
            raise SystemExit(f"resource bodies differ: {diff[:1]}")
        rows = sum(len(v) for v in a[1].values())
        print(
            f"same results and issues for {len(msgs)} messages; same rows in "
            f"{len(a[1])} tables ({rows} rows); same {len(a[2])} resource bodies"
        )


def _bodies(engine: Engine) -> list[tuple[str, str, Any]]:
    """Every stored resource's body without its stamps (meta.lastUpdated differs per run)."""
    from adapter.store.models import Resource

    with engine.connect() as conn:
        found = conn.execute(select(Resource.resource_type, Resource.id, Resource.body)).all()
    out = []
    for rtype, rid, body in found:
        meta = dict(body.get("meta") or {})
        meta.pop("lastUpdated", None)
        body = {**body, "meta": meta}
        if rtype == "Provenance":
            body.pop("recorded", None)  # the run's clock
        out.append((rtype, _r(rid), _r(body)))
    return sorted(out)


def garbage() -> None:
    with tempfile.TemporaryDirectory() as tmp, store(Path(tmp), "g") as engine:
        settings = routed_settings(Path(tmp))
        fixtures = load_fixtures(load_consortium(settings.config))
        pipeline = pipeline_for(settings, engine)
        bulk = bulk_ingest(pipeline, 100)
        bulk(make_input(fixtures, 2, "warm.", None))
        for who in ("base", "branch", "base", "branch"):
            use(who)
            msgs = make_input(fixtures, 2, f"g{who}{time.time()}.", None)
            gc.collect()
            gc.disable()
            try:
                bulk(msgs)  # settled() sets the thresholds; disabled stays disabled
                found = gc.collect()
            finally:
                gc.enable()
            print(f"{who:6s} cyclic garbage per message: {found / len(msgs):.1f} objects")


def bulk_ab() -> None:
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    copies = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    with tempfile.TemporaryDirectory() as tmp, store(Path(tmp), "ab") as engine:
        settings = routed_settings(Path(tmp))
        fixtures = load_fixtures(load_consortium(settings.config))
        pipeline = pipeline_for(settings, engine)
        bulk: Callable[[list[tuple[str, bytes]]], int] = bulk_ingest(pipeline, 100)
        use("base")
        bulk(make_input(fixtures, 2, "warmA.", None))
        use("branch")
        bulk(make_input(fixtures, 2, "warmB.", None))
        times: dict[str, list[float]] = {"base": [], "branch": []}
        collector: dict[str, list[float]] = {"base": [], "branch": []}
        in_gc = [0.0, 0.0]  # the collector's CPU so far, its start

        def timed_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                in_gc[1] = time.process_time()
            else:
                in_gc[0] += time.process_time() - in_gc[1]

        gc.callbacks.append(timed_gc)
        with settled():
            for r in range(rounds):
                order = ("base", "branch") if r % 2 == 0 else ("branch", "base")
                for who in order:
                    msgs = make_input(fixtures, copies, f"r{r}{who}.", None)
                    use(who)
                    t0, g0 = time.process_time(), in_gc[0]
                    bulk(msgs)
                    t = time.process_time() - t0
                    times[who].append(1000 * t / len(msgs))
                    collector[who].append(1000 * (in_gc[0] - g0) / len(msgs))
        gc.callbacks.remove(timed_gc)
        for who, ts in collector.items():
            print(f"{who:6s} of which the cyclic collector, ms/msg: mean {sum(ts) / len(ts):.3f}")
        for who, ts in times.items():
            ts2 = sorted(ts)
            every = " ".join(f"{t:.2f}" for t in ts)
            print(
                f"{who:6s} bulk ingest (ingest_many, batches of 100) process CPU ms/msg: "
                f"median {ts2[len(ts2) // 2]:.2f}  mean {sum(ts) / len(ts):.2f}  all {every}"
            )
        wins = sum(b < a for a, b in zip(times["base"], times["branch"], strict=True))
        print(f"rounds where branch < base: {wins}/{rounds}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "bulk"
    {"same": same, "garbage": garbage, "bulk": bulk_ab}[mode]()
