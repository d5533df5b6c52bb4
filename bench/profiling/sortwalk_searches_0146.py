"""Decision 0146: ``prefix_searches_0145.py``'s 24 searches and six more sorted by a name
with a criterion (numbered 24-29), run by one of the tools that read ``SEARCHES``.

0117's walk read a criterion's matches once per walked value of the sort
(``name=王&_sort=given``, #23: 404,203 buffers); a criterion whose matches the pre-read
listed by key now sorts them directly (``search_token_walk.keys_sorted``). The extra
searches are appended to ``SEARCHES`` in place, then the tool named first runs as it would
(its own arguments after it), as ``prefix_searches_0145.py``:

    .venv/bin/python bench/profiling/sortwalk_searches_0146.py statements --schema S --only 23,24
    .venv/bin/python bench/profiling/sortwalk_searches_0146.py latency --schema S --runs 15 \\
        --only 23
    PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no \\
        --callgrind-out-file=/dev/null .venv/bin/python \\
        bench/profiling/sortwalk_searches_0146.py icount --schema S --only 23 --calls 20

Copy this file with ``prefix_searches_0145.py`` and the tools into another tree (0afd79b)
to run there.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prefix_searches_0145 import SEARCHES, main

MORE: list[tuple[str, list[tuple[str, str]]]] = [
    ("name=张, _sort=-family", [("name", "张"), ("_sort", "-family")]),  # 24
    ("name=王, _sort=-given", [("name", "王"), ("_sort", "-given")]),  # 25
    ("name:contains=秀, _sort=family", [("name:contains", "秀"), ("_sort", "family")]),  # 26
    ("name=张伟, _sort=given", [("name", "张伟"), ("_sort", "given")]),  # 27
    ("given=秀, _sort=-name", [("given", "秀"), ("_sort", "-name")]),  # 28
    ("name=王, _sort=given,-_lastUpdated", [("name", "王"), ("_sort", "given,-_lastUpdated")]),
    # 29 above
]
if len(SEARCHES) == 24:
    SEARCHES.extend(MORE)


if __name__ == "__main__":
    main()
