"""Field-level differences between two FHIR JSON resources: added, removed, changed paths
(``Observation.code.coding[1].display``), without ``meta`` (the store's stamps)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_INDEX = re.compile(r"\[\d+\]")


@dataclass(slots=True)
class Difference:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def as_dict(self) -> dict[str, list[str]]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


def without_meta(resource: dict[str, Any] | None) -> dict[str, Any] | None:
    if resource is None:
        return None
    return {k: v for k, v in resource.items() if k != "meta"}


def difference(old: Any, new: Any, path: str) -> Difference:
    found = Difference()
    _walk(old, new, path, found)
    return found


def _walk(old: Any, new: Any, path: str, found: Difference) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            here = f"{path}.{key}"
            if key not in new:
                found.removed.append(here)
            elif key not in old:
                found.added.append(here)
            else:
                _walk(old[key], new[key], here, found)
    elif isinstance(old, list) and isinstance(new, list):
        for number in range(max(len(old), len(new))):
            here = f"{path}[{number}]"
            if number >= len(new):
                found.removed.append(here)
            elif number >= len(old):
                found.added.append(here)
            else:
                _walk(old[number], new[number], here, found)
    elif old != new:
        found.changed.append(path)


def general(path: str) -> str:
    """The path without list positions: where a rule writes, whichever repetition."""
    return _INDEX.sub("", path)
