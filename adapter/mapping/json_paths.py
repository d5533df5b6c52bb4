"""JSON as a source for mappings: reading, a small path syntax, located values, what was read.

Paths::

    $                      the document
    $.patient.name         keys (any characters but . [ ] quotes, parentheses, commas, spaces)
    $.items[0].code        an array element (0-based, as in JSONPath; [-1] is the last)
    $['检验 项目']          a key in quotes (spaces, dots ...)
    $.items[*].code        every element
    .code  .items[0]  .    relative to the current item (inside ``each``)

A path that reaches an array in ``each`` iterates its elements. Values: a string, number or
boolean reads as its text (numbers as written: 12.50 stays "12.50"); an object or array as
itself. Locations are paths from the document: ``$.items[2].code``.

Why one module of about 430 lines: the path syntax, its evaluator and the read-tracking share
one path representation; split, each part would need the others' internals.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from adapter.errors import InputTooLargeError, Issue, ParseError
from adapter.input_limits import TOO_COSTLY, over_limit
from adapter.mapping.alternatives import read_alternatives_by_peek
from adapter.mapping.decoding import decode_text
from adapter.mapping.values import text as value_text

Location = tuple[str | int, ...]
_KEY = re.compile(r"\.([^.\[\]'\"(),\s]+)")
_BRACKET = re.compile(
    r"\[\s*(?:(?P<index>-?\d+)|(?P<all>\*)|'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\")\s*\]"
)
_ALL = object()  # the [*] step


@dataclass(frozen=True, slots=True)
class JsonPath:
    text: str
    absolute: bool
    steps: tuple[Any, ...]  # str key, int index, or _ALL

    def __str__(self) -> str:
        return self.text


def compile_path(text: str) -> JsonPath:
    text = text.strip()
    if text.startswith("$"):
        absolute, pos = True, 1
    elif text.startswith("."):
        absolute, pos = False, 0
        if text == ".":
            return JsonPath(text, False, ())
    else:
        raise ValueError(
            f"{text!r} is not a JSON path: it starts with $ (the document) or "
            ". (the current item), e.g. $.patient.name or .code"
        )
    steps: list[Any] = []
    while pos < len(text):
        key = _KEY.match(text, pos)
        if key:
            steps.append(key.group(1))
            pos = key.end()
            continue
        bracket = _BRACKET.match(text, pos)
        if bracket:
            if bracket.group("index") is not None:
                steps.append(int(bracket.group("index")))
            elif bracket.group("all"):
                steps.append(_ALL)
            else:
                steps.append(
                    bracket.group("sq") if bracket.group("sq") is not None else bracket.group("dq")
                )
            pos = bracket.end()
            continue
        raise ValueError(
            f"{text!r} is not a JSON path: cannot read {text[pos:]!r} (keys are "
            ".name or ['name'], elements [0] or [*])"
        )
    return JsonPath(text, absolute, tuple(steps))


def format_location(location: Location) -> str:
    out = "$"
    for step in location:
        if isinstance(step, int):
            out += f"[{step}]"
        elif re.fullmatch(r"[^.\[\]'\"(),\s]+", step):
            out += f".{step}"
        else:
            out += "['" + step.replace("'", "\\'") + "']"
    return out


# -- reading bytes ---------------------------------------------------------------------------


@dataclass(slots=True)
class JsonDocumentData:
    data: Any
    encoding: str
    issues: list[Issue] = field(default_factory=list)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_json(
    raw: bytes, *, max_bytes: int | None = None, max_depth: int = 100
) -> JsonDocumentData:
    """Read JSON bytes: BOM or UTF-8, else GB18030 (with a warning); numbers keep how they were
    written; duplicate keys are reported; objects and arrays nested deeper than ``max_depth``
    are a ParseError (``too-costly``) at the JSON path where the limit is crossed."""
    if max_bytes is not None and len(raw) > max_bytes:
        raise InputTooLargeError(
            f"the document is {len(raw)} bytes; the limit is {max_bytes}", location="body"
        )
    issues: list[Issue] = []
    text, encoding = decode_text(raw, issues, what="JSON")
    if not text.strip():
        raise ParseError("empty input: no JSON document", location="document")
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        data = json.loads(
            text, parse_float=Decimal, parse_constant=_reject_constant, object_pairs_hook=pairs
        )
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"the document is not valid JSON: {exc.msg}",
            location=f"line {exc.lineno}, column {exc.colno}",
        ) from None
    except RecursionError:
        raise ParseError(
            "the JSON document is nested too deeply to read",
            location="document",
            code=TOO_COSTLY,
        ) from None
    except ValueError as exc:  # NaN / Infinity, integers longer than Python reads
        raise ParseError(f"the document is not valid JSON: {exc}", location="document") from None
    _check_depth(data, max_depth)
    for key in dict.fromkeys(duplicates):
        issues.append(
            Issue(
                "warning",
                "value",
                f"key {key!r} appears twice in one object; the last value is used",
                location="document",
            )
        )
    return JsonDocumentData(data, encoding, issues)


def _check_depth(data: Any, max_depth: int) -> None:
    """Objects and arrays nested at most ``max_depth`` deep (iteratively: a deep document must
    not exhaust the stack of the check meant to stop it)."""
    stack: list[tuple[Any, Location]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        if len(loc) >= max_depth:
            raise over_limit(
                f"objects and arrays are nested more than {max_depth} deep",
                max_depth,
                "max_nesting_depth",
                format_location(loc[:max_depth]),
            )
        stack.extend((item, (*loc, key)) for key, item in items)


# -- values and scopes ---------------------------------------------------------------------------


@dataclass(slots=True)
class JsonScope:
    """Where relative paths start: the document, or the item of an ``each``."""

    value: Any
    location: Location


@dataclass(slots=True)
class JsonReadTracker:
    read: set[Location] = field(default_factory=set)


class JsonNode:
    """A string, number or boolean reached by a path; knows its location."""

    __slots__ = ("loc", "value")

    def __init__(self, value: Any, loc: Location) -> None:
        self.value = value
        self.loc = loc

    @property
    def text(self) -> str:
        value = self.value
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)

    def is_empty(self) -> bool:
        return self.value is None or (isinstance(self.value, str) and not self.value.strip())

    @property
    def location(self) -> str:
        return format_location(self.loc)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<JsonNode {self.location}>"


def evaluate(path: JsonPath, root: Any, scope: JsonScope) -> list[tuple[Any, Location]]:
    current: list[tuple[Any, Location]] = [
        (root, ()) if path.absolute else (scope.value, scope.location)
    ]
    for step in path.steps:
        following: list[tuple[Any, Location]] = []
        for value, loc in current:
            if step is _ALL:
                if isinstance(value, list):
                    following.extend((item, (*loc, i)) for i, item in enumerate(value))
            elif isinstance(step, int):
                if isinstance(value, list) and -len(value) <= step < len(value):
                    index = step % len(value)
                    following.append((value[index], (*loc, index)))
            elif isinstance(value, dict) and step in value:
                following.append((value[step], (*loc, step)))
        current = following
    return current


def _value(value: Any, loc: Location) -> Any:
    return value if isinstance(value, dict | list) else JsonNode(value, loc)


class JsonSource:
    """The engine's view of one JSON document (``SourceAdapter``)."""

    # no ``resolve_text`` (adapter.mapping.evaluation.SourceAdapter): said as a class
    # attribute, so the engine's ``getattr`` finds None without raising AttributeError
    resolve_text = None

    def __init__(self, root: Any, tracker: JsonReadTracker) -> None:
        self.root = root
        self.tracker = tracker

    def resolve(self, path: JsonPath, scope: JsonScope) -> Any:
        found = evaluate(path, self.root, scope)
        if not found:
            return None
        value, loc = found[0]
        self.tracker.read.add(loc)
        return _value(value, loc)

    def peek(self, path: JsonPath, scope: JsonScope) -> str:
        found = evaluate(path, self.root, scope)
        return value_text(_value(*found[0])) if found else ""

    def read_alternatives(self, paths: Any, scope: JsonScope, chosen: str) -> None:
        """``first``'s alternatives not taken (adapter.mapping.closures): each read when its
        text is empty or ``chosen`` (``peek``, then ``resolve``), left unread when it holds
        another value (decision 0144: one call from the generated ``first``)."""
        read_alternatives_by_peek(self, paths, scope, chosen)

    def iterate_path(self, path: JsonPath, scope: JsonScope) -> list[tuple[Any, Any]]:
        """Every match; a match that is an array gives its elements. Each item becomes the
        scope its relative paths start from."""
        out: list[tuple[Any, Any]] = []
        for value, loc in evaluate(path, self.root, scope):
            items = (
                [(v, (*loc, i)) for i, v in enumerate(value)]
                if isinstance(value, list)
                else [(value, loc)]
            )
            for item, item_loc in items:
                if item is None:
                    continue
                if not isinstance(item, dict | list):
                    self.tracker.read.add(item_loc)
                out.append((_value(item, item_loc), JsonScope(item, item_loc)))
        return out

    def iterate_name(self, name: str, scope: JsonScope) -> list[Any]:
        return []  # JSON has no groups: the loader asks for a path (each: =...)

    def scope_for(self, item: Any, scope: JsonScope) -> JsonScope:
        return scope

    def describe(self, scope: JsonScope) -> str | None:
        return format_location(scope.location)


