"""Index values of a resource, derived from the search-parameter table.

``index_values(resource)`` walks every parameter's element paths and turns what it finds
into ``IndexValue``s by the parameter type and the shape of the element (a CodeableConcept,
a Coding, an Identifier, a HumanName, a Period ...). The store writes one index row per
value; the search side compares against the same normalised forms (``normalize_text``,
``normalize_reference``, ``dates.parse_range``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from adapter.fhir.dates import DEFAULT_ZONE, DateFormatError, parse_range, period_range
from adapter.fhir.search_params import RESOURCES, ParamType, SearchParam

_FILTER_RE = re.compile(r"^(?P<name>[A-Za-z0-9_]+)(?:\[(?P<key>[A-Za-z]+)=(?P<value>[^\]]*)\])?$")
_TYPE_RE = re.compile(r"^[A-Z][A-Za-z]+$")
_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
OF_TYPE = ":of-type"  # the param suffix of identifier:of-type rows
# parts of HumanName and Address that the "name" / "address" string parameters match
_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


@dataclass(frozen=True, slots=True)
class IndexValue:
    param: str
    kind: ParamType
    system: str | None = None  # token system, quantity system
    code: str | None = None  # token code, uri, quantity unit code
    value: str | None = None  # string: the text as written
    value_norm: str | None = None  # string: normalised for case/accent-insensitive matching
    date_start: datetime | None = None
    date_end: datetime | None = None
    number: float | None = None
    reference: str | None = None  # "Type/id"


def elements(resource: dict[str, Any], path: str) -> list[Any]:
    """The elements at a dotted path, lists flattened, ``name[key=value]`` filters applied."""
    nodes: list[Any] = [resource]
    for step in path.split("."):
        match = _FILTER_RE.match(step)
        if not match:
            raise ValueError(f"bad element path step {step!r} in {path!r}")
        name, key, wanted = match["name"], match["key"], match["value"]
        found: list[Any] = []
        for node in nodes:
            if not isinstance(node, dict) or name not in node:
                continue
            child = node[name]
            for item in child if isinstance(child, list) else [child]:
                if key is None or (isinstance(item, dict) and item.get(key) == wanted):
                    found.append(item)
        nodes = found
    return nodes


def normalize_text(text: str) -> str:
    """Case- and accent-insensitive form for string search (full-width letters folded)."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(folded.casefold().split())


def normalize_reference(text: str) -> str | None:
    """``Type/id`` from a relative or absolute literal reference; None for contained refs.

    Version suffixes (``/_history/2``) are dropped; ``urn:uuid:`` and other URIs that are
    not ``.../Type/id`` are kept as written.
    """
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    parts = text.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and _TYPE_RE.match(parts[-2]) and _ID_RE.match(parts[-1]):
        return f"{parts[-2]}/{parts[-1]}"
    return text


def index_values(resource: dict[str, Any], zone: tzinfo = DEFAULT_ZONE) -> list[IndexValue]:
    """The index rows' values of ``resource`` (a supported type), duplicates removed.

    A value of a parameter that is also the value of a parameter it shares rows with
    (``SearchParam.rows_of``: ``subject`` and ``patient``, ``combo-code`` and ``code``) is
    kept once, under the inner parameter's name; searches of the outer one read both.
    """
    search = RESOURCES.get(resource.get("resourceType", ""))
    if search is None:
        return []
    found: dict[str, dict[IndexValue, None]] = {}
    for param in search.params.values():
        if param.column:
            continue
        values = found.setdefault(param.name, {})
        for path in param.paths:
            for node in elements(resource, path):
                for value in _convert(param, node, zone):
                    values[value] = None
    out: list[IndexValue] = []
    for name, values in found.items():
        shared = search.params[name].rows_of[1:]
        if shared and values:
            held = {_unnamed(v, inner) for inner in shared for v in found.get(inner, ())}
            out.extend(v for v in values if _unnamed(v, name) not in held)
        else:
            out.extend(values)
    return out


def _unnamed(value: IndexValue, name: str) -> tuple[Any, ...]:
    """The value without its parameter's name (``:of-type`` rows keep their suffix)."""
    v = value
    return (
        v.param[len(name) :], v.kind, v.system, v.code, v.value, v.value_norm,
        v.date_start, v.date_end, v.number, v.reference,
    )  # fmt: skip


def patient_key(resource: dict[str, Any]) -> str | None:
    """``Patient/<id>`` of the patient the resource is about (its own for a Patient)."""
    rtype = resource.get("resourceType")
    if rtype == "Patient":
        return f"Patient/{resource['id']}" if resource.get("id") else None
    search = RESOURCES.get(rtype or "")
    if search is None:
        return None
    for name in search.patient_params:
        param = search.params[name]
        for path in param.paths:
            for node in elements(resource, path):
                for value in _references(param, node):
                    if value.reference and value.reference.startswith("Patient/"):
                        return value.reference
    return None


