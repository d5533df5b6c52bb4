"""Index values of a resource, derived from the search-parameter table.

``index_values(resource)`` walks every parameter's element paths and turns what it finds
into ``IndexValue``s by the parameter type and the shape of the element (a CodeableConcept,
a Coding, an Identifier, a HumanName, a Period ...). The store writes one index row per
value; the search side compares against the same normalised forms (``normalize_text``,
``normalize_reference``, ``dates.parse_range``). Each type's parameters are compiled once
(``_plan``: parsed paths, chosen converters), as this runs for every stored resource
(decision 0047, "Search index values, compiled").
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from functools import cache, lru_cache
from operator import attrgetter
from typing import Any

import orjson

from adapter.fhir.dates import DEFAULT_ZONE, DateFormatError, parse_range, period_range
from adapter.fhir.search_params import RESOURCES, ParamType, SearchParam

_FILTER_RE = re.compile(r"^(?P<name>[A-Za-z0-9_]+)(?:\[(?P<key>[A-Za-z]+)=(?P<value>[^\]]*)\])?$")
_TYPE_RE = re.compile(r"^[A-Z][A-Za-z]+$")
_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
OF_TYPE = ":of-type"  # the param suffix of identifier:of-type rows
# parts of HumanName and Address that the "name" / "address" string parameters match
_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


# not frozen: a frozen dataclass sets each field through object.__setattr__, which made
# its construction (~90 per message in bulk ingest) 5x dearer; hashed by value as before
# (the dedupe below), so it must not be changed once made
@dataclass(slots=True, unsafe_hash=True)
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
    # the store's index row of this value without its resource (adapter/store/resources.py
    # ``_index_tuple``), derived from the fields above once: a memoised value is shared by
    # every resource having it (``_MEMO``). Neither compared nor hashed
    row: tuple[Any, ...] | None = field(default=None, compare=False, repr=False)


def elements(resource: dict[str, Any], path: str) -> list[Any]:
    """The elements at a dotted path, lists flattened, ``name[key=value]`` filters applied."""
    return _walk(resource, _steps(path))


@lru_cache(maxsize=1024)
def _steps(path: str) -> tuple[tuple[str, str | None, str | None], ...]:
    """``path`` parsed once: (element name, filter key or None, wanted value) per step."""
    out = []
    for step in path.split("."):
        match = _FILTER_RE.match(step)
        if not match:
            raise ValueError(f"bad element path step {step!r} in {path!r}")
        out.append((match["name"], match["key"], match["value"]))
    return tuple(out)


def _walk(
    resource: dict[str, Any], steps: tuple[tuple[str, str | None, str | None], ...]
) -> list[Any]:
    nodes: list[Any] = [resource]
    for name, key, wanted in steps:
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
    if text.isascii():  # NFKD leaves ASCII as it is and no ASCII character is combining
        return " ".join(text.casefold().split())
    folded = unicodedata.normalize("NFKD", text).translate(_combining_marks())
    return " ".join(folded.casefold().split())


@cache
def _combining_marks() -> dict[int, None]:
    """A ``str.translate`` table deleting every character ``unicodedata.combining`` marks
    (about 900; built on first use, ~50 ms): one C call instead of a test per character."""
    return {c: None for c in range(sys.maxunicode + 1) if unicodedata.combining(chr(c))}


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
    rtype = resource.get("resourceType", "")
    # the parameters' paths whose first element the resource has, for the resource's
    # type and its elements' names in order: a translator's resources of one type have
    # the same few shapes (decision 0153)
    shape_key = (rtype, *resource)
    shape = _SHAPES.get(shape_key)
    if shape is None:
        shape = _shape(rtype, shape_key[1:])
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        _SHAPES[shape_key] = shape
    paths, groups = shape
    if not groups:
        return []
    memo = _MEMO
    lists: list[list[IndexValue]] = []  # each group's values, in the groups' order
    values: list[IndexValue] = []
    for starts, name, first, steps, convert, narrowing in paths:
        if starts:  # the first path of a parameter
            values = []
            lists.append(values)
        if steps is None:  # one step, no filter: the element itself, lists flattened
            child = resource[first]
            if child.__class__ is list:
                nodes = child
            else:
                nodes = child if isinstance(child, list) else (child,)
        else:
            nodes = _walk(resource, steps)
        for node in nodes:
            # a node's values depend on the node, the parameter and the zone alone: a
            # batch's messages repeat a concept's codes and their times (a text and a
            # CodeableConcept are memoised; a Reference or an Identifier costs less to
            # convert again than to look up: most are met once, decision 0113)
            if node.__class__ is str:
                key = (convert, name, zone, node)
            elif narrowing is None:
                if convert is _tokens and node.__class__ is dict and "coding" in node:
                    key = (convert, name, zone, _text_of(node))
                else:
                    convert(name, node, zone, values)
                    continue
            elif (
                node.__class__ is dict
                and len(node) == 1
                and (text := node.get("reference")).__class__ is str
            ):
                # a bare literal Reference: its value is that of the text alone. The
                # patient's, the performing organisation's come back in every resource of
                # a message: memoised (a memo of their own, so that they never push the
                # codes out of ``_MEMO``); a message's own resources are named once
                key = (convert, name, text)
                done = _REFERENCE_MEMO.get(key)
                if done is None:
                    done = _bare_reference(name, narrowing, text)
                    if text.startswith(_SHARED_TARGETS):
                        if len(_REFERENCE_MEMO) >= _MEMO_MAX:
                            _REFERENCE_MEMO.clear()
                        _REFERENCE_MEMO[key] = done
                values.extend(done)
                continue
            else:
                convert(name, node, zone, values)
                continue
            done = memo.get(key)
            if done is None:
                start = len(values)
                convert(name, node, zone, values)
                if key[-1] is not None:  # None: not JSON (``_text_of``)
                    if len(memo) >= _MEMO_MAX:
                        memo.clear()
                    memo[key] = tuple(values[start:])
            else:
                values.extend(done)
    out: list[IndexValue] = []
    for (name, inner), values in zip(groups, lists, strict=True):
        # dedupe in first-seen order. Most parameters with several values have none twice:
        # their references and codes alone differ already (equal values have equal ones);
        # then their fields compared in C (a value's own hash is Python's)
        if (
            len(values) > 1
            and len(set(map(_SOME, values))) < len(values)
            and len(set(map(_FIELDS, values))) < len(values)
        ):
            values = list(dict.fromkeys(values))
        if inner and values:
            # the values the inner parameters' rows hold (their own lists, before dedupe),
            # without their names: this parameter's same values are left to them
            held = set()
            for size, at in inner:
                for w in lists[at]:
                    held.add((w.param[size:], _REST(w)))
            if held:
                size = len(name)
                for v in values:
                    if (v.param[size:], _REST(v)) not in held:
                        out.append(v)
                continue
        out.extend(values)
    return out


# a value's fields as its equality compares them (every field but ``row``)
_FIELDS = attrgetter(
    "param", "kind", "system", "code", "value", "value_norm", "date_start", "date_end",
    "number", "reference",
)  # fmt: skip
# two of those fields: values with other ones are not equal
_SOME = attrgetter("reference", "code")
# a value without its parameter's name, after its suffix (``_unnamed`` in two parts)
_REST = attrgetter(
    "kind", "system", "code", "value", "value_norm", "date_start", "date_end", "number", "reference"
)


# (resource type, its elements' names in order) -> ``_shape``'s answer; emptied when full
_SHAPES: dict[tuple[Any, ...], tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
_SHAPES_MAX = 1024


def _shape(rtype: Any, keys: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """The parameters of ``rtype`` (``_plan``) having a path whose first element is one of
    ``keys``: those paths in plan order, each (whether it is its parameter's first here,
    the parameter, first element, steps, converter, ``_REFERENCES``' entry of the converter
    or None), and per parameter (its name, (the length of the name, the place here) of
    each parameter whose rows hold its values, when here). Nothing for a type without
    parameters."""
    search = RESOURCES.get(rtype)
    if search is None:
        return (), ()
    present = set(keys)
    kept = []
    for name, paths, convert, shared in _plan(search.type):
        mine = tuple(path for path in paths if path[0] in present)
        if mine:
            kept.append((name, mine, convert, shared))
    at = {name: n for n, (name, _, _, _) in enumerate(kept)}
    flat = tuple(
        (m == 0, name, first, steps, convert, _REFERENCES.get(convert))
        for name, mine, convert, _ in kept
        for m, (first, steps) in enumerate(mine)
    )
    groups = tuple(
        (name, tuple((len(i), at[i]) for i in shared if i in at)) for name, _, _, shared in kept
    )
    return flat, groups


# (converter, parameter, zone, the node: a str as it is, another value as its orjson text)
# -> the values the converter gave it. ``IndexValue``s are never changed once made: shared
# by every resource with that node. Emptied when full (about 4 bulk batches of lab
# messages: the references to a message's own resources are met once; the codes, units and
# the facility's references come back at once): a few MB at most
_MEMO: dict[tuple[Any, ...], tuple[IndexValue, ...]] = {}
_MEMO_MAX = 4096
# (converter, parameter, reference text) -> the values of a Reference with nothing else
_REFERENCE_MEMO: dict[tuple[Any, ...], tuple[IndexValue, ...]] = {}


def _text_of(node: Any) -> bytes | None:
    """The node's orjson text (equal texts, equal JSON values: ``1`` and ``1.0`` and
    ``true`` apart); None for a value orjson does not write (never memoised)."""
    try:
        text = orjson.dumps(node, option=_STRICT)
    except orjson.JSONEncodeError:
        return None
    # orjson writes NaN and infinities as null: a text with a null is not told apart
    # (``find``: ``in`` first tries the operand as a byte value, a formatted TypeError each time)
    return None if text.find(b"null") >= 0 else text


# a datetime, dataclass or subclass of str, int, dict or list in a node: not JSON, not
# memoised (its text would be that of another value)
_STRICT = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


# the compiled form of a type's parameters, in table order: (name, paths, converter,
# the names of the parameters whose rows hold its values). A path is (its first element,
# its steps, or None when it is that one element without a filter).
_Convert = Callable[[str, Any, tzinfo, list[IndexValue]], None]
_Path = tuple[str, tuple[tuple[str, str | None, str | None], ...] | None]
_Plan = tuple[tuple[str, tuple[_Path, ...], _Convert, tuple[str, ...]], ...]


@cache
def _plan(resource_type: str) -> _Plan:
    """The parameters of ``resource_type`` compiled once (paths parsed, converter chosen)."""
    out = []
    for param in RESOURCES[resource_type].params.values():
        if param.column:
            continue
        paths = []
        for path in param.paths:
            steps = _steps(path)
            one = len(steps) == 1 and steps[0][1] is None
            paths.append((steps[0][0], None if one else steps))
        out.append((param.name, tuple(paths), _converter(param), param.rows_of[1:]))
    return tuple(out)


@cache
def meta_params(resource_type: str) -> tuple[frozenset[str], dict[str, int]] | None:
    """The parameters of ``resource_type`` read from ``meta`` alone, and every parameter's
    place in ``index_values``' order; None when a resource changed in ``meta`` could not
    keep its other rows (a parameter reading ``meta`` and other elements, or sharing rows
    with another: ``index_values`` would not give its values apart)."""
    if resource_type not in RESOURCES:
        return None
    plan = _plan(resource_type)
    names: set[str] = set()
    for name, paths, _, shared in plan:
        firsts = {first for first, _ in paths}
        if "meta" in firsts:
            if firsts != {"meta"} or shared:
                return None
            names.add(name)
    if any(names & set(shared) for _, _, _, shared in plan):
        return None
    return frozenset(names), {name: n for n, (name, _, _, _) in enumerate(plan)}


# the reference parameters' converters (``_converter``) -> their (targets, narrow): their
# values depend on the reference alone, not on the zone
_REFERENCES: dict[_Convert, tuple[tuple[str, ...], bool]] = {}
# the references that come back message after message (the others are not memoised)
_SHARED_TARGETS = ("Patient/", "Organization/", "Practitioner", "Location/", "Device/")


def _bare_reference(
    name: str, narrowing: tuple[tuple[str, ...], bool], text: str
) -> tuple[IndexValue, ...]:
    """``_reference``'s value of ``{"reference": text}`` (a Reference with nothing else),
    as a tuple of none or one."""
    targets, narrow = narrowing
    reference = _normalized_reference(text)
    if reference is not None and targets and "/" in reference:
        if narrow and reference.split("/", 1)[0] not in targets:
            return ()
    elif narrow:
        return ()
    # (the node has ``reference``: never the value-less Reference ``_reference`` skips)
    return (IndexValue(name, "reference", None, None, None, None, None, None, None, reference),)


def _converter(param: SearchParam) -> _Convert:
    kind = param.type
    if kind == "reference":
        targets, narrow = param.targets, param.narrow

        def references(name: str, node: Any, zone: tzinfo, out: list[IndexValue]) -> None:
            value = _reference(name, targets, narrow, node)
            if value is not None:
                out.append(value)

        _REFERENCES[references] = (targets, narrow)
        return references
    return _CONVERTERS[kind]


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
    for first, steps in _patient_paths(rtype or ""):
        if first not in resource:
            continue
        if steps is None:
            child = resource[first]
            nodes = child if isinstance(child, list) else (child,)
        else:
            nodes = _walk(resource, steps)
        for node in nodes:
            # ``_reference``'s literal reference, without its row
            text = node if isinstance(node, str) else None
            if isinstance(node, dict):
                text = node.get("reference")
            if isinstance(text, str):
                reference = _normalized_reference(text)
                if reference is not None and reference.startswith("Patient/"):
                    return reference
    return None


@cache
def _patient_paths(resource_type: str) -> tuple[_Path, ...]:
    """The paths of ``resource_type``'s patient parameters in order, as ``_plan`` has them,
    without those whose reference ``_reference`` would never give as a Patient's (a
    ``narrow`` parameter not targeting Patient)."""
    search = RESOURCES.get(resource_type)
    if search is None:
        return ()
    out: list[_Path] = []
    for name in search.patient_params:
        param = search.params[name]
        if param.narrow and "Patient" not in param.targets:
            continue
        for path in param.paths:
            steps = _steps(path)
            one = len(steps) == 1 and steps[0][1] is None
            out.append((steps[0][0], None if one else steps))
    return tuple(out)


def _tokens(name: str, node: Any, zone: tzinfo, out: list[IndexValue]) -> None:
    # ``value``/``value_norm`` of a token row hold its text (Coding.display,
    # CodeableConcept.text, Identifier.type.text) for the ``:text`` modifier
    if isinstance(node, dict):
        before = len(out)
        _dict_tokens(name, node, zone, out)
        if len(out) == before and any(v not in (None, "", [], {}) for v in node.values()):
            # still selected by the R4 expression (an Identifier with only a system, a
            # Coding with only a display): a row without a code keeps :missing right
            system = node.get("system")
            out.append(
                IndexValue(name, "token", system=system if isinstance(system, str) else None)
            )
    elif isinstance(node, bool):
        out.append(IndexValue(name, "token", code="true" if node else "false"))
    elif isinstance(node, str | int):
        out.append(IndexValue(name, "token", code=str(node)))


def _dict_tokens(name: str, node: dict[str, Any], zone: tzinfo, out: list[IndexValue]) -> None:
    if "coding" in node or "text" in node:  # CodeableConcept
        first = len(out)
        for coding in node.get("coding") or []:
            _tokens(name, coding, zone, out)
        text = node.get("text")
        if isinstance(text, str) and text.strip():
            norm = normalize_text(text)
            # a concept with only text is still there (:missing, :text); a text that one of
            # its codings' displays already gives (the usual lab result: text = the local
            # item's display) is not written twice: :text finds the same resources and the
            # coding row keeps the concept there (decision 0067)
            if not any(v.value_norm == norm for v in out[first:]):
                out.append(IndexValue(name, "token", value=text, value_norm=norm))
    elif "code" in node and isinstance(node["code"], str):  # Coding
        out.append(_token(name, node.get("system"), node["code"], _text(node, "display")))
    elif isinstance(node.get("value"), str):  # Identifier, ContactPoint
        kind = node.get("type")
        text = _text(kind, "text") if isinstance(kind, dict) else None
        out.append(_token(name, node.get("system"), node["value"], text))
        for coding in (kind or {}).get("coding") or [] if isinstance(kind, dict) else []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                # identifier:of-type=<type system>|<type code>|<value>
                out.append(
                    IndexValue(
                        name + OF_TYPE,
                        "token",
                        system=coding.get("system"),
                        code=coding["code"],
                        value=node["value"],
                    )
                )


def _text(node: dict[str, Any], key: str) -> str | None:
    """``node[key]`` when it is a string with more than white space."""
    text = node.get(key)
    return text if isinstance(text, str) and text.strip() else None


def _strings(name: str, node: Any, zone: tzinfo, out: list[IndexValue]) -> None:
    if isinstance(node, str):
        texts = [node]
    elif isinstance(node, dict):
        texts = []
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
    else:
        return
    for text in texts:
        if text.strip():
            out.append(IndexValue(name, "string", value=text, value_norm=normalize_text(text)))


# a message's resources repeat its few times (each result's effective and issued times):
# parsed once (the range is two immutable datetimes; an invalid text raises each time)
_parse_range = lru_cache(maxsize=4096)(parse_range)


def _dates(name: str, node: Any, zone: tzinfo, out: list[IndexValue]) -> None:
    try:
        if isinstance(node, str):
            start, end = _parse_range(node, zone)
        elif isinstance(node, dict) and ("start" in node or "end" in node):
            start, end = period_range(node, zone)
        else:
            return
    except DateFormatError:
        return  # an invalid date is the validator's finding, not the index's
    out.append(IndexValue(name, "date", date_start=start, date_end=end))


# a message names its patient, performer and organisation from most of its resources, and
# a feed names the same organisations and practitioners message after message: each text
# normalised once (a str in, an immutable str or None out; decision 0050, amended
# 2026-12-05 bulkcpu)
_normalized_reference = lru_cache(maxsize=8192)(normalize_reference)


def _reference(name: str, targets: tuple[str, ...], narrow: bool, node: Any) -> IndexValue | None:
    """The row of one Reference: its literal reference as ``Type/id`` (None when it has only
    a display, an identifier or a contained ``#id``) and its identifier as system / code
    (``:identifier``). A ``narrow`` parameter (R4 ``where(resolve() is Patient)``) only
    counts literal references to its target types."""
    if isinstance(node, str):
        node = {"reference": node}
    if not isinstance(node, dict):
        return None
    text = node.get("reference")
    reference = _normalized_reference(text) if isinstance(text, str) else None
    identifier = node.get("identifier")
    system = code = None
    if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
        system, code = identifier.get("system"), identifier["value"]
    if reference is not None and targets and "/" in reference:
        if reference.split("/", 1)[0] not in targets and narrow:
            return None
    elif narrow:
        return None
    # a Reference with nothing but extensions (data-absent-reason: the value is unknown,
    # as the HL7 v3 Coverage's payor) has no value to find: no row, so ``:missing=true``
    if reference is None and code is None and not set(node) - {"id", "extension"}:
        return None
    return IndexValue(name, "reference", system=system, code=code, reference=reference)


def _quantities(name: str, node: Any, zone: tzinfo, out: list[IndexValue]) -> None:
    if isinstance(node, dict) and isinstance(node.get("value"), int | float):
        if isinstance(node["value"], bool):
            return
        unit = node.get("code") or node.get("unit")
        out.append(
            IndexValue(
                name, "quantity", system=node.get("system"), code=unit, number=float(node["value"])
            )
        )


def _uris(name: str, node: Any, zone: tzinfo, out: list[IndexValue]) -> None:
    if isinstance(node, str):
        out.append(IndexValue(name, "uri", code=node))


_CONVERTERS: dict[str, _Convert] = {
    "token": _tokens,
    "string": _strings,
    "date": _dates,
    "quantity": _quantities,
    "uri": _uris,
}


def _token(name: str, system: Any, code: str, text: str | None) -> IndexValue:
    """A token row: system|code, with the text that goes with it (display, type text)."""
    return IndexValue(
        name,
        "token",
        system=system,
        code=code,
        value=text,
        value_norm=normalize_text(text) if text else None,
    )
