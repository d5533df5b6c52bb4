"""Benchmark: the mapping engine's translation alone (no parsing, no checks, no store), over
the golden inputs of fixtures/ (every ``cases.yaml`` entry with a golden file) and the ORU
fixtures, in ms per document by input folder, against floors measured in the same run.

    .venv/bin/python bench/bench_mapping.py [--rounds 5] [--repeat 3]

Each input is parsed once (``read_document``, not timed); then ``document.translate`` (the
format's message mapping selected and run, the unread report; CSV rows are also checked
item by item, as CSV imports them) is timed. Rows, per input folder (``hl7v2/oru`` ...):

  translate   ms per document of ``document.translate``
  copy floor  ms per document to make the same output as fresh dicts (orjson round trip of
              the translation's resources): the least any translation could cost
  ORU floor   for hl7v2/oru only: ``bench_ingest.floor_translate`` (naive ``str.split``
              tokenizer + the resource dicts built by hand in Python), which also decodes
              and tokenizes: a floor for parse + translate of the same messages

Rounds take turns over every input (noise hits all alike); medians over rounds are printed,
with ``translate / ORU floor`` and the expression calls per document (``Evaluation.expr``
calls, counted in a separate untimed pass when the engine still has that method).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import Tables, floor_tables, floor_translate

from adapter.consortium import Facility, load_consortium
from adapter.mapping.golden import find_cases
from adapter.pipeline import Translator
from adapter.pipeline.readers import CONTENT_TYPES, original_variables, read_document

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
ORU = FIXTURES / "hl7v2" / "oru"


@dataclass(slots=True)
class Input:
    group: str  # ``hl7v2/oru``: the input's folder below fixtures/
    label: str
    raw: bytes
    source: str
    facility: Facility
    translate: Callable[[], Any]  # the parsed document's translation
    golden: Path | None  # its golden file, if any
    resources: int = 0


def make_translator() -> Translator:
    consortium = load_consortium(FIXTURES / "consortium.yaml")
    translator = Translator(
        consortium,
        mappings_dir=ROOT / "mappings",
        max_bytes=5 * 1024 * 1024,
        default_timezone="Asia/Shanghai",
    )
    translator.load_all_mappings()
    return translator


def load_inputs(translator: Translator) -> list[Input]:
    """Golden single-document cases, then ORU fixtures no case names (deduplicated)."""
    cases, _broken = find_cases(FIXTURES)
    paths: list[tuple[Path, str, Path | None]] = [
        (case.input, case.entry["source"], case.golden)
        for case in cases
        if case.capture is None and not case.is_outcome_case and case.golden.exists()
    ]
    seen = {p.resolve() for p, _, _ in paths}
    for path in sorted(ORU.glob("*/*.hl7")):
        if path.resolve() not in seen and translator.consortium.source(path.parent.name):
            paths.append((path, path.parent.name, None))
    out = []
    for path, source_id, golden in paths:
        found = translator.consortium.source(source_id)
        if found is None:
            continue
        facility, source = found
        raw = path.read_bytes()
        document = read_document(source.format, raw, max_bytes=translator.max_bytes)
        mappings = translator.mapping_set(facility, source)
        zone = translator.timezone
        # the variables Translator.translate_for gives (@consortium, @original)
        extra = {
            "consortium": translator._consortium_vars,
            "original": original_variables(
                raw, CONTENT_TYPES.get(source.format, "application/octet-stream")
            ),
        }

        def run(
            document: Any = document,
            mappings: Any = mappings,
            facility: Any = facility,
            extra: dict[str, Any] = extra,
            zone: Any = zone,
        ) -> Any:
            return document.translate(mappings, facility, zone, extra)

        rel = path.relative_to(FIXTURES)
        group = f"{rel.parts[0]}/{rel.parts[1]}"
        out.append(Input(group, str(rel), raw, source_id, facility, run, golden))
    return out


def oru_tables(translator: Translator) -> Tables:
    """The concept maps bench_ingest's floor reads (from std-hl7v2's mapping set)."""
    return floor_tables(translator, translator.consortium)  # type: ignore[arg-type]


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Seconds per call, ``repeat`` calls back to back."""
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat


