"""Golden files: expected output stored beside the input, compared field by field.

``UPDATE_GOLDENS=1 pytest tests/mappings`` (or ``adapter mappings test --update``) rewrites
them from the current output; review the git diff before committing (a golden is a claim
about what is right, not a snapshot). The diff itself lives in adapter/mapping/golden.py, so
the tests and ``adapter mappings test`` report differences the same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from adapter.mapping.golden import diff_json, write_golden

UPDATE = os.environ.get("UPDATE_GOLDENS") == "1"


def check_golden(path: Path, actual: Any) -> list[str]:
    """Compare with the golden file (or write it when UPDATE_GOLDENS=1 or it is missing)."""
    if UPDATE or not path.exists():
        write_golden(path, actual)
        return [] if UPDATE else [f"{path.name} did not exist; written now, review and commit it"]
    expected = json.loads(path.read_text(encoding="utf-8"))
    return diff_json(expected, actual)


__all__ = ["check_golden", "diff_json"]
