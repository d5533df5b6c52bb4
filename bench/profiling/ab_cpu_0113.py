"""Decision 0113's A/B in one process, alternated round by round (the order swapped each
round, process CPU time): the store's functions as ``integrate`` has them ("base", their
module text read with ``git show REF:path`` and run as a module of its own) against this
tree's ("branch"). The host's load hits both variants alike.

    .venv/bin/python bench/profiling/ab_cpu_0113.py [ROUNDS] [COPIES] [unique] [REF]
    ADAPTER_AB_URL=postgresql+psycopg://... BENCH_PG_PREFIX=bench_x ...   # PostgreSQL

Each variant has its own store (a SQLite file, or with ``ADAPTER_AB_URL`` a PostgreSQL
schema of its own, dropped at the end; this process's CPU only) and pipeline (the store
grows alike in both); bulk ingest (``ingest_many``, batches of 100, no translation
workers) of the bench's ORU input after a warm-up; CPU ms a message. Before a variant's
round its functions are put where the callers read them (``SWAPS``); the branch's memo of
``index_values`` lives on across its rounds, as it would in one process.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_delivery import Patients
from bench_ingest import bulk_ingest, load_fixtures, make_input, postgres_engine, routed_settings

from adapter.consortium import load_consortium
from adapter.heap import settled
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate, session_factory

# (module the function is defined in, its name, the modules whose attribute callers read)
SWAPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "adapter.fhir.index_values",
        "index_values",
        ("adapter.store.resources", "adapter.store.refusals"),
    ),
    (
        "adapter.fhir.index_values",
        "patient_key",
        (
            "adapter.store.resources",
            "adapter.pipeline.steps",
            "adapter.routing.care",
            "adapter.api.disclosure",
        ),
    ),
    ("adapter.store.outbox.enqueue", "order_hash", ("adapter.store.outbox.enqueue",)),
    ("adapter.store.resources", "_index_tuples", ("adapter.store.resources",)),
)


def _base_module(name: str, ref: str) -> types.ModuleType:
    """Module ``name`` as ``ref`` has it, run as a module of its own (its imports are this
    tree's modules)."""
    path = name.replace(".", "/") + ".py"
    source = subprocess.run(
        ["git", "show", f"{ref}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType(f"base_{name.replace('.', '_')}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{ref}:{path}", "exec"), module.__dict__)
    return module


def _variants(ref: str) -> dict[str, list[tuple[Any, str, Any]]]:
    """Per variant, the (module, attribute, function) settings that make it."""
    out: dict[str, list[tuple[Any, str, Any]]] = {"base": [], "branch": []}
    bases: dict[str, types.ModuleType] = {}
    for defined, attribute, users in SWAPS:
        if defined not in bases:
            bases[defined] = _base_module(defined, ref)
        base = getattr(bases[defined], attribute, None)
        if base is None:
            continue
        branch = getattr(importlib.import_module(defined), attribute)
        for user in users:
            module = importlib.import_module(user)
            if hasattr(module, attribute):
                out["base"].append((module, attribute, base))
                out["branch"].append((module, attribute, branch))
    return out


def main() -> None:
    logging.disable(logging.WARNING)
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    copies = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    unique = sys.argv[3:4] == ["unique"]
    ref = sys.argv[4] if len(sys.argv) > 4 else "integrate"
    variants = _variants(ref)
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        patients = Patients(spread_births=True) if unique else None
        bulks: dict[str, Callable[[list[tuple[str, bytes]]], int]] = {}
        drops: list[Callable[[], None]] = []
        for who in ("base", "branch"):
            for module, attribute, function in variants[who]:
                setattr(module, attribute, function)
            url = os.environ.get("ADAPTER_AB_URL")
            if url:
                made = postgres_engine(url)
                if isinstance(made, str):
                    raise SystemExit(f"PostgreSQL {made}")
                engine, drop = made
                drops.append(drop)
            else:
                engine = make_engine(f"sqlite:///{tmp}/{who}.db")
                drops.append(engine.dispose)
            migrate(engine)
            pipeline = make_pipeline(settings, consortium, session_factory(engine))
            bulks[who] = bulk_ingest(pipeline, 100)
            bulks[who](make_input(fixtures, 2, f"warm{who}.", patients))
        times: dict[str, list[float]] = {"base": [], "branch": []}
        try:
            with settled():
                for r in range(rounds):
                    for who in ("base", "branch") if r % 2 == 0 else ("branch", "base"):
                        for module, attribute, function in variants[who]:
                            setattr(module, attribute, function)
                        msgs = make_input(fixtures, copies, f"r{r}{who}.", patients)
                        start = time.process_time()
                        bulks[who](msgs)
                        times[who].append(1000 * (time.process_time() - start) / len(msgs))
        finally:
            for drop in drops:
                drop()
    for who, ts in times.items():
        s = sorted(ts)
        every = " ".join(f"{t:.2f}" for t in ts)
        print(
            f"{who:6s} bulk ingest CPU ms/msg: median {s[len(s) // 2]:.2f} mean "
            f"{sum(ts) / len(ts):.2f}  all {every}"
        )
    wins = sum(b < a for a, b in zip(times["base"], times["branch"], strict=True))
    diffs = sorted(b - a for a, b in zip(times["base"], times["branch"], strict=True))
    print(
        f"branch - base per round: median {diffs[len(diffs) // 2]:+.3f} ms/msg; rounds where "
        f"branch < base: {wins}/{rounds}; load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