def count_expr_calls(inputs: list[Input]) -> dict[str, float]:
    """``Evaluation.expr`` calls per document by group (0 when the engine has none)."""
    from adapter.mapping import evaluation

    original = getattr(evaluation.Evaluation, "expr", None)
    if original is None:
        return {}
    calls = [0]

    def counting(self: Any, node: Any) -> Any:
        calls[0] += 1
        return original(self, node)

    evaluation.Evaluation.expr = counting  # type: ignore[method-assign]
    per: dict[str, list[int]] = defaultdict(list)
    try:
        for item in inputs:
            calls[0] = 0
            item.translate()
            per[item.group].append(calls[0])
    finally:
        evaluation.Evaluation.expr = original  # type: ignore[method-assign]
    return {group: statistics.mean(values) for group, values in per.items()}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--repeat", type=int, default=3, help="calls per input per round (3)")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    started = time.process_time()
    translator = make_translator()
    inputs = load_inputs(translator)
    tables = oru_tables(translator)
    outputs: dict[str, bytes] = {}
    differ = []
    for item in inputs:  # warm up (caches, lazily built tables); the output against golden
        translation = item.translate()
        item.resources = len(translation.resources)
        outputs[item.label] = orjson.dumps(translation.resources)
        if item.golden is not None:
            expected = orjson.loads(item.golden.read_bytes())["resources"]
            if orjson.loads(outputs[item.label]) != expected:
                differ.append(item.label)
    print(
        f"{sum(1 for i in inputs if i.golden)} documents with a golden file; resources "
        f"differing from it: {', '.join(differ) or 'none'}"
    )
    translate: dict[str, list[float]] = defaultdict(list)  # group -> per round: s/doc
    copy_floor: dict[str, list[float]] = defaultdict(list)
    oru_floor: list[float] = []
    for _ in range(args.rounds):
        spent: dict[str, list[float]] = defaultdict(list)
        copies: dict[str, list[float]] = defaultdict(list)
        floors: list[float] = []
        for item in inputs:
            spent[item.group].append(timed(item.translate, args.repeat))
            data = outputs[item.label]
            copies[item.group].append(timed(lambda data=data: orjson.loads(data), args.repeat))
            if item.group == "hl7v2/oru":
                raw, facility = item.raw, item.facility
                floors.append(
                    timed(lambda r=raw, f=facility: floor_translate(r, f, tables), args.repeat)
                )
        for group, values in spent.items():
            translate[group].append(statistics.mean(values))
            copy_floor[group].append(statistics.mean(copies[group]))
        if floors:
            oru_floor.append(statistics.mean(floors))
    calls = count_expr_calls(inputs)
    report(inputs, translate, copy_floor, oru_floor, calls, args, started)


def report(
    inputs: list[Input],
    translate: dict[str, list[float]],
    copy_floor: dict[str, list[float]],
    oru_floor: list[float],
    calls: dict[str, float],
    args: argparse.Namespace,
    started: float,
) -> None:
    load = os.getloadavg()
    print(
        f"bench_mapping: {len(inputs)} documents, {args.rounds} rounds x {args.repeat} calls; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{time.process_time() - started:.0f} s"
    )
    counts: dict[str, int] = defaultdict(int)
    resources: dict[str, int] = defaultdict(int)
    for item in inputs:
        counts[item.group] += 1
        resources[item.group] += item.resources
    print(
        f"{'input folder':<18}{'docs':>5}{'res/doc':>9}{'translate ms':>14}"
        f"{'copy floor ms':>15}{'expr calls':>12}"
    )
    total_ms, total_docs = 0.0, 0
    for group in sorted(translate):
        ms = 1000 * statistics.median(translate[group])
        total_ms += ms * counts[group]
        total_docs += counts[group]
        expr = f"{calls[group]:.0f}" if group in calls else "-"
        print(
            f"{group:<18}{counts[group]:>5}{resources[group] / counts[group]:>9.1f}{ms:>14.3f}"
            f"{1000 * statistics.median(copy_floor[group]):>15.3f}{expr:>12}"
        )
    print(f"{'all (mean/doc)':<18}{total_docs:>5}{'':>9}{total_ms / total_docs:>14.3f}")
    if oru_floor and "hl7v2/oru" in translate:
        ms = 1000 * statistics.median(translate["hl7v2/oru"])
        floor = 1000 * statistics.median(oru_floor)
        print(
            f"hl7v2/oru: translate {ms:.3f} ms/msg; ORU floor (tokenize + build) {floor:.3f} "
            f"ms/msg; translate / floor {ms / floor:.1f}x"
        )


if __name__ == "__main__":
    main()
