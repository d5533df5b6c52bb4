"""Benchmark: adapter.hl7v2 against a bare str.split floor and python-hl7.

    .venv/bin/python bench/bench_hl7v2_reader.py [--runs N]

Builds a realistic 30-segment ORU^R01 (MSH, PID, PV1, ORC, OBR, 25 OBX) in UTF-8 with
Chinese item names, and reports the median time per message over many timeit repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapter.hl7v2 import parse_hl7v2

ITEMS = [
    ("718-7", "血红蛋白", "NM", "135", "g/L", "130-175"),
    ("789-8", "红细胞计数", "NM", "4.52", "10*12/L", "4.3-5.8"),
    ("6690-2", "白细胞计数", "NM", "6.1", "10*9/L", "3.5-9.5"),
    ("777-3", "血小板计数", "NM", "210", "10*9/L", "125-350"),
    ("4544-3", "红细胞压积", "NM", "42.1", "%", "40-50"),
    ("787-2", "平均红细胞体积", "NM", "90.2", "fL", "82-100"),
    ("785-6", "平均红细胞血红蛋白量", "NM", "29.9", "pg", "27-34"),
    ("786-4", "平均红细胞血红蛋白浓度", "NM", "331", "g/L", "316-354"),
    ("770-8", "中性粒细胞百分比", "NM", "58.3", "%", "40-75"),
    ("736-9", "淋巴细胞百分比", "NM", "31.2", "%", "20-50"),
    ("5905-5", "单核细胞百分比", "NM", "6.4", "%", "3-10"),
    ("713-8", "嗜酸性粒细胞百分比", "NM", "3.1", "%", "0.4-8"),
    ("706-2", "嗜碱性粒细胞百分比", "NM", "1.0", "%", "0-1"),
    ("751-8", "中性粒细胞绝对值", "NM", "3.56", "10*9/L", "1.8-6.3"),
    ("731-0", "淋巴细胞绝对值", "NM", "1.90", "10*9/L", "1.1-3.2"),
    ("742-7", "单核细胞绝对值", "NM", "0.39", "10*9/L", "0.1-0.6"),
    ("711-2", "嗜酸性粒细胞绝对值", "NM", "0.19", "10*9/L", "0.02-0.52"),
    ("704-7", "嗜碱性粒细胞绝对值", "NM", "0.06", "10*9/L", "0-0.06"),
    ("21000-5", "红细胞分布宽度", "NM", "12.8", "%", "11.5-14.5"),
    ("32623-1", "平均血小板体积", "NM", "10.2", "fL", "7.4-12.5"),
    ("4537-7", "血沉", "NM", "12", "mm/h", "0-15"),
    ("2345-7", "葡萄糖", "NM", "5.3", "mmol/L", "3.9-6.1"),
    ("1988-5", "C反应蛋白", "NM", "3.2", "mg/L", "0-10"),
    ("883-9", "ABO血型", "CWE", "A^A型^LN", "", ""),
    ("8251-1", "备注", "FT", "标本轻度溶血\\.br\\结果仅供参考", "", ""),
]


def build_oru() -> bytes:
    segments = [
        "MSH|^~\\&|LIS|县人民医院|HIS|县医共体平台|20240315103000+0800||ORU^R01^ORU_R01|"
        "LIS20240315000123|P|2.5|||AL|NE|CHN|UNICODE UTF-8",
        "PID|1||330781198001011234^^^&2.16.156.10011.1.2&ISO^NI~P0001234^^^HIS^MR||"
        "张三^^^^^^L||19800101|M|||浙江省金华市兰溪市^^兰溪市^浙江省^321100||"
        "^PRN^PH^^^^13800001234|||M||V0000567",
        "PV1|1|I|内科病区^0301^02^县人民医院||||D0012^李医生^^^^^^^^^^^^EI||||||||||||"
        "V0000567|||||||||||||||||||||||||20240314090000",
        "ORC|RE|O20240315001|F20240315001||CM||||20240315080000|||D0012^李医生",
        "OBR|1|O20240315001|F20240315001|CBC^血常规^LOCAL|||20240315080000|||||||"
        "20240315081500|BLD^血液|D0012^李医生||||||20240315102500|||F",
    ]
    for i, (code, name, vt, value, unit, ref) in enumerate(ITEMS, 1):
        flag = "H" if i % 7 == 0 else "N"
        segments.append(
            f"OBX|{i}|{vt}|{code}^{name}^LN||{value}|{unit}|{ref}|{flag}|||F|||"
            f"20240315100000||T0031^王检验员"
        )
    assert len(segments) == 30
    return ("\r".join(segments) + "\r").encode("utf-8")


def read_every_field(raw: bytes) -> int:
    """Parse and read every field (component 1 of repetition 1) once."""
    n = 0
    for seg in parse_hl7v2(raw).segments:
        for f in range(1, seg.field_count() + 1):
            n += len(seg.get(f))
    return n


def read_every_component(raw: bytes) -> int:
    """Parse and read every component of every repetition of every field once."""
    n = 0
    for seg in parse_hl7v2(raw).segments:
        for f in range(1, seg.field_count() + 1):
            for r in range(1, seg.repetitions(f) + 1):
                for value in seg.components(f, r):
                    n += len(value)
    return n


def split_floor(raw: bytes) -> int:
    """The floor: decode, split segments and fields, touch every field."""
    n = 0
    for line in raw.decode("utf-8").split("\r"):
        if line:
            for value in line.split("|"):
                n += len(value)
    return n


def python_hl7(raw: bytes) -> tuple[Callable[[], object], Callable[[], object]] | None:
    """hl7.parse alone, and hl7.parse + str() of every field (python-hl7 joins the parts
    back; fields without separators are plain str)."""
    try:
        import hl7  # type: ignore[import-untyped]
    except ImportError:
        return None
    text = raw.decode("utf-8")

    def parse_and_read() -> int:
        n = 0
        for seg in hl7.parse(text):
            for f in range(1, len(seg)):
                n += len(str(seg[f]))
        return n

    assert parse_and_read() > 0
    return (lambda: hl7.parse(text)), parse_and_read


def interleaved_medians(fns: list[tuple[Callable[[], object], int]], repeat: int) -> list[float]:
    """Median seconds per call of each (fn, calls per repeat); the rows take turns in every
    repeat, so load from other processes affects them alike and the ratios stay fair."""
    timers = [(timeit.Timer(fn), number) for fn, number in fns]
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, (timer, number) in enumerate(timers):
            samples[i].append(timer.timeit(number) / number)
    return [statistics.median(x) for x in samples]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--runs",
        type=int,
        default=20000,
        help="calls per row (default 20000; python-hl7 rows make 1/20 of them)",
    )
    args = ap.parse_args()
    raw = build_oru()
    assert read_every_field(raw) > 0 and read_every_component(raw) > 0
    repeat = 25
    number = max(1, args.runs // repeat)
    slow_number = max(4, number // 20)
    labelled: list[tuple[str, Callable[[], object], int]] = [
        ("str.split floor (decode + segments + fields)", lambda: split_floor(raw), number),
        ("adapter.hl7v2 parse only", lambda: parse_hl7v2(raw), number),
        ("adapter.hl7v2 parse + read every field", lambda: read_every_field(raw), number),
        ("adapter.hl7v2 parse + read every component", lambda: read_every_component(raw), number),
    ]
    hl7_fns = python_hl7(raw)
    hl7_rows = ("python-hl7 hl7.parse only", "python-hl7 hl7.parse + str() of every field")
    if hl7_fns is None:
        print("python-hl7 (import hl7) is not installed: its rows are skipped")
    else:
        labelled.extend(
            (label, fn, slow_number) for label, fn in zip(hl7_rows, hl7_fns, strict=True)
        )
    medians = interleaved_medians([(fn, n) for _, fn, n in labelled], repeat)
    rows: list[tuple[str, float | None]] = [
        (label, secs) for (label, _, _), secs in zip(labelled, medians, strict=True)
    ]
    if hl7_fns is None:
        rows.extend((label, None) for label in hl7_rows)
    print(
        f"ORU^R01, 30 segments, {len(raw)} bytes UTF-8; median of {repeat} repeats, "
        f"Python {sys.version.split()[0]}"
    )
    floor = rows[0][1] or 1.0
    ours = rows[2][1] or 1.0
    print(f"{'':46} {'per message':>12} {'x floor':>9} {'x ours':>8}")
    for label, secs in rows:
        if secs is None:
            print(f"{label:46} {'skipped':>12}")
            continue
        print(f"{label:46} {secs * 1e6:9.1f} us {secs / floor:8.1f}x {secs / ours:7.2f}x")
    print("('x ours' = relative to 'parse + read every field')")


if __name__ == "__main__":
    main()
