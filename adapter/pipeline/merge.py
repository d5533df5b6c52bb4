"""Merging a newly made resource with the stored one where facts accumulate.

A person is known to several facilities: each message names them with the numbers its
own facility uses. The Patient made from a township's message must not erase the county
hospital's record number, so for these types the listed elements are the union of what
is stored and what is new (new first, duplicates dropped); an element the new message does
not give at all (a township LIS that sends no birth date) keeps its stored value; an
element it gives replaces the stored one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

ACCUMULATING: dict[str, tuple[str, ...]] = {
    "Patient": ("identifier", "telecom", "address"),
}


def merge_with_stored(resource: dict[str, Any],
                      read: Callable[[str, str], dict[str, Any] | None]) -> dict[str, Any]:
    elements = ACCUMULATING.get(resource["resourceType"])
    if not elements:
        return resource
    stored = read(resource["resourceType"], resource["id"])
    if not stored:
        return resource
    merged = dict(resource)
    for name, value in stored.items():
        if name not in merged and name != "meta":
            merged[name] = value
    for name in elements:
        items = list(resource.get(name) or [])
        seen = {orjson.dumps(i, option=orjson.OPT_SORT_KEYS) for i in items}
        for item in stored.get(name) or []:
            key = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
            if key not in seen:
                seen.add(key)
                items.append(item)
        if items:
            merged[name] = items
    return merged