# -- matching a message mapping -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JsonMatch:
    """``match:`` of a JSON message mapping: values some paths must have, paths that must
    have a value."""

    when: tuple[tuple[JsonPath, str], ...]
    exists: tuple[JsonPath, ...]

    def matches(self, root: Any) -> bool:
        scope = JsonScope(root, ())
        for path, wanted in self.when:
            found = evaluate(path, root, scope)
            if not found or _text(found[0][0]) != wanted:
                return False
        for path in self.exists:
            found = evaluate(path, root, scope)
            if not found or found[0][0] in (None, "", [], {}):
                return False
        return True

    def describe(self) -> str:
        parts = [f"{p.text} = {v!r}" for p, v in self.when]
        parts.extend(f"{p.text} exists" for p in self.exists)
        return ", ".join(parts)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def compile_match(when: dict[str, Any] | None, exists: list[str] | None) -> JsonMatch:
    tests = []
    for text, wanted in (when or {}).items():
        path = compile_path(text)
        if not path.absolute:
            raise ValueError(f"{text!r}: match paths start at the document ($)")
        tests.append((path, _text(wanted)))
    present = []
    for text in exists or []:
        path = compile_path(text)
        if not path.absolute:
            raise ValueError(f"{text!r}: match paths start at the document ($)")
        present.append(path)
    return JsonMatch(tuple(tests), tuple(present))


