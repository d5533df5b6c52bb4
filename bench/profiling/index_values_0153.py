"""Decision 0153: ``index_values`` and the index rows' building of the bulk's resources,
counted exactly per resource type.

    .venv/bin/python bench/profiling/index_values_0153.py capture FILE [COPIES]
    PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=OUT \\
        .venv/bin/python bench/profiling/index_values_0153.py replay FILE
    .venv/bin/python bench/profiling/index_values_0153.py split OUT FILE
    .venv/bin/python bench/profiling/index_values_0153.py rows FILE OUT   # the rows, for cmp

``capture``: one SQLite bulk (``ingest_many``, batches of 100) of 2 warm-up copies and
COPIES (4) copies of the bench's ORU input; every ``index_values`` call of
``save_resources`` (the message's resources, its Provenance) kept in order with the
resource key and the message's resources named by key that its ``_index_tuples`` got,
pickled. The
message ids are random: capture once, replay the same file with each tree (``PYTHONPATH``).
``replay`` (a fresh process, the memos empty): the warm-up's calls uninstrumented, then the
measured copies' calls instrumented, each as ``save_resources`` makes it:
``index_values`` then ``_index_tuples``. Each resource type's ``index_values`` is called
through a C function of its own (as ``stage_icount_0143.py``), ``_index_tuples`` through
another (its values made before it): callgrind's inclusive cost of each is that part's
instructions. ``split`` prints
them a message and a call. ``rows``: every call's patient key, values and rows, one line each.
"""

from __future__ import annotations

import copy
import logging
import pickle
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd() / "bench" / "profiling"))
sys.path.insert(0, str(Path.cwd()))

MESSAGES_A_COPY = 30


def capture(path: str, copies: int) -> None:
    from bench_ingest import bulk_ingest, load_fixtures, make_input, routed_settings

    import adapter.store.resources as store
    from adapter.consortium import load_consortium
    from adapter.runtime import make_pipeline
    from adapter.store import make_engine, migrate, session_factory

    logging.disable(logging.WARNING)
    calls: list[tuple[dict[str, Any], Any, tuple[int, dict[str, int]] | None]] = []
    derive, rows_of = store.index_values, store._index_tuples

    def keeping(resource: dict[str, Any], zone: Any) -> Any:
        calls.append((copy.deepcopy(resource), zone, None))
        return derive(resource, zone)

    def rows_kept(rtype: str, rkey: int, values: Any, named: Any = None) -> Any:
        # the key and the message's resources named by key that ``save_resources`` gave
        resource, zone, _ = calls[-1]
        calls[-1] = (resource, zone, (rkey, dict(named or {})))
        return rows_of(rtype, rkey, values, named)

    store.index_values = keeping  # type: ignore[assignment]
    store._index_tuples = rows_kept  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        engine = make_engine(f"sqlite:///{tmp}/capture.db")
        migrate(engine)
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        bulk = bulk_ingest(make_pipeline(settings, consortium, session_factory(engine)), 100)
        bulk(make_input(fixtures, 2, "warm.", None))
        warm = len(calls)
        bulk(make_input(fixtures, copies, "run.", None))
        engine.dispose()
    with open(path, "wb") as out:
        pickle.dump({"copies": copies, "warm": warm, "calls": calls}, out)
    print(f"{len(calls)} calls ({warm} warm-up), {copies} copies -> {path}")


def _load(path: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        return pickle.load(f)


def _types(calls: list[tuple[Any, ...]]) -> list[str]:
    """The resource types, most calls first (eight entries; the rest share the last)."""
    counts: dict[str, int] = {}
    for resource, _, _ in calls:
        counts[resource["resourceType"]] = counts.get(resource["resourceType"], 0) + 1
    return sorted(counts, key=lambda t: (-counts[t], t))


def replay(path: str) -> None:
    from icount_0133 import _instrument
    from stage_icount_0143 import _ENTRIES

    import adapter.store.resources as store
    from adapter.fhir.index_values import index_values

    data = _load(path)
    calls, warm = data["calls"], data["warm"]
    types = _types(calls)
    via = {t: _ENTRIES[min(n, 7)][1](index_values) for n, t in enumerate(types)}
    tuples = _ENTRIES[8][1](store._index_tuples)

    def run(part: list[tuple[Any, ...]], wrapped: bool) -> None:
        for resource, zone, (rkey, named) in part:
            rtype = resource["resourceType"]
            if wrapped:
                tuples(rtype, rkey, via[rtype](resource, zone), named)
            else:
                store._index_tuples(rtype, rkey, index_values(resource, zone), named)

    run(calls[:warm], False)
    _instrument(True)
    run(calls[warm:], True)
    _instrument(False)


def rows(path: str, out: str) -> None:
    import adapter.store.resources as store
    from adapter.fhir.index_values import index_values, patient_key

    data = _load(path)
    with open(out, "w") as f:
        for resource, zone, (rkey, named) in data["calls"]:
            rtype = resource["resourceType"]
            values = index_values(resource, zone)
            found = store._index_tuples(rtype, rkey, values, named)
            print(patient_key(resource), repr(values), repr(found), file=f)


def split(out_path: str, path: str) -> None:
    data = _load(path)
    measured = data["calls"][data["warm"] :]
    types = _types(data["calls"])
    per = MESSAGES_A_COPY * data["copies"]
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", out_path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    total = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", text)[1].replace(",", ""))

    def cost(entry: str) -> int:
        found = re.search(rf"^\s*([\d,]+) \([ \d.]+%\)\s+\S*:{re.escape(entry)} ", text, re.M)
        return int(found[1].replace(",", "")) if found else 0

    from stage_icount_0143 import _ENTRIES

    print(f"replay: {total / per / 1e6:.3f} M instructions a message ({total:,}, {per} messages)")
    labels = [*types[:7], "+".join(types[7:]) or "-"]
    summed = 0
    for n, label in enumerate(labels):
        n_calls = sum(1 for r, _, _ in measured if min(types.index(r["resourceType"]), 7) == n)
        c = cost(_ENTRIES[n][0])
        summed += c
        if n_calls:
            print(
                f"index_values {label:26} {n_calls:5} calls {c / per / 1e6:7.3f} M a message"
                f" {c / n_calls:9,.0f} a call"
            )
    print(f"index_values (all)                     {summed / per / 1e6:7.3f} M a message")
    c = cost(_ENTRIES[8][0])
    print(f"_index_tuples                          {c / per / 1e6:7.3f} M a message")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "capture":
        capture(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 4)
    elif command == "replay":
        replay(sys.argv[2])
    elif command == "rows":
        rows(sys.argv[2], sys.argv[3])
    else:
        split(sys.argv[2], sys.argv[3])
