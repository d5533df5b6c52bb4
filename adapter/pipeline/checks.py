"""The run-time check of produced resources: every primitive where it stands.

Full validation of an ORU's resources costs 4-6 ms with the fhir.resources models and
13-20 ms with the JSON schema (docs/decisions/0003); this walk costs about 0.2-0.3 ms
and catches what a mapping could get wrong: blank or control-character strings, malformed
dates, instants without a zone, bad ids and codes, non-finite numbers. Types are known from
element names (FHIR names its date elements consistently); the full validators run over
every produced resource in the tests.
"""

from __future__ import annotations

import math
from typing import Any

from adapter.errors import Issue
from adapter.fhir.primitives import CONTROL_CHARACTER, PLAIN_MAX, check_primitive
from adapter.pipeline.stored_lengths import Locate, too_long

_BY_NAME = {
    "id": "id",
    "issued": "instant",
    "lastUpdated": "instant",
    "birthDate": "date",
    "recordedDate": "dateTime",  # Condition, AllergyIntolerance: dateTime despite the name
    "receivedTime": "dateTime",
    "start": "dateTime",
    "end": "dateTime",
    "system": "uri",
    "url": "uri",
    "reference": "string",
    "status": "code",
    "gender": "code",
    "use": "code",
    "comparator": "code",
    "code": "code",
}


def _type_of(key: str, top: bool) -> str:
    if key == "id" and not top:
        return "string"  # Element.id is a string; only Resource.id is an id
    if key in _BY_NAME:
        return _BY_NAME[key]
    if key.endswith("DateTime"):
        return "dateTime"
    if key.endswith("Instant"):
        return "instant"
    if key.endswith("Date"):
        return "date"
    return "string"


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_control = CONTROL_CHARACTER.search  # is_plain_string's test, inline in _walk
_CONTAINERS = (dict, list)  # a tuple: ``dict | list`` would make a union object per test
_NUMBERS = frozenset((int, float, bool))  # neither a text nor a container


def check_resources(
    resources: list[dict[str, Any]],
    origins: dict[tuple[str, str], str | None] | None = None,
    locate: Locate | None = None,
) -> list[Issue]:
    """Issues name the element (``expression``) and, when ``origins`` knows it, the place in
    the input the resource was made from (``location``: ``OBX[3]``, an XPath, ``$.items[2]``).
    A value longer than the store keeps (adapter/pipeline/stored_lengths.py) is located
    where ``locate`` finds it in the input (``row 3, column 转诊单号``), else as the resource."""
    issues: list[Issue] = []
    for resource in resources:
        prefix = f"{resource.get('resourceType')}/{resource.get('id')}"
        found: list[Issue] = []
        _walk(resource, resource.get("resourceType", ""), prefix, found, top=True)
        where = None
        if origins:
            where = origins.get((resource.get("resourceType", ""), resource.get("id", "")))
            for issue in found:
                issue.location = where
        for long in too_long(resource):
            found.append(long.issue((locate(long.value) if locate else None) or where))
        issues.extend(found)
    return issues


def _walk(node: Any, path: Any, prefix: str, issues: list[Issue], *, top: bool = False) -> None:
    # Most values are plain strings that pass: they are judged without building their path
    # and, for the "string" type, without the general check's dispatch (0.31 -> 0.22 ms per
    # document of a generated night). ``path`` is the resource type or (parent path, key or
    # index), made text (``_path_text``) only for an issue (decision 0112).
    if type(node) is not dict:  # a list, or a subclass of dict or list: the general walk
        _walk_any(node, path, prefix, issues, top)
        return
    # a contained resource has an id of its own
    top = top or "resourceType" in node
    types = _TOP_TYPES if top else _TYPES
    rules = _TOP_RULES if top else _RULES
    for key, value in node.items():
        # the exact types first (a body is plain JSON data: text, dicts, lists); a value of
        # any other type is judged by ``_value``, as the walk before them did (decision 0132)
        kind_of_value = type(value)
        if kind_of_value is str:
            # what a text under this name needs, in one look-up (decision 0144): True for
            # the "string" type, else the set of its type's texts seen to pass
            rule = rules.get(key)
            if rule is True:
                # is_plain_string, inline (a call per string); a printable text has no
                # control character (they are all Cc), told at less cost than the search
                if (
                    value
                    and len(value) <= PLAIN_MAX
                    and not value.isspace()
                    and (value.isprintable() or not _control(value))
                ):
                    continue
                kind = "string"
                passed = _PASSED.get(kind)  # a long text seen to pass the full check
                if passed is not None and value in passed:
                    continue
            elif rule is not None:
                if value in rule:
                    continue
                kind = _kind(types, key, top)
            else:  # a name met for the first time: its rule kept, the text judged as
                # ``_value`` judges it, which is what the branches above do (decision 0149:
                # the common case, a "string" name, tested first)
                _rule(rules, types, key, top)
                _value(types, key, value, path, prefix, issues, top)
                continue
            _judge(kind, value, path, key, prefix, issues)
        elif kind_of_value is dict:
            _walk(value, (path, key), prefix, issues)
        elif kind_of_value is list:
            # the list's items here, not in a call of their own (decision 0132): a dict is
            # walked, an item that is neither a dict nor a list is not looked at (0126)
            inner = (path, key)
            for index, item in enumerate(value):
                kind_of_item = type(item)
                if kind_of_item is dict:
                    _walk(item, (inner, index, None), prefix, issues)
                elif kind_of_item is list or isinstance(item, _CONTAINERS):
                    _walk_any(item, (inner, index, None), prefix, issues, False)
        else:
            _value(types, key, value, path, prefix, issues, top)


