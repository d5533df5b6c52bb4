"""Parsing FHIR search query parameters into criteria the store can run.

``parse_search(type, [(name, value), ...])`` checks every parameter against the
search-parameter table and returns ``Criterion``s: values inside one parameter
(comma-separated) are alternatives (OR), repeated parameters must all hold (AND).
Every problem found is reported at once in one ``SearchError`` naming the parameter and
the value. Unknown parameters raise too, unless the search is lenient; then they are
returned in ``ignored``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Literal

from adapter.errors import Issue, SearchError
from adapter.fhir.dates import DEFAULT_ZONE, DateFormatError, parse_range
from adapter.fhir.index_values import normalize_reference, normalize_text
from adapter.fhir.search_params import COMMON, RESOURCES, SUPPORTED_TYPES, SearchParam
from adapter.fhir.search_results import (
    BadValue,
    Include,
    SortKey,
    SummaryMode,
    TotalMode,
    parse_elements,
    parse_include,
    parse_sort,
    parse_summary,
    parse_total,
)
from adapter.fhir.value_sets import expand, known_value_sets

Prefix = Literal["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
PREFIXES: tuple[str, ...] = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
# Result parameters this server understands; the rest of "_..." is unsupported. ``_format``
# (JSON or XML) and ``_pretty`` are answered by adapter/api/negotiation.py, which takes them
# out of the query before a search is parsed; ``_format`` is listed so that a search given
# it here anyway (a direct caller) does not refuse it.
RESULT_PARAMS = (
    "_count",
    "_offset",
    "_sort",
    "_total",
    "_summary",
    "_elements",
    "_format",
    "_include",
    "_revinclude",
)

_MODIFIERS: dict[str, tuple[str, ...]] = {
    "token": ("missing", "not", "text", "of-type", "in", "not-in"),
    "string": ("missing", "exact", "contains"),
    "date": ("missing",),
    "reference": ("missing", "identifier"),  # plus a target type, e.g. subject:Patient
    "quantity": ("missing",),
    "uri": ("missing",),
}
_PLUS_AS_SPACE = re.compile(r"(?<=\d) (\d{2}:\d{2})$")
# the largest _count / _offset / offset taken: a 32-bit signed integer, far beyond any result
MAX_PAGING_NUMBER = 2**31 - 1
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True, slots=True)
class TokenValue:
    code: str | None  # None: any code ("system|")
    system: str | None  # with system_mode "given"
    system_mode: Literal["any", "none", "given"]  # "code", "|code", "system|code"


@dataclass(frozen=True, slots=True)
class OfTypeValue:
    """``identifier:of-type=<type system>|<type code>|<value>``."""

    system: str
    code: str
    value: str


@dataclass(frozen=True, slots=True)
class CodesValue:
    """``:in`` / ``:not-in``: the (system, code) pairs of a value set."""

    url: str
    codes: frozenset[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class DateValue:
    prefix: Prefix
    start: datetime  # [start, end) in UTC
    end: datetime


@dataclass(frozen=True, slots=True)
class QuantityValue:
    prefix: Prefix
    number: float
    low: float  # implied precision: 5.4 means [5.35, 5.45)
    high: float
    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    references: tuple[str, ...]  # any of these "Type/id"
    id_only: str | None = None  # bare id on a parameter that may point to any type


Value = (
    TokenValue | OfTypeValue | CodesValue | DateValue | QuantityValue | ReferenceValue | str | bool
)


@dataclass(frozen=True, slots=True)
class Criterion:
    """One search parameter occurrence: any of ``values`` must match (OR).

    A chained one (``subject:Patient.identifier=x``) has ``chain``: the types the reference
    may point to and the criterion those resources must meet; ``values`` is then empty."""

    param: SearchParam
    modifier: str | None
    values: tuple[Value, ...]  # str for string/uri (and token :text), bool for :missing
    chain: tuple[tuple[str, ...], Criterion] | None = None


@dataclass(frozen=True, slots=True)
class HasCriterion:
    """``_has:Source:reference:criterion``: some ``source`` resource whose reference
    parameter ``reference`` points here meets ``inner``."""

    source: str
    reference: SearchParam
    inner: Criterion


@dataclass(slots=True)
class SearchRequest:
    resource_type: str | None  # None: system-level search (``types``)
    criteria: list[Criterion | HasCriterion] = field(default_factory=list)
    count: int | None = None
    offset: int = 0
    sort: tuple[SortKey, ...] = ()
    total: TotalMode | None = None
    summary: SummaryMode | None = None
    elements: tuple[str, ...] | None = None
    includes: list[Include] = field(default_factory=list)
    types: tuple[str, ...] = ()  # _type of a system-level search
    ignored: list[str] = field(default_factory=list)  # lenient: parameters not applied

    @property
    def summary_count(self) -> bool:
        return self.summary == "count"


def parse_search(
    resource_type: str | None,
    params: list[tuple[str, str]],
    *,
    zone: tzinfo = DEFAULT_ZONE,
    lenient: bool = False,
) -> SearchRequest:
    """Criteria and result options of a search; SearchError lists every problem.

    ``resource_type`` None is a system-level search: ``_type`` names the types and only
    the parameters every type has (``_id``, ``_lastUpdated``, ``_tag`` ...) apply."""
    table = RESOURCES[resource_type].params if resource_type else _common_table()
    request = SearchRequest(resource_type)
    problems: list[Issue] = []
    for raw_name, raw_value in params:
        if "\x00" in raw_name or "\x00" in raw_value:  # PostgreSQL cannot even compare it
            where = raw_name.replace("\x00", "%00")
            problems.append(
                Issue("error", "value", f"{where!r} contains a NUL character", location=where)
            )
            continue
        try:
            if raw_name.partition(":")[0] in RESULT_PARAMS:
                _result_param(request, raw_name, raw_value)
            elif raw_name == "_type" and resource_type is None:
                request.types = _types(raw_value)
            elif raw_name.startswith("_has:") and resource_type is not None:
                request.criteria.append(_has(resource_type, raw_name, raw_value, zone))
            elif "." in raw_name and resource_type is not None:
                request.criteria.append(_chain(resource_type, raw_name, raw_value, zone))
            else:
                name, _, modifier = raw_name.partition(":")
                param = table.get(name)
                if param is None:
                    raise _Unknown(f"Unknown search parameter '{raw_name}' for {resource_type}")
                request.criteria.append(_criterion(param, modifier or None, raw_value, zone))
        except _Unknown as exc:
            if lenient:
                request.ignored.append(raw_name)
            else:
                problems.append(Issue("error", "not-supported", str(exc), location=raw_name))
        except BadValue as exc:
            problems.append(Issue("error", exc.code, str(exc), location=raw_name))
    if problems:
        raise SearchError(problems[0].diagnostics, issues=problems)
    return request


class _Unknown(ValueError):
    """A parameter the server does not know (ignored when the search is lenient)."""


def _common_table() -> dict[str, SearchParam]:
    return {p.name: p for p in COMMON}


def _types(value: str) -> tuple[str, ...]:
    types = tuple(t.strip() for t in value.split(",") if t.strip())
    unknown = [t for t in types if t not in RESOURCES]
    if unknown or not types:
        raise BadValue(
            f"_type={value!r}: {', '.join(unknown) or 'no type'} not served "
            f"(served: {', '.join(SUPPORTED_TYPES)})",
            "not-supported",
        )
    return types


def _chain(resource_type: str, raw_name: str, raw_value: str, zone: tzinfo) -> Criterion:
    """``ref[:Type].param[:modifier]=value``, one level deep."""
    head, _, tail = raw_name.partition(".")
    name, _, target = head.partition(":")
    param = RESOURCES[resource_type].params.get(name)
    if param is None or param.type != "reference":
        raise _Unknown(f"Chained search '{raw_name}': {name!r} is not a reference parameter")
    if "." in tail:
        raise _Unknown(f"Chained search '{raw_name}': only one level of chaining is supported")
    inner_name, _, inner_modifier = tail.partition(":")
    if target:
        if (param.targets and target not in param.targets) or target not in RESOURCES:
            raise BadValue(f"{raw_name}: {name} cannot refer to {target!r}")
        candidates: tuple[str, ...] = (target,)
    else:
        candidates = param.targets or SUPPORTED_TYPES
    types = tuple(t for t in candidates if t in RESOURCES and inner_name in RESOURCES[t].params)
    if not types:
        raise _Unknown(
            f"Chained search '{raw_name}': no type {name} refers to has a parameter {inner_name!r}"
        )
    inner_params = {RESOURCES[t].params[inner_name] for t in types}
    inner_kinds = {p.type for p in inner_params}
    if len(inner_kinds) > 1:
        raise BadValue(f"{raw_name}: {inner_name!r} differs between {', '.join(types)}; name one")
    inner = _criterion(
        RESOURCES[types[0]].params[inner_name], inner_modifier or None, raw_value, zone
    )
    return Criterion(param, None, (), chain=(types, inner))


def _has(resource_type: str, raw_name: str, raw_value: str, zone: tzinfo) -> HasCriterion:
    """``_has:Source:reference:param[:modifier]=value``, one level."""
    pieces = raw_name.split(":")
    if len(pieces) not in (4, 5) or pieces[1] == "_has" or pieces[3] == "_has":
        raise _Unknown(f"'{raw_name}': expected _has:Type:reference:parameter (one level of _has)")
    source, ref_name, inner_name = pieces[1], pieces[2], pieces[3]
    inner_modifier = pieces[4] if len(pieces) == 5 else None
    if source not in RESOURCES:
        raise _Unknown(f"'{raw_name}': type {source!r} is not served")
    reference = RESOURCES[source].params.get(ref_name)
    if reference is None or reference.type != "reference":
        raise _Unknown(f"'{raw_name}': {source} has no reference parameter {ref_name!r}")
    if reference.targets and resource_type not in reference.targets:
        raise BadValue(f"'{raw_name}': {source}.{ref_name} does not refer to {resource_type}")
    inner_param = RESOURCES[source].params.get(inner_name)
    if inner_param is None:
        raise _Unknown(f"'{raw_name}': {source} has no search parameter {inner_name!r}")
    return HasCriterion(source, reference, _criterion(inner_param, inner_modifier, raw_value, zone))


def _result_param(request: SearchRequest, name: str, value: str) -> None:
    base = name.partition(":")[0]
    if base in ("_include", "_revinclude"):
        request.includes.append(parse_include(name, value))
        return
    if ":" in name:
        raise BadValue(f"{name}: result parameters take no modifier", "not-supported")
    if name == "_count":
        request.count = _non_negative(name, value)
    elif name == "_offset":
        request.offset = _non_negative(name, value)
    elif name == "_sort":
        request.sort = parse_sort(request.resource_type, value)
    elif name == "_total":
        request.total = parse_total(value)
    elif name == "_summary":
        request.summary = parse_summary(value)
    elif name == "_elements":
        request.elements = parse_elements(value)
    # _format: the negotiation's (see RESULT_PARAMS), nothing to do here


def _non_negative(name: str, value: str) -> int:
    number = paging_number(value)
    if number is None:
        raise BadValue(f"{name}={value!r}: {PAGING_NUMBER_EXPECTED}")
    return number


PAGING_NUMBER_EXPECTED = f"expected a whole number from 0 to {MAX_PAGING_NUMBER}"


def paging_number(value: str) -> int | None:
    """``_count`` / ``_offset`` as a number, None when it is not one the server takes (ASCII
    digits only: ``str.isdigit`` also admits ``²`` and other scripts' digits)."""
    if not (value.isascii() and value.isdigit()) or len(value) > 10:
        return None
    number = int(value)
    return number if number <= MAX_PAGING_NUMBER else None


def _criterion(param: SearchParam, modifier: str | None, raw: str, zone: tzinfo) -> Criterion:
    label = f"{param.name}{':' + modifier if modifier else ''}={raw!r}"
    if (
        modifier is not None
        and modifier not in _MODIFIERS[param.type]
        and not (param.type == "reference" and _is_target_modifier(param, modifier))
    ):
        raise BadValue(
            f"{label}: modifier ':{modifier}' is not supported for this {param.type} parameter",
            "not-supported",
        )
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise BadValue(f"{label}: :missing takes true or false")
        return Criterion(param, modifier, (raw == "true",))
    parts = split_escaped(raw, ",")
    if not parts or any(p == "" for p in parts):
        raise BadValue(f"{label}: empty value")
    values = tuple(
        _value(param, modifier, unescape(p) if param.type in ("string", "uri") else p, zone, label)
        for p in parts
    )
    return Criterion(param, modifier, values)


def _is_target_modifier(param: SearchParam, modifier: str) -> bool:
    if modifier not in SUPPORTED_TYPES and not re.match(r"^[A-Z][A-Za-z]+$", modifier):
        return False
    return not param.targets or modifier in param.targets


def _value(param: SearchParam, modifier: str | None, text: str, zone: tzinfo, label: str) -> Value:
    kind = param.type
    if kind == "token":
        return _token_value(modifier, text, label)
    if kind == "string":
        return text if modifier == "exact" else normalize_text(text)
    if kind == "uri":
        return text
    if kind == "date":
        # an unencoded "+08:00" arrives as " 08:00" ('+' means space in a query string)
        text = _PLUS_AS_SPACE.sub(r"+\1", text)
        try:
            prefix, rest = _prefix(text)
        except BadValue as exc:
            raise BadValue(f"{label}: {exc}") from None
        try:
            start, end = parse_range(rest, zone)
        except DateFormatError:
            raise BadValue(
                f"{label}: {rest!r} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime)"
            ) from None
        return DateValue(prefix, start, end)
    if kind == "quantity":
        return _quantity(text, label)
    return _reference(param, modifier, text, label)


def _token_value(modifier: str | None, text: str, label: str) -> Value:
    if modifier == "text":
        return normalize_text(unescape(text))
    if modifier == "of-type":
        pieces = [unescape(p) for p in split_escaped(text, "|")]
        if len(pieces) != 3 or not all(pieces):
            raise BadValue(f"{label}: :of-type takes <type system>|<type code>|<value>")
        return OfTypeValue(*pieces)
    if modifier in ("in", "not-in"):
        url = unescape(text)
        codes = expand(url)
        if codes is None:
            raise BadValue(
                f"{label}: value set {url!r} is not one of the adapter's "
                f"({', '.join(sorted(known_value_sets())) or 'none'})",
                "not-supported",
            )
        return CodesValue(url, codes)
    return _token(text)


def _token(text: str) -> TokenValue:
    pieces = split_escaped(text, "|")
    if len(pieces) == 1:
        return TokenValue(unescape(pieces[0]), None, "any")
    system, code = unescape(pieces[0]), unescape("|".join(pieces[1:]))
    if system == "":
        return TokenValue(code or None, None, "none")
    return TokenValue(code or None, system, "given")


def _prefix(text: str) -> tuple[Prefix, str]:
    if len(text) > 2 and text[:2] in PREFIXES and not text[:2].isdigit():
        return text[:2], text[2:]  # type: ignore[return-value]
    if len(text) > 2 and text[:2].isalpha():
        raise BadValue(
            f"unknown prefix {text[:2]!r} in {text!r} (use one of {', '.join(PREFIXES)})"
        )
    return "eq", text


def _quantity(text: str, label: str) -> QuantityValue:
    try:
        prefix, rest = _prefix(text)
    except BadValue as exc:
        raise BadValue(f"{label}: {exc}") from None
    pieces = split_escaped(rest, "|")
    number_text = pieces[0]
    if not _NUMBER_RE.match(number_text):
        raise BadValue(f"{label}: {number_text!r} is not a number")
    try:
        number = float(number_text)
        # the precision written is the precision meant: 5.4 covers [5.35, 5.45)
        mantissa = number_text.lower().split("e")[0]
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        exponent = int(number_text.lower().split("e")[1]) if "e" in number_text.lower() else 0
        half = 0.5 * 10.0 ** (exponent - decimals)
    except (OverflowError, ValueError):  # 0e999, an exponent of thousands of digits
        half = math.inf
    if not (math.isfinite(number) and math.isfinite(half)):
        raise BadValue(f"{label}: {number_text!r} is out of the range of numbers searched")
    system = unescape(pieces[1]) if len(pieces) > 1 and pieces[1] else None
    code = unescape("|".join(pieces[2:])) if len(pieces) > 2 and pieces[2] else None
    return QuantityValue(prefix, number, number - half, number + half, system, code)


def _reference(
    param: SearchParam, modifier: str | None, text: str, label: str
) -> ReferenceValue | TokenValue:
    if modifier == "identifier":  # Reference.identifier, as a token
        return _token(text)
    text = unescape(text)
    if "/" in text or ":" in text:
        reference = normalize_reference(text)
        if reference is None:
            raise BadValue(f"{label}: {text!r} is not a reference")
        rtype = reference.split("/", 1)[0]
        if modifier and rtype != modifier:
            raise BadValue(f"{label}: the value names type {rtype}, the modifier {modifier}")
        if param.targets and "/" in reference and rtype not in param.targets:
            raise BadValue(
                f"{label}: {param.name} refers to {', '.join(param.targets)}, not {rtype}"
            )
        return ReferenceValue((reference,))
    if modifier:
        return ReferenceValue((f"{modifier}/{text}",))
    if param.targets:
        return ReferenceValue(tuple(f"{t}/{text}" for t in param.targets))
    return ReferenceValue((), id_only=text)


def split_escaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by a backslash (FHIR search escaping)."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            current.append(ch)
            nxt = next(chars, "")
            current.append(nxt)
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    """Undo FHIR search escapes ``\\,`` ``\\|`` ``\\$`` ``\\\\``."""
    return re.sub(r"\\([,|$\\])", r"\1", text)
