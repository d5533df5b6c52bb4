"""Golden files: expected output stored beside the input, compared field by field.

``UPDATE_GOLDENS=1 pytest tests/mappings`` rewrites them from the current output; review the
git diff before committing (a golden is a claim about what is right, not a snapshot).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

UPDATE = os.environ.get("UPDATE_GOLDENS") == "1"


def _short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)[:120]


def diff_json(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Readable differences: one line per differing field, with its path."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[str] = []
        for key in sorted(set(expected) | set(actual), key=str):
            here = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{here}: missing (expected {_short(expected[key])})")
            elif key not in expected:
                out.append(f"{here}: unexpected {_short(actual[key])}")
            else:
                out.extend(diff_json(expected[key], actual[key], here))
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        out = []
        if len(expected) != len(actual):
            out.append(f"{path}: {len(actual)} items, expected {len(expected)}")
        for index, (e, a) in enumerate(zip(expected, actual, strict=False)):
            out.extend(diff_json(e, a, f"{path}[{index}]"))
        return out
    if expected != actual:
        return [f"{path}: {json.dumps(actual, ensure_ascii=False)} != expected "
                f"{json.dumps(expected, ensure_ascii=False)}"]
    return []


def check_golden(path: Path, actual: Any) -> list[str]:
    """Compare with the golden file (or write it when UPDATE_GOLDENS=1 or it is missing)."""
    if UPDATE or not path.exists():
        path.write_text(json.dumps(actual, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return [] if UPDATE else [f"{path.name} did not exist; written now, review and commit it"]
    expected = json.loads(path.read_text(encoding="utf-8"))
    return diff_json(expected, actual)
