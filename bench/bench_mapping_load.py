"""Benchmark: memory and CPU of loading every source's mapping set of the example
consortium (fixtures/consortium.yaml) in one process, as the API, a worker or a translation
worker does at start-up (``Translator.load_all_mappings``).

    .venv/bin/python bench/bench_mapping_load.py [--trace]

Prints the sources, the distinct sets (a facility overlay makes its own), the process RSS
before and after (MB), the CPU seconds of the load and, with ``--trace``, the Python
allocations still held after it (tracemalloc, which itself slows the load and grows RSS).
Decision 0046 (amended 2026-12-04): shared files are compiled once per process.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapter.consortium import load_consortium
from adapter.pipeline import Translator

ROOT = Path(__file__).resolve().parent.parent


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trace", action="store_true", help="also count Python allocations")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    consortium = load_consortium(ROOT / "fixtures" / "consortium.yaml")
    translator = Translator(
        consortium,
        mappings_dir=ROOT / "mappings",
        max_bytes=5 * 1024 * 1024,
        default_timezone="Asia/Shanghai",
    )
    gc.collect()
    before = rss_mb()
    if args.trace:
        tracemalloc.start()
    started = time.process_time()
    translator.load_all_mappings()
    spent = time.process_time() - started
    gc.collect()
    after = rss_mb()
    sources = translator.loaded_sources()
    found = [consortium.source(s) for s in sources]
    sets = {id(translator.mapping_set(*f)) for f in found if f is not None}
    load = os.getloadavg()
    line = (
        f"bench_mapping_load: {len(sources)} sources, {len(sets)} distinct sets; RSS "
        f"{before:.1f} -> {after:.1f} MB (+{after - before:.1f}); load {spent:.2f} s CPU"
    )
    if args.trace:
        held, _peak = tracemalloc.get_traced_memory()
        line += f"; Python allocations held {held / 2**20:.1f} MB"
    print(f"{line}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
