"""Result parameters of a search: ``_include``, ``_revinclude``, ``_sort``, ``_summary``,
``_elements``, ``_total`` (what is returned, not which resources match).

Each parser raises ``BadValue`` with a message naming the parameter and value; the caller
(``search_query.parse_search``) collects them into one OperationOutcome.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from adapter.fhir.search_params import RESOURCES, SUPPORTED_TYPES, SearchParam

SummaryMode = Literal["true", "text", "data", "count", "false"]
TotalMode = Literal["none", "estimate", "accurate"]
_ELEMENT_RE = re.compile(r"^[a-z][A-Za-z0-9]*$")


class BadValue(ValueError):
    def __init__(self, message: str, code: str = "value") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Include:
    """``_include=Source:param[:Target]`` (or ``_revinclude``): the reference parameter
    ``param`` of ``source`` type; ``param`` None is ``*`` (every reference parameter)."""

    source: str
    param: str | None
    target: str | None
    reverse: bool
    iterate: bool


@dataclass(frozen=True, slots=True)
class SortKey:
    name: str
    descending: bool
    param: SearchParam


def parse_include(raw_name: str, value: str) -> Include:
    name, _, modifier = raw_name.partition(":")
    if modifier not in ("", "iterate", "recurse"):
        raise BadValue(f"{raw_name}: only the :iterate modifier is supported", "not-supported")
    reverse = name == "_revinclude"
    pieces = value.split(":")
    if value == "*" and not reverse:
        raise BadValue(f"{raw_name}={value!r}: name the source type, e.g. Observation:*")
    if len(pieces) not in (2, 3) or not all(pieces):
        raise BadValue(f"{raw_name}={value!r}: expected SourceType:parameter[:TargetType]")
    source, param_name = pieces[0], pieces[1]
    target = pieces[2] if len(pieces) == 3 else None
    if source not in RESOURCES:
        raise BadValue(f"{raw_name}={value!r}: type {source!r} is not served", "not-supported")
    if param_name == "*":
        if target is not None:
            raise BadValue(f"{raw_name}={value!r}: a target type needs a named parameter")
        return Include(source, None, None, reverse, bool(modifier))
    param = RESOURCES[source].params.get(param_name)
    if param is None or param.type != "reference":
        raise BadValue(
            f"{raw_name}={value!r}: {source} has no reference search parameter {param_name!r}"
        )
    if target is not None and (
        target not in SUPPORTED_TYPES or (param.targets and target not in param.targets)
    ):
        raise BadValue(f"{raw_name}={value!r}: {param_name} cannot refer to {target!r}")
    return Include(source, param_name, target, reverse, bool(modifier))


COLUMN_SORTS = ("_id", "_lastUpdated")


def parse_sort(resource_type: str | None, value: str) -> tuple[SortKey, ...]:
    """``_sort=a,-b``: every declared parameter of the type (common ones for system search)."""
    names = [k.strip() for k in value.split(",")]
    if not value.strip() or any(not k for k in names):
        raise BadValue(f"_sort={value!r}: expected parameter names, each optionally with '-'")
    table = RESOURCES[resource_type].params if resource_type else RESOURCES["Patient"].params
    keys: list[SortKey] = []
    for key in names:
        name = key.removeprefix("-")
        param = table.get(name)
        if param is None or (resource_type is None and not name.startswith("_")):
            raise BadValue(
                f"_sort={value!r}: {name!r} is not a search parameter of "
                f"{resource_type or 'every type'}",
                "not-supported",
            )
        keys.append(SortKey(name, key.startswith("-"), param))
    return tuple(keys)


def parse_summary(value: str) -> SummaryMode:
    if value not in ("true", "text", "data", "count", "false"):
        raise BadValue(f"_summary={value!r}: expected true, text, data, count or false")
    return value  # type: ignore[return-value]


def parse_total(value: str) -> TotalMode:
    if value not in ("none", "estimate", "accurate"):
        raise BadValue(f"_total={value!r}: expected none, estimate or accurate")
    return value  # type: ignore[return-value]


def parse_elements(value: str) -> tuple[str, ...]:
    """Top-level element names (``Type.element`` is read as ``element``)."""
    out: list[str] = []
    for item in value.split(","):
        name = item.strip().split(".")[-1] if "." in item else item.strip()
        if not _ELEMENT_RE.match(name):
            raise BadValue(f"_elements={value!r}: {item.strip()!r} is not an element name")
        out.append(name)
    return tuple(out)
