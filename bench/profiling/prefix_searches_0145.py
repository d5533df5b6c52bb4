"""Decision 0145: ``bench/pg_strings_latency.py``'s 16 searches and eight more of a name
prefix or part (numbered 16-23), run by one of the tools that read its ``SEARCHES``.

A frequent one-character prefix (``name=王``: 3,918 dictionary ids at 120,000 Patients,
more than ``KEYED_IDS``) was the one search of the five-value mix of decision 0142 still
costlier than at 0afd79b. The extra searches are appended to ``SEARCHES`` in place, then
the tool named first runs as it would (its own arguments after it):

    .venv/bin/python bench/profiling/prefix_searches_0145.py statements --schema S --only 16,17
    .venv/bin/python bench/profiling/prefix_searches_0145.py latency --schema S --runs 15 --only 16
    PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no \\
        --callgrind-out-file=/dev/null .venv/bin/python \\
        bench/profiling/prefix_searches_0145.py icount --schema S --only 16 --calls 20

``statements``: ``statements_buffers_0134.py`` (statements, buffers, answer hashes);
``latency``: ``pg_strings_latency.py``; ``icount``: ``icount_search_0142.py``. Copy this
file with those into another tree (0afd79b) to run there.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.pg_strings_latency import SEARCHES  # noqa: E402

EXTRA: list[tuple[str, list[tuple[str, str]]]] = [
    ("name=王 (3,918 ids)", [("name", "王")]),  # 16
    ("name=王, _total=accurate", [("name", "王"), ("_total", "accurate")]),  # 17
    ("name=张 (the most frequent)", [("name", "张")]),  # 18
    ("name=李秀 (few ids)", [("name", "李秀")]),  # 19
    ("name:contains=秀 (many ids)", [("name:contains", "秀")]),  # 20
    ("family=王 (one id)", [("family", "王")]),  # 21
    ("name=王, address-city=青山县", [("name", "王"), ("address-city", "青山县")]),  # 22
    ("name=王, _sort=given", [("name", "王"), ("_sort", "given")]),  # 23
]
if len(SEARCHES) == 16:
    SEARCHES.extend(EXTRA)


def main() -> None:
    tool, sys.argv = sys.argv[1], [sys.argv[0], *sys.argv[2:]]
    if tool == "statements":
        from statements_buffers_0134 import main as run
    elif tool == "latency":
        from bench.pg_strings_latency import main as run
    elif tool == "icount":
        from icount_search_0142 import main as run
    else:
        raise SystemExit(f"unknown tool {tool!r}: statements, latency or icount")
    run()


if __name__ == "__main__":
    main()
