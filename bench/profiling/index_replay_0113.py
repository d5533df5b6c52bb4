"""Decision 0113: the index values of a bulk round's resources derived again, by
``integrate``'s functions and by this tree's, alternated in one process (process CPU; no
database: the figure is the derivation's alone, and the load moves it least).

    .venv/bin/python bench/profiling/index_replay_0113.py [PASSES] [COPIES] [unique] [REF]

One bulk round of the bench's ORU input (``ingest_many``, batches of 100) is stored after a
warm-up, every resource the store indexes kept as it was given to ``index_values``. Then,
per pass and variant: the memo emptied, the first half of the round's resources derived (as
the batch's earlier messages leave the memo), and the second half timed: ``index_values``,
``_index_tuples``, ``_named_by_key`` and ``patient_key``, as ``save_resources`` calls them.
Checks that both variants give the same rows, patient keys and values first.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd() / "bench" / "profiling"))
sys.path.insert(0, str(Path.cwd()))
from ab_cpu_0113 import _base_module
from bench_delivery import Patients
from bench_ingest import bulk_ingest, load_fixtures, make_input, routed_settings

import adapter.fhir.index_values as tree_values
import adapter.store.resources as tree_store
from adapter.consortium import load_consortium
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate, session_factory


def _captured(copies: int, unique: bool) -> tuple[int, list[dict[str, Any]]]:
    """The messages of one bulk round and the resources ``save_resources`` indexed."""
    kept: list[dict[str, Any]] = []
    derive = tree_store.index_values

    def keeping(resource: dict[str, Any], zone: Any) -> Any:
        kept.append(copy.deepcopy(resource))
        return derive(resource, zone)

    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        engine = make_engine(f"sqlite:///{tmp}/replay.db")
        migrate(engine)
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        bulk = bulk_ingest(make_pipeline(settings, consortium, session_factory(engine)), 100)
        patients = Patients(spread_births=True) if unique else None
        bulk(make_input(fixtures, 2, "warm.", patients))
        tree_store.index_values = keeping  # type: ignore[assignment]
        try:
            msgs = make_input(fixtures, copies, "r.", patients)
            bulk(msgs)
        finally:
            tree_store.index_values = derive
        engine.dispose()
    return len(msgs), kept


def main() -> None:
    logging.disable(logging.WARNING)
    passes = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    unique = sys.argv[3:4] == ["unique"]
    ref = sys.argv[4] if len(sys.argv) > 4 else "integrate"
    n, resources = _captured(copies, unique)
    base_values = _base_module("adapter.fhir.index_values", ref)
    base_store = _base_module("adapter.store.resources", ref)
    variants = {"base": (base_values, base_store), "branch": (tree_values, tree_store)}
    half = len(resources) // 2

    def chain(values: Any, store: Any, part: list[dict[str, Any]]) -> list[Any]:
        out = []
        for r in part:
            found = values.index_values(r)
            rows = store._named_by_key(store._index_tuples(r["resourceType"], 5, found), {})
            out.append((rows, values.patient_key(r), [v.param for v in found]))
        return out

    def fresh(values: Any) -> None:
        memo = getattr(values, "_MEMO", None)
        if memo is not None:
            memo.clear()

    answers = {}
    for who, (values, store) in variants.items():
        fresh(values)
        answers[who] = chain(values, store, resources) + chain(values, store, resources)
    same = answers["base"] == answers["branch"]
    times: dict[str, list[float]] = {"base": [], "branch": []}
    for p in range(passes):
        for who in ("base", "branch") if p % 2 == 0 else ("branch", "base"):
            values, store = variants[who]
            fresh(values)
            chain(values, store, resources[:half])
            start = time.process_time()
            chain(values, store, resources[half:])
            times[who].append(1000 * (time.process_time() - start) / (n - n // 2))
    print(f"{len(resources)} resources of {n} messages; same rows, keys and values: {same}")
    for who, ts in times.items():
        s = sorted(ts)
        print(f"{who:6s} ms/msg: min {s[0]:.3f} median {s[len(s) // 2]:.3f}")
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