def _convert(param: SearchParam, node: Any, zone: tzinfo) -> Iterator[IndexValue]:
    kind = param.type
    if kind == "token":
        yield from _tokens(param.name, node)
    elif kind == "string":
        yield from _strings(param.name, node)
    elif kind == "date":
        yield from _dates(param.name, node, zone)
    elif kind == "reference":
        yield from _references(param, node)
    elif kind == "quantity":
        yield from _quantities(param.name, node)
    elif kind == "uri" and isinstance(node, str):
        yield IndexValue(param.name, "uri", code=node)


def _tokens(name: str, node: Any) -> Iterator[IndexValue]:
    # ``value``/``value_norm`` of a token row hold its text (Coding.display,
    # CodeableConcept.text, Identifier.type.text) for the ``:text`` modifier
    if isinstance(node, bool):
        yield IndexValue(name, "token", code="true" if node else "false")
    elif isinstance(node, str | int):
        yield IndexValue(name, "token", code=str(node))
    elif isinstance(node, dict):
        rows = list(_dict_tokens(name, node))
        if not rows and any(v not in (None, "", [], {}) for v in node.values()):
            # still selected by the R4 expression (an Identifier with only a system, a
            # Coding with only a display): a row without a code keeps :missing right
            system = node.get("system")
            rows = [IndexValue(name, "token", system=system if isinstance(system, str) else None)]
        yield from rows


def _dict_tokens(name: str, node: dict[str, Any]) -> Iterator[IndexValue]:
    if "coding" in node or "text" in node:  # CodeableConcept
        for coding in node.get("coding") or []:
            yield from _tokens(name, coding)
        text = node.get("text")
        if isinstance(text, str) and text.strip():
            # a concept with only text is still there (:missing, :text)
            yield IndexValue(name, "token", value=text, value_norm=normalize_text(text))
    elif "code" in node and isinstance(node["code"], str):  # Coding
        yield IndexValue(
            name,
            "token",
            system=node.get("system"),
            code=node["code"],
            **_text(node, "display"),
        )
    elif isinstance(node.get("value"), str):  # Identifier, ContactPoint
        kind = node.get("type")
        yield IndexValue(
            name,
            "token",
            system=node.get("system"),
            code=node["value"],
            **(_text(kind, "text") if isinstance(kind, dict) else {}),
        )
        for coding in (kind or {}).get("coding") or [] if isinstance(kind, dict) else []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                # identifier:of-type=<type system>|<type code>|<value>
                yield IndexValue(
                    name + OF_TYPE,
                    "token",
                    system=coding.get("system"),
                    code=coding["code"],
                    value=node["value"],
                )


def _text(node: dict[str, Any], key: str) -> dict[str, str]:
    text = node.get(key)
    if not isinstance(text, str) or not text.strip():
        return {}
    return {"value": text, "value_norm": normalize_text(text)}


def _strings(name: str, node: Any) -> Iterator[IndexValue]:
    texts: list[str] = []
    if isinstance(node, str):
        texts.append(node)
    elif isinstance(node, dict):
        parts = _NAME_PARTS if ("family" in node or "given" in node) else _ADDRESS_PARTS
        for part in parts:
            value = node.get(part)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    texts.append(item)
        if parts is _NAME_PARTS and isinstance(node.get("family"), str):
            # Chinese names are written family-first without a space: 张三 matches "张三"
            given = "".join(g for g in node.get("given") or [] if isinstance(g, str))
            if given:
                texts.append(node["family"] + given)
    for text in texts:
        if text.strip():
            yield IndexValue(name, "string", value=text, value_norm=normalize_text(text))


def _dates(name: str, node: Any, zone: tzinfo) -> Iterator[IndexValue]:
    try:
        if isinstance(node, str):
            start, end = parse_range(node, zone)
        elif isinstance(node, dict) and ("start" in node or "end" in node):
            start, end = period_range(node, zone)
        else:
            return
    except DateFormatError:
        return  # an invalid date is the validator's finding, not the index's
    yield IndexValue(name, "date", date_start=start, date_end=end)


def _references(param: SearchParam, node: Any) -> Iterator[IndexValue]:
    """One row per Reference: its literal reference as ``Type/id`` (None when it has only a
    display, an identifier or a contained ``#id``) and its identifier as system / code
    (``:identifier``). A ``narrow`` parameter (R4 ``where(resolve() is Patient)``) only
    counts literal references to its target types."""
    if isinstance(node, str):
        node = {"reference": node}
    if not isinstance(node, dict):
        return
    text = node.get("reference")
    reference = normalize_reference(text) if isinstance(text, str) else None
    identifier = node.get("identifier")
    system = code = None
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        system, code = identifier.get("system"), identifier["value"]
    if reference is not None and param.targets and "/" in reference:
        if reference.split("/", 1)[0] not in param.targets and param.narrow:
            return
    elif param.narrow:
        return
    if reference is None and code is None and not node:
        return
    yield IndexValue(param.name, "reference", system=system, code=code, reference=reference)


def _quantities(name: str, node: Any) -> Iterator[IndexValue]:
    if isinstance(node, dict) and isinstance(node.get("value"), int | float):
        if isinstance(node["value"], bool):
            return
        unit = node.get("code") or node.get("unit")
        yield IndexValue(
            name, "quantity", system=node.get("system"), code=unit, number=float(node["value"])
        )
