"""Benchmark: ``index_values`` (the search-index values of a resource) over a golden corpus.

    .venv/bin/python bench/bench_index_values.py [--rounds 7]

The corpus is tests/data/index-values/golden-rows.json.gz: every distinct resource of the
golden outputs (fixtures/**/*expected*.json) plus a few edge cases, about 1,500 resources
and 12,700 rows. Printed: CPU ms per 1,000 resources (best of ``--rounds``) of
``index_values``, of ``patient_key``, and of a floor that only builds the same
``IndexValue``s from ready field tuples (the objects every implementation must make), with
the ratio to it. Decision 0047, section "Search index values, compiled (2026-12-04)".
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapter.fhir.index_values import IndexValue, index_values, patient_key

CORPUS = Path(__file__).resolve().parent.parent / "tests/data/index-values/golden-rows.json.gz"


def best_ms(run: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    cases = json.loads(gzip.decompress(CORPUS.read_bytes()).decode("utf-8"))["cases"]
    resources = [c["resource"] for c in cases]
    fields = [tuple(v.__getattribute__(f) for f in IndexValue.__slots__)
              for r in resources for v in index_values(r)]  # fmt: skip
    per = 1000 / len(resources)

    def values() -> None:
        for resource in resources:
            index_values(resource)

    def keys() -> None:
        for resource in resources:
            patient_key(resource)

    def floor() -> None:
        for f in fields:
            IndexValue(*f)

    measured = {name: best_ms(run, args.rounds) * per for name, run in
                (("index_values", values), ("patient_key", keys), ("floor", floor))}  # fmt: skip
    print(f"{len(resources)} resources, {len(fields)} rows, best of {args.rounds}, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    for name, ms in measured.items():
        print(f"  {name:<13} {ms:8.2f} CPU ms / 1,000 resources")
    print(f"  index_values / floor: {measured['index_values'] / measured['floor']:.1f}x")


if __name__ == "__main__":
    main()