def _walk_any(node: Any, path: Any, prefix: str, issues: list[Issue], top: bool) -> None:
    """The walk of a node that is not exactly a dict: a list's items, a dict subclass's
    values as ``_walk`` judges a dict's."""
    if isinstance(node, dict):
        top = top or "resourceType" in node
        types = _TOP_TYPES if top else _TYPES
        for key, value in node.items():
            _value(types, key, value, path, prefix, issues, top)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            if isinstance(item, _CONTAINERS):
                _walk(item, (path, index, None), prefix, issues)


def _value(
    types: dict[str, str],
    key: str,
    value: Any,
    path: Any,
    prefix: str,
    issues: list[Issue],
    top: bool,
) -> None:
    """One value of a dict judged in the general way: a text (of any ``str`` type), a
    container, a number."""
    # a number told by its exact type before the tests it fails (decision 0154: an
    # ``isinstance`` that misses asks the object its ``__class__``)
    of = type(value)
    number = of in _NUMBERS
    if not number and isinstance(value, str):
        kind = types.get(key)
        if kind is None:
            kind = _type_of(key, top)
            if len(types) < _KNOWN_NAMES:
                types[key] = kind
        if (
            kind == "string"
            and 0 < len(value) <= PLAIN_MAX
            and not value.isspace()
            and (value.isprintable() or not _control(value))
        ):
            return
        passed = _PASSED.get(kind)
        if passed is not None and value in passed:
            return
        _judge(kind, value, path, key, prefix, issues)
    elif not number and isinstance(value, _CONTAINERS):
        _walk(value, (path, key), prefix, issues)
    elif of is not int and isinstance(value, float) and not math.isfinite(value):  # NaN, ∞
        issues.append(
            Issue(
                "error",
                "value",
                f"{prefix}: not a finite number",
                expression=f"{_path_text(path)}.{key}",
            )
        )
    elif of is not float and isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        issues.append(
            Issue(
                "error",
                "value",
                f"{prefix}: integer beyond 64 bits",
                expression=f"{_path_text(path)}.{key}",
            )
        )


def _judge(kind: str, value: str, path: Any, key: str, prefix: str, issues: list[Issue]) -> None:
    """A text the quick tests above did not pass: the primitive's full check."""
    problem = check_primitive(kind, value)
    if problem:
        issues.append(
            Issue("error", "value", f"{prefix}: {problem}", expression=f"{_path_text(path)}.{key}")
        )
    else:
        _passed(kind, value)


def _path_text(path: Any) -> str:
    """``Observation.code.coding[0]`` from ((("Observation", "code"), "coding"), 0, None):
    a pair is a key, a triple a list index."""
    steps: list[str] = []
    while type(path) is tuple:
        steps.append(f".{path[1]}" if len(path) == 2 else f"[{path[1]}]")
        path = path[0]
    return str(path) + "".join(reversed(steps))


# the values of each type seen to pass (a check is a pure function of the type and the
# text): a feed repeats its code systems, codes, units and a message its times in every
# resource; bounded, emptied when full (ids, unique per resource, pass through it)
_PASSED: dict[str, set[str]] = {}
_PASSED_MAX = 4096


def _passed(kind: str, value: str) -> None:
    passed = _PASSED.get(kind)
    if passed is None:
        passed = _PASSED[kind] = set()
    elif len(passed) >= _PASSED_MAX:
        passed.clear()
    passed.add(value)


# the type of each element name met, below and at a resource's top (the names the mappings
# and API clients write: bounded, so a client's made-up names cannot grow it without end)
_TYPES: dict[str, str] = {}
_TOP_TYPES: dict[str, str] = {}
_KNOWN_NAMES = 2048
# per element name met, below and at the top, what ``_walk`` asks of a text under it: True
# for the "string" type (the plain-string test), else ``_PASSED``'s set of its type (the
# same set object, emptied in place when full); bounded as the types (decision 0144)
_RULES: dict[str, Any] = {}
_TOP_RULES: dict[str, Any] = {}


def _kind(types: dict[str, str], key: str, top: bool) -> str:
    """The type of a text under ``key`` (``_type_of``), kept in ``types``."""
    kind = types.get(key)
    if kind is None:
        kind = _type_of(key, top)
        if len(types) < _KNOWN_NAMES:
            types[key] = kind
    return kind


def _rule(rules: dict[str, Any], types: dict[str, str], key: str, top: bool) -> Any:
    kind = _kind(types, key, top)
    rule: Any = True
    if kind != "string":
        rule = _PASSED.get(kind)
        if rule is None:
            rule = _PASSED[kind] = set()
    if len(rules) < _KNOWN_NAMES:
        rules[key] = rule
    return rule
