"""Benchmark (decision 0128): the Python side of one body read, whole frame (before) against
the row's values and a stripped frame (after), on the lab fixtures' golden resources as
``save_resources`` stamps them; and the write side (``pack`` of the stamped body against
``stripped``). One process, the two forms alternated ``--rounds`` times; CPU ns per body
(time.process_time), best round. Checks the two reads give the same JSON bytes.

    .venv/bin/python bench/body_decode_0128.py [--rounds 7] [--loops 20]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from adapter.fhir.dates import format_instant
from adapter.store.body_codec import pack, unpack
from adapter.store.body_stamps import StampedBody, read_body, stripped

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 12, 6, 8, 0, 0, 123456, tzinfo=UTC)
MICROS = int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000 + 123456


def _stamped(resource: dict) -> StampedBody:
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = "3"
    meta["lastUpdated"] = format_instant(T0)
    out = StampedBody()
    for key, value in resource.items():
        if key != "meta":
            out[key] = value
            if key == "id":
                out["meta"] = meta
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--loops", type=int, default=20)
    args = ap.parse_args()
    bodies = []
    for path in sorted(ROOT.glob("fixtures/**/*expected*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            bodies.extend(_stamped(r) for r in data.get("resources", []) if r.get("id"))
    whole = [pack(b) for b in bodies]
    read_as = [f"{b['id']} 3 {MICROS} ".encode() + stripped(b) for b in bodies]  # type: ignore[operator]
    assert all(
        orjson.dumps(unpack(w)) == orjson.dumps(read_body(s))
        for w, s in zip(whole, read_as, strict=True)
    )
    n = len(bodies) * args.loops
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, fn, data in (
            ("read whole (before)", unpack, whole),
            ("read stripped (after)", read_body, read_as),
            ("write whole (before)", pack, bodies),
            ("write stripped (after)", stripped, bodies),
        ):
            start = time.process_time()
            for _ in range(args.loops):
                for value in data:
                    fn(value)
            took = (time.process_time() - start) / n * 1e9
            best[name] = min(best.get(name, took), took)
    print(f"{len(bodies)} bodies, {args.loops} loops, best of {args.rounds} rounds (CPU ns/body):")
    for name, took in best.items():
        print(f"  {name:24} {took:8.0f}")
    print(
        f"  stored bytes a body: whole {sum(map(len, whole)) / len(whole):.1f},"
        f" stripped {sum(len(stripped(b)) for b in bodies) / len(bodies):.1f}"  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    main()