# -- the silent-drop report ---------------------------------------------------------------------


def _carries(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_carries(v) for v in value.values())
    if isinstance(value, list):
        return any(_carries(v) for v in value)
    return value is not None and not (isinstance(value, str) and not value.strip())


def unread(
    root: Any,
    tracker: JsonReadTracker,
    ignore: list[JsonPath],
    clinical: frozenset[str] = frozenset(),
) -> list[tuple[str, str, bool]]:
    """(location, what, clinical) for every value no rule read, unless ignored; an object or
    array nothing inside which was read is listed once. ``clinical`` names the keys whose
    values carry clinical content (``*``: every key and array item)."""
    ignored = {loc for path in ignore for _, loc in evaluate(path, root, JsonScope(root, ()))}
    touched: set[Location] = set()
    for loc in tracker.read:
        for end in range(len(loc) + 1):
            touched.add(loc[:end])
    out: list[tuple[str, str, bool]] = []

    def clinical_inside(value: Any, loc: Location) -> bool:
        if "*" in clinical or any(isinstance(k, str) and k in clinical for k in loc):
            return _carries(value)
        if isinstance(value, dict):
            return any(clinical_inside(v, (*loc, k)) for k, v in value.items())
        if isinstance(value, list):
            return any(clinical_inside(v, (*loc, i)) for i, v in enumerate(value))
        return False

    def walk(value: Any, loc: Location) -> None:
        if loc in ignored or (loc in tracker.read and not isinstance(value, dict | list)):
            return  # an object or array read as a value does not count for what is inside
        if loc not in touched:
            kept = _without_ignored(value, loc, ignored)
            if _carries(kept):
                what = (
                    "value"
                    if not isinstance(value, dict | list)
                    else "object"
                    if isinstance(value, dict)
                    else "array"
                )
                out.append((format_location(loc), what, clinical_inside(kept, loc)))
            return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*loc, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, (*loc, index))

    walk(root, ())
    return out


def _without_ignored(value: Any, loc: Location, ignored: set[Location]) -> Any:
    if not ignored:
        return value
    if isinstance(value, dict):
        return {
            k: _without_ignored(v, (*loc, k), ignored)
            for k, v in value.items()
            if (*loc, k) not in ignored
        }
    if isinstance(value, list):
        return [
            _without_ignored(v, (*loc, i), ignored)
            for i, v in enumerate(value)
            if (*loc, i) not in ignored
        ]
    return value
