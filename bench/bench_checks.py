"""Benchmark: the pipeline's run-time check of produced resources (``check_resources``:
primitives, and since decision 0094 the lengths the store keeps) over the translations of
the golden inputs and ORU fixtures (bench_mapping.load_inputs), CPU ms per document.

    .venv/bin/python bench/bench_checks.py [--rounds 5] [--repeat 20]

Each input is translated once (not timed); then ``check_resources(resources, origins)`` is
timed ``repeat`` times per round. Prints the median over rounds of the mean CPU ms per
document, over all inputs and for the referral inputs alone, and the load average.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_mapping import load_inputs, make_translator

from adapter.pipeline.checks import check_resources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    translator = make_translator()
    work = []
    for item in load_inputs(translator):
        translation = item.translate()
        work.append((item.group, translation.resources, translation.origins))
    referral = [w for w in work if "referral" in w[0]]
    rounds: dict[str, list[float]] = {"all": [], "referral": []}
    for _ in range(args.rounds):
        for name, items in (("all", work), ("referral", referral)):
            start = time.process_time()
            for _ in range(args.repeat):
                for _, resources, origins in items:
                    check_resources(resources, origins)
            spent = time.process_time() - start
            rounds[name].append(spent * 1000 / (args.repeat * len(items)))
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    for name, items in (("all", work), ("referral", referral)):
        print(
            f"{name:9} {len(items):4} documents  "
            f"{statistics.median(rounds[name]):.4f} CPU ms/document (median of {args.rounds})"
        )
    print("load", " ".join(load))


if __name__ == "__main__":
    main()
