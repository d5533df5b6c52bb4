"""Every stored row of a bulk ingest, written to a file to compare two trees (decision 0106).

Run in each worktree (its own .venv), then ``cmp`` the two files:

    .venv/bin/python bench/profiling/dump_store.py [COPIES] OUT
    UNIQUE=1 ...                       # a new patient each copy (look-alike blocks, reviews)
    ADAPTER_AB_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test ...   # PostgreSQL

The bench's ORU input ingested twice (``ingest_many``, batches of 100; the second pass
other copies of the same patients) into a fresh store (a SQLite file, or a schema of its own
named ``bench_<DUMP_TAG>…``, dropped at the end); written: every result and issue, every row
of every table and every resource body, with the run-made values (message ids, clocks,
audit hashes, packed bodies; ``meta.lastUpdated``) masked as ``ab_cpu_0100.py same`` masks
them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path.cwd() / "bench" / "profiling"))
os.environ.setdefault("ADAPTER_AB_BASE", str(Path.cwd()))  # read by the import, unused here
import ab_cpu_0100 as ab
import bench_ingest

from adapter.consortium import load_consortium
from adapter.pipeline.receipt import Receipt

T = TypeVar("T")
_TAG = os.environ.get("DUMP_TAG", "dump")
bench_ingest.uuid = types.SimpleNamespace(  # type: ignore[attr-defined]
    uuid4=lambda: types.SimpleNamespace(hex=_TAG + uuid.uuid4().hex)
)


def _results(pipeline: Any, msgs: list[tuple[str, bytes]]) -> list[Any]:
    items = [(raw, Receipt(source, "cli")) for source, raw in msgs]
    return [
        (r.status, r.resources, [(i["severity"], i["code"], i["diagnostics"],
         i.get("location"), i.get("expression")) for i in r.as_dict()["issues"]])
        for r in pipeline.ingest_many(items, batch=100)
    ]  # fmt: skip


def ingested(copies: int, read: Callable[[Any], T]) -> tuple[list[Any], T]:
    """The bench's ORU input ingested twice (COPIES copies each) into a fresh store; each
    message's result, and what ``read`` reads of the store's engine before it is dropped."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = ab.routed_settings(Path(tmp))
        fixtures = ab.load_fixtures(load_consortium(settings.config))
        patients = None
        if os.environ.get("UNIQUE"):
            from bench_delivery import Patients

            patients = Patients(spread_births=False)
        with ab.store(Path(tmp), "dump") as engine:
            pipeline = ab.pipeline_for(settings, engine)
            results = _results(pipeline, ab.make_input(fixtures, copies, "same.", patients))
            results += _results(pipeline, ab.make_input(fixtures, copies, "again.", patients))
            return results, read(engine)


def main() -> None:
    copies = int(sys.argv[1]) if len(sys.argv) > 2 else 2
    out = sys.argv[-1]
    results, (rows, bodies) = ingested(copies, lambda e: (ab.table_rows(e), ab._bodies(e)))
    with open(out, "w") as f:
        f.write(repr(results) + "\n")
        for name, found in rows.items():
            for row in found:
                f.write(f"{name} {ab._r(row)}\n")
        for body in bodies:
            f.write(repr(body) + "\n")
    print(out, sum(len(v) for v in rows.values()), "rows", len(bodies), "bodies")


if __name__ == "__main__":
    main()
