"""Decision 0150: ``stage_icount_0143.py`` with two sets of stages of the save's own parts.

    STAGES=0150a PYTHONHASHSEED=0 valgrind --tool=callgrind --instr-atstart=no \\
        --callgrind-out-file=OUT .venv/bin/python bench/profiling/stage_icount_0150.py 4
    STAGES=0150a .venv/bin/python bench/profiling/stage_icount_0150.py split OUT 4

(``0150b`` the second set; any other ``STAGES`` is ``stage_icount_0143.py``'s.) Each stage's
inclusive instructions a message, as there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stage_icount_0143 as stages

_SETS = {
    "0150a": [
        ("save_resources (save, trace)", "adapter.pipeline.steps", "save_resources"),
        ("content_hash", "adapter.store.resources", "content_hash"),
        ("insert_rows (resource, version rows)", "adapter.store.resources", "insert_rows"),
        ("body bind (stripped, packed)", "adapter.store.types", "_resource_frame_or_none"),
        ("pack_json (bodies' zstd, general way)", "adapter.store.body_stamps", "pack_json"),
        ("_processed (bind pass)", "adapter.store.fast_insert", "_processed"),
        ("driver_executemany", "adapter.store.fast_insert", "driver_executemany"),
        ("facility_key", "adapter.store.resources", "facility_key"),
        ("new_keys", "adapter.store.resources", "new_keys"),
    ],
    "0150b": [
        ("content_hash", "adapter.store.resources", "content_hash"),
        ("insert_rows (resource, version rows)", "adapter.store.resources", "insert_rows"),
        ("stripped (body bind)", "adapter.store.types", "stripped"),
        ("_stamps_alone (in stripped)", "adapter.store.body_stamps", "_stamps_alone"),
        ("json_pack.pack (message row)", "adapter.store.json_pack", "pack"),
        ("_processed (bind pass)", "adapter.store.fast_insert", "_processed"),
        ("Saved", "adapter.store.resources", "Saved"),
        ("_apply (a column's binds)", "adapter.store.fast_insert", "_apply"),
        ("_stamped", "adapter.store.resources", "_stamped"),
    ],
}
_THEIRS = stages._stages


def _stages() -> list[tuple[str, str | None, str]]:
    found = _SETS.get(os.environ.get("STAGES", ""))
    return _THEIRS() if found is None else found  # type: ignore[return-value]


stages._stages = _stages

if __name__ == "__main__":
    if sys.argv[1] == "split":
        stages.split(sys.argv[2], int(sys.argv[3]))
    else:
        stages.run(int(sys.argv[1]), len(sys.argv) > 2 and sys.argv[2] == "unique")
