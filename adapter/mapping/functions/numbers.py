"""Numbers, quantities with comparators, reference ranges as written by Chinese LIS."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from adapter.mapping.functions.registry import FunctionContext, transform
from adapter.mapping.values import TEXT_DECIDES, location, text

# a decimal, with an exponent as analysers write viral loads (2.4E+05, 1.2e3): FHIR decimal
# allows one (R4 2.24.0.1, "decimal": -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?")
# full-width ＜ ＞ and ≦ ≧ are what a Chinese input method types
_COMPARATOR = re.compile(r"^\s*(<=|>=|≤|≥|≦|≧|<|>|＜|＞)\s*")
_COMPARATOR_FHIR = {"≤": "<=", "≥": ">=", "≦": "<=", "≧": ">=", "＜": "<", "＞": ">"}


def _decimal(raw: str) -> Decimal | None:
    raw = raw.strip()
    if not _NUMBER.fullmatch(raw):
        return None
    try:
        return Decimal(raw)
    except InvalidOperation:
        return None


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _exact_json_number(value: Decimal) -> int | float | None:
    """The JSON number for ``value`` (orjson writes floats shortest-exact), or None when no
    JSON number the store can write holds it exactly: an integer beyond 64 bits, more
    significant digits than a double keeps."""
    # a whole number written with an exponent (2.4E+05) is the integer it denotes: 240000,
    # not 240000.0 (a JSON number cannot keep the exponent; no digits are invented)
    written = str(value)
    if value == value.to_integral_value() and ("." not in written or "E" in written):
        whole = int(value)
        return whole if INT64_MIN <= whole <= INT64_MAX else None
    as_float = float(value)
    if not math.isfinite(as_float) or Decimal(repr(as_float)) != value:
        return None
    return as_float


def _json_number(ev: FunctionContext, number: Decimal, value: Any) -> int | float | None:
    exact = _exact_json_number(number)
    if exact is None:
        ev.error(
            f"{str(number)[:40]!r} has more digits than a number can keep exactly (integers "
            f"up to {INT64_MAX}, about 15 significant digits)",
            location(value),
            code="value",
        )
    return exact


@transform("is_numeric")
def is_numeric(ev: FunctionContext, value: Any) -> bool:
    return (
        _NUMBER.fullmatch(
            (
                value
                if type(value) is str
                else value.text
                if type(value) in TEXT_DECIDES
                else text(value)
            ).strip()
        )
        is not None
    )


@transform("text_to_decimal")
def text_to_decimal(ev: FunctionContext, value: Any) -> int | float | None:
    """A number, or an error at the value's location when it is not one."""
    raw = text(value)
    if not raw.strip():
        return None
    number = _decimal(raw)
    if number is None:
        ev.error(f"{raw.strip()!r} is not a number", location(value), code="value")
        return None
    return _json_number(ev, number, value)


@transform("quantity_value")
def quantity_value(ev: FunctionContext, value: Any) -> int | float | None:
    """The number of a result written with or without a comparator: '<0.5' -> 0.5."""
    raw = _COMPARATOR.sub(
        "",
        (
            value
            if type(value) is str
            else value.text
            if type(value) in TEXT_DECIDES
            else text(value)
        ),
        count=1,
    )
    if not raw.strip():
        return None
    number = _decimal(raw)
    if number is None:
        ev.error(f"{text(value).strip()!r} is not a number", location(value), code="value")
        return None
    return _json_number(ev, number, value)


@transform("quantity_comparator")
def quantity_comparator(ev: FunctionContext, value: Any) -> str | None:
    match = _COMPARATOR.match(
        value if type(value) is str else value.text if type(value) in TEXT_DECIDES else text(value)
    )
    if not match:
        return None
    return _fhir_comparator(match)


def _fhir_comparator(match: re.Match[str]) -> str:
    return _COMPARATOR_FHIR.get(match.group(1), match.group(1))


@transform("has_comparator")
def has_comparator(ev: FunctionContext, value: Any) -> bool:
    raw = text(value)
    match = _COMPARATOR.match(raw)
    return bool(match) and _decimal(raw[match.end() :]) is not None


_RANGE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(?:-|－|—|~|～|--|至)\s*([+-]?\d+(?:\.\d+)?)\s*$")


def _range_text(value: Any) -> str:
    """A reference range as written: "3.5~9.5" with an unescaped tilde reads in HL7 as two
    repetitions of a field that does not repeat; they are joined back."""
    segment = getattr(value, "segment", None)
    if (
        segment is None
        or getattr(value, "comp", None) is not None
        or segment.repetitions(value.field) < 2
    ):
        return text(value)
    return "~".join(value.repetition_texts())


@transform("range_low")
def range_low(ev: FunctionContext, value: Any) -> int | float | None:
    """Lower bound of '3.5-9.5' or '>60'; None for '<5' or text ranges."""
    raw = _range_text(value)
    match = _RANGE.match(raw)
    if match:
        return _json_number(ev, Decimal(match.group(1)), value)
    comp = _COMPARATOR.match(raw)
    if comp and _fhir_comparator(comp) in (">", ">="):
        number = _decimal(raw[comp.end() :])
        return _json_number(ev, number, value) if number is not None else None
    return None


@transform("range_high")
def range_high(ev: FunctionContext, value: Any) -> int | float | None:
    raw = _range_text(value)
    match = _RANGE.match(raw)
    if match:
        return _json_number(ev, Decimal(match.group(2)), value)
    comp = _COMPARATOR.match(raw)
    if comp and _fhir_comparator(comp) in ("<", "<="):
        number = _decimal(raw[comp.end() :])
        return _json_number(ev, number, value) if number is not None else None
    return None


@transform("is_numeric_range")
def is_numeric_range(ev: FunctionContext, value: Any) -> bool:
    return range_low(ev, value) is not None or range_high(ev, value) is not None
