"""The value sets ``:in`` / ``:not-in`` understand: the adapter's own.

Each CodeSystem the adapter publishes (adapter/data/fhir/, content ``complete``) has the
implicit value set "all its codes", named by the CodeSystem's ``valueSet`` or, when that is
absent, by its ``url``. Other value sets would need a terminology server; they are refused
with the list of the known ones.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def known_value_sets() -> dict[str, frozenset[tuple[str, str]]]:
    """Value set URL -> its (system, code) pairs."""
    folder = resources.files("adapter.data").joinpath("fhir")
    out: dict[str, frozenset[tuple[str, str]]] = {}
    for item in folder.iterdir():
        if not item.name.endswith(".json"):
            continue
        body: dict[str, Any] = json.loads(item.read_text(encoding="utf-8"))
        if body.get("resourceType") != "CodeSystem" or body.get("content") != "complete":
            continue
        system = body["url"]
        codes = frozenset((system, code) for code in _codes(body.get("concept") or []))
        out[system] = codes
        if body.get("valueSet"):
            out[body["valueSet"]] = codes
    return out


def expand(url: str) -> frozenset[tuple[str, str]] | None:
    """The codes of a known value set; None for one the adapter does not know."""
    return known_value_sets().get(url)


def _codes(concepts: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for concept in concepts:
        out.append(concept["code"])
        out.extend(_codes(concept.get("concept") or []))
    return out
