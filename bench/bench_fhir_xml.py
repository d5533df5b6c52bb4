"""Benchmark: rendering FHIR answers as XML (adapter/fhir/xml.py, the fhir.resources R4B
serialiser) against the JSON the API sends by default (orjson), on the same dicts.

    .venv/bin/python bench/bench_fhir_xml.py [--rounds 5]

Inputs: every resource of the golden outputs under fixtures/ (811 resources of 15 types),
and a searchset-shaped Bundle of the first 50 Observations among them. Rows: the median
over the rounds of the time per resource (and per Bundle); "floor" is orjson.dumps of the
same dict, the work the JSON answer does. The ratio is XML / floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import orjson

from adapter.fhir.xml import to_xml

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    resources = []
    for path in sorted(ROOT.glob("fixtures/**/*.expected.json")):
        resources += json.loads(path.read_text(encoding="utf-8"))["resources"]
    observations = [r for r in resources if r["resourceType"] == "Observation"][:50]
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(observations),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in observations],
    }
    to_xml(bundle)  # model classes imported and built once, outside the timing
    rows = {
        "per resource": resources,
        "Bundle of 50 Observations": [bundle],
    }
    print(f"{'input':28} {'JSON floor':>12} {'XML':>12} {'ratio':>8}")
    for label, items in rows.items():
        floor = statistics.median(_timed(orjson.dumps, items) for _ in range(rounds))
        xml = statistics.median(_timed(to_xml, items) for _ in range(rounds))
        print(f"{label:28} {floor * 1e3:10.3f}ms {xml * 1e3:10.2f}ms {xml / floor:7.0f}x")


if __name__ == "__main__":
    main()
