"""Benchmark: the cost of one HL7 v2 message as it grows, 1,000 / 10,000 / 100,000 OBX.

    .venv/bin/python bench/bench_many_obx.py [--sizes 1000 10000 100000] [--repeat 3]

One ORU^R01 of the example consortium (std-hl7v2: MSH, PID, PV1, ORC, OBR, then N OBX with
distinct item codes and Chinese names, then SPM) is read at each size by:

  floor        decode + str.split into segments and fields, touching every field
  parse        adapter.hl7v2.parse_hl7v2 (framing, charset, separators, segments, the limits)
  parse+map    Pipeline.translate: parse, group, map every OBX to an Observation with the
               real mapping files, check every resource (no database)

and prints the time per 1,000 segments of each, the ratio to the floor measured in the same
run, and how the time per segment changes from the smallest size (1.0 = linear). The
input limits are raised for the run (ADAPTER_MAX_SEGMENTS would stop 100,000 OBX at 10,001).
Sizes up to 10,000 are timed --repeat times (median); larger ones once.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapter.consortium import load_consortium
from adapter.hl7v2 import parse_hl7v2
from adapter.input_limits import InputLimits
from adapter.pipeline import Translator
from adapter.settings import Settings

HEAD = [
    "MSH|^~\\&|QSLIS|QSXRMYY|QSYGT|QSYGTPT|20261122110405||ORU^R01^ORU_R01|QSLIS2026112200{n}|"
    "P|2.5.1|||AL|NE|CHN|UNICODE UTF-8",
    "PID|1||430999198511303175^^^&2.16.156.10011.1.3&ISO^NNCHN~ZY20261118003^^^QSXRMYY^MR||"
    "欧阳^明华||19851130|M|||柳河镇新街村5组^^青山县^湖南省^415100||18907310345^PRN^CP",
    "PV1|1|I|消化内科^12^3^QSXRMYY||||D0207^周^平||||||||||||ZY20261118003",
    "ORC|RE|SQ2611220051^QSHIS|L2611220051^QSLIS||CM|||||||D0207^周^平",
    "OBR|1|SQ2611220051^QSHIS|L2611220051^QSLIS|CBC^血常规^99QSLIS|||20261122063000|||||||"
    "20261122070512||D0207^周^平||||||20261122081530||HM|F",
]
TAIL = ["SPM|1|S2611220051&QSLIS||BLD^全血^HL70487|||||||||||||20261122063000|20261122070512"]


def build(obx: int) -> bytes:
    lines = [HEAD[0].format(n=obx), *HEAD[1:]]
    for i in range(1, obx + 1):
        lines.append(
            f"OBX|{i}|NM|T{i:06d}^检验项目{i}^99QSLIS||{i % 300}.{i % 10}|g/L|1-300|N|||F|||"
            "20261122073000"
        )
    lines.extend(TAIL)
    return ("\r".join(lines) + "\r").encode("utf-8")


def floor(raw: bytes) -> int:
    n = 0
    for line in raw.decode("utf-8").split("\r"):
        if line:
            for value in line.split("|"):
                n += len(value)
    return n


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    biggest = max(args.sizes) + 100
    settings = Settings(max_segments=biggest, max_message_bytes=1 << 30)
    limits = InputLimits.from_settings(settings)
    pipeline = Translator(  # translate only: no database
        load_consortium(settings.config),
        mappings_dir=settings.mappings_dir,
        max_bytes=settings.max_message_bytes,
        default_timezone=settings.default_timezone,
        limits=limits,
    )
    pipeline.load_all_mappings()
    rows: list[tuple[int, int, int, float, float, float]] = []
    for obx in args.sizes:
        raw = build(obx)
        repeat = args.repeat if obx <= 10_000 else 1
        outcome = pipeline.translate(raw, "std-hl7v2")
        observations = sum(1 for r in outcome.resources if r["resourceType"] == "Observation")
        assert not outcome.failed and observations == obx, (outcome.failed, observations)
        segments = len(parse_hl7v2(raw, limits=limits).segments)
        t_floor = timed(lambda raw=raw: floor(raw), max(repeat, 5))
        t_parse = timed(lambda raw=raw: parse_hl7v2(raw, limits=limits), repeat)
        t_map = timed(lambda raw=raw: pipeline.translate(raw, "std-hl7v2"), repeat)
        rows.append((obx, segments, len(raw), t_floor, t_parse, t_map))
        print(f"  measured {obx} OBX", file=sys.stderr, flush=True)

    print(f"ORU^R01 with N OBX, std-hl7v2 mappings; Python {sys.version.split()[0]}")
    print(
        f"{'OBX':>8} {'segments':>9} {'bytes':>11} | per 1,000 segments: "
        f"{'floor':>9} {'parse':>9} {'parse+map':>10} | x floor: {'parse':>6} {'p+map':>7}"
    )
    for obx, segments, size, t_floor, t_parse, t_map in rows:
        k = segments / 1000
        print(
            f"{obx:>8} {segments:>9} {size:>11} |                     "
            f"{t_floor / k * 1e3:6.2f} ms {t_parse / k * 1e3:6.2f} ms {t_map / k * 1e3:7.1f} ms |"
            f"          {t_parse / t_floor:6.1f} {t_map / t_floor:7.0f}"
        )
    base = rows[0]
    print("time per segment relative to the smallest size (1.0 = linear):")
    for obx, segments, _, t_floor, t_parse, t_map in rows:
        scale = base[1] / segments
        print(
            f"{obx:>8} OBX: floor {t_floor / base[3] * scale:4.2f}, "
            f"parse {t_parse / base[4] * scale:4.2f}, parse+map {t_map / base[5] * scale:4.2f}"
        )


if __name__ == "__main__":
    main()
