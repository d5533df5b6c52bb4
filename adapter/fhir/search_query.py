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
from adapter.fhir.search_params import RESOURCES, SUPPORTED_TYPES, SearchParam

Prefix = Literal["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
PREFIXES: tuple[str, ...] = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
SORTABLE = ("_lastUpdated", "_id")
# Result parameters this server understands; the rest of "_..." is unsupported.
RESULT_PARAMS = ("_count", "_offset", "_sort", "_total", "_summary", "_format")

_MODIFIERS: dict[str, tuple[str, ...]] = {
    "token": ("missing", "not"),
    "string": ("missing", "exact", "contains"),
    "date": ("missing",),
    "reference": ("missing",),  # plus a target type, e.g. subject:Patient
    "quantity": ("missing",),
    "uri": ("missing",),
}
_PLUS_AS_SPACE = re.compile(r"(?<=\d) (\d{2}:\d{2})$")
# the largest _count / _offset / offset taken: a 32-bit signed integer, far beyond any result
MAX_PAGING_NUMBER = 2**31 - 1
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_JSON_FORMATS = ("json", "application/json", "application/fhir+json")


@dataclass(frozen=True, slots=True)
class TokenValue:
    code: str | None  # None: any code ("system|")
    system: str | None  # with system_mode "given"
    system_mode: Literal["any", "none", "given"]  # "code", "|code", "system|code"


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


Value = TokenValue | DateValue | QuantityValue | ReferenceValue | str | bool


@dataclass(frozen=True, slots=True)
class Criterion:
    """One search parameter occurrence: any of ``values`` must match (OR)."""

    param: SearchParam
    modifier: str | None
    values: tuple[Value, ...]  # str for string/uri, bool for :missing


@dataclass(slots=True)
class SearchRequest:
    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    count: int | None = None
    offset: int = 0
    sort: tuple[str, ...] = ("-_lastUpdated",)
    total: bool = True
    summary_count: bool = False
    ignored: list[str] = field(default_factory=list)  # lenient: parameters not applied


def parse_search(
    resource_type: str,
    params: list[tuple[str, str]],
    *,
    zone: tzinfo = DEFAULT_ZONE,
    lenient: bool = False,
) -> SearchRequest:
    """Criteria and result options of a search; SearchError lists every problem."""
    table = RESOURCES[resource_type].params
    request = SearchRequest(resource_type)
    problems: list[Issue] = []
    for raw_name, raw_value in params:
        if "\x00" in raw_name or "\x00" in raw_value:  # PostgreSQL cannot even compare it
            where = raw_name.replace("\x00", "%00")
            problems.append(
                Issue("error", "value", f"{where!r} contains a NUL character", location=where)
            )
            continue
        name, _, modifier = raw_name.partition(":")
        if name in RESULT_PARAMS:
            _result_param(request, raw_name, raw_value, problems)
            continue
        param = table.get(name)
        if param is None or "." in name:
            what = "Chained search" if "." in name else "Unknown search parameter"
            if lenient:
                request.ignored.append(raw_name)
            else:
                problems.append(
                    Issue(
                        "error",
                        "not-supported",
                        f"{what} '{raw_name}' for {resource_type}",
                        location=raw_name,
                    )
                )
            continue
        try:
            request.criteria.append(_criterion(param, modifier or None, raw_value, zone))
        except _BadValue as exc:
            problems.append(Issue("error", exc.code, str(exc), location=raw_name))
    if problems:
        raise SearchError(problems[0].diagnostics, issues=problems)
    return request


class _BadValue(ValueError):
    def __init__(self, message: str, code: str = "value") -> None:
        super().__init__(message)
        self.code = code


def _result_param(request: SearchRequest, name: str, value: str, problems: list[Issue]) -> None:
    try:
        if name == "_count":
            request.count = _non_negative(name, value)
        elif name == "_offset":
            request.offset = _non_negative(name, value)
        elif name == "_sort":
            keys = tuple(k.strip() for k in value.split(",") if k.strip())
            bad = [k for k in keys if k.lstrip("-") not in SORTABLE]
            if bad or not keys:
                raise _BadValue(
                    f"_sort={value!r}: only {', '.join(SORTABLE)} (optionally with '-') "
                    "are supported",
                    "not-supported",
                )
            request.sort = keys
        elif name == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise _BadValue(f"_total={value!r}: expected none, estimate or accurate")
            request.total = value != "none"
        elif name == "_summary":
            if value not in ("count", "false"):
                raise _BadValue(
                    f"_summary={value!r}: only 'count' and 'false' are supported", "not-supported"
                )
            request.summary_count = value == "count"
        elif name == "_format" and value not in _JSON_FORMATS:
            raise _BadValue(f"_format={value!r}: this server only speaks JSON", "not-supported")
    except _BadValue as exc:
        problems.append(Issue("error", exc.code, str(exc), location=name))


def _non_negative(name: str, value: str) -> int:
    number = paging_number(value)
    if number is None:
        raise _BadValue(f"{name}={value!r}: {PAGING_NUMBER_EXPECTED}")
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
        raise _BadValue(
            f"{label}: modifier ':{modifier}' is not supported for this {param.type} parameter",
            "not-supported",
        )
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise _BadValue(f"{label}: :missing takes true or false")
        return Criterion(param, modifier, (raw == "true",))
    parts = split_escaped(raw, ",")
    if not parts or any(p == "" for p in parts):
        raise _BadValue(f"{label}: empty value")
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
        return _token(text)
    if kind == "string":
        return text if modifier == "exact" else normalize_text(text)
    if kind == "uri":
        return text
    if kind == "date":
        # an unencoded "+08:00" arrives as " 08:00" ('+' means space in a query string)
        text = _PLUS_AS_SPACE.sub(r"+\1", text)
        try:
            prefix, rest = _prefix(text)
        except _BadValue as exc:
            raise _BadValue(f"{label}: {exc}") from None
        try:
            start, end = parse_range(rest, zone)
        except DateFormatError:
            raise _BadValue(
                f"{label}: {rest!r} is not a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime)"
            ) from None
        return DateValue(prefix, start, end)
    if kind == "quantity":
        return _quantity(text, label)
    return _reference(param, modifier, text, label)


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
        raise _BadValue(
            f"unknown prefix {text[:2]!r} in {text!r} (use one of {', '.join(PREFIXES)})"
        )
    return "eq", text


def _quantity(text: str, label: str) -> QuantityValue:
    try:
        prefix, rest = _prefix(text)
    except _BadValue as exc:
        raise _BadValue(f"{label}: {exc}") from None
    pieces = split_escaped(rest, "|")
    number_text = pieces[0]
    if not _NUMBER_RE.match(number_text):
        raise _BadValue(f"{label}: {number_text!r} is not a number")
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
        raise _BadValue(f"{label}: {number_text!r} is out of the range of numbers searched")
    system = unescape(pieces[1]) if len(pieces) > 1 and pieces[1] else None
    code = unescape("|".join(pieces[2:])) if len(pieces) > 2 and pieces[2] else None
    return QuantityValue(prefix, number, number - half, number + half, system, code)


def _reference(param: SearchParam, modifier: str | None, text: str, label: str) -> ReferenceValue:
    text = unescape(text)
    if "/" in text or ":" in text:
        reference = normalize_reference(text)
        if reference is None:
            raise _BadValue(f"{label}: {text!r} is not a reference")
        rtype = reference.split("/", 1)[0]
        if modifier and rtype != modifier:
            raise _BadValue(f"{label}: the value names type {rtype}, the modifier {modifier}")
        if param.targets and "/" in reference and rtype not in param.targets:
            raise _BadValue(
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
