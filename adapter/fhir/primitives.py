"""Run-time checks of FHIR R4 primitive values, for the places where values are made.

Cheap by design (precompiled expressions, no model objects): a mapping transform calls
``check_primitive("dateTime", value)`` on what it is about to put into a resource and
turns a returned reason into an ``Issue``. Full validation of whole resources (the
fhir.resources models and the official JSON schema) runs in the tests, not per message:
see docs/decisions/0003-validation.md.

Two levels:

* ``is_valid_<type>(text)``: the *lexical* form, the string as written in the spec's
  regular expression for that type (what an HL7 v2 or CDA value must look like before it
  becomes a FHIR value): ``is_valid_decimal("6.10")``, ``is_valid_date_time("2026-11")``.
* ``check_primitive(type_name, value)``: the value as it will stand in FHIR **JSON**:
  ``boolean`` must be a JSON boolean, ``integer`` / ``decimal`` JSON numbers, everything
  else a string. Returns ``None`` when fine, else a short reason that never repeats the
  value (it may be personal data).

The expressions follow the R4 datatypes page (hl7.org/fhir/R4/datatypes.html), with
"whitespace" meaning the XML set (space, tab, CR, LF) as the spec intends. Beyond the
expressions: dates must exist in the calendar (no 2026-02-30), integers must fit in 32
bits, strings must not be blank, must not contain control characters other than tab, CR
and LF, and must stay under 1 MiB.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

_NUMBERS = (int, float, Decimal)  # a tuple: ``int | float`` makes a union object per test

__all__ = [
    "PRIMITIVE_TYPES",
    "check_primitive",
    "is_valid_base64_binary",
    "is_valid_boolean",
    "is_valid_canonical",
    "is_valid_code",
    "is_valid_date",
    "is_valid_date_time",
    "is_valid_decimal",
    "is_valid_id",
    "is_valid_instant",
    "is_valid_integer",
    "is_valid_markdown",
    "is_valid_oid",
    "is_valid_positive_int",
    "is_valid_string",
    "is_valid_time",
    "is_valid_unsigned_int",
    "is_valid_uri",
    "is_valid_url",
    "is_valid_uuid",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
MAX_STRING_BYTES = 1024 * 1024  # "strings SHALL NOT exceed 1MB in size"

# Building blocks of the R4 date/time expressions.
_YEAR = r"(?:[0-9](?:[0-9](?:[0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"  # 0001-9999
_MONTH = r"(?:0[1-9]|1[0-2])"
_DAY = r"(?:0[1-9]|[12][0-9]|3[01])"
_CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?"
_ZONE = r"(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"

_DATE_RE = re.compile(rf"{_YEAR}(?:-{_MONTH}(?:-{_DAY})?)?")
_DATE_TIME_RE = re.compile(rf"{_YEAR}(?:-{_MONTH}(?:-{_DAY}(?:T{_CLOCK}{_ZONE})?)?)?")
_INSTANT_RE = re.compile(rf"{_YEAR}-{_MONTH}-{_DAY}T{_CLOCK}{_ZONE}")
_TIME_RE = re.compile(_CLOCK)

_ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_NON_WS = r"[^ \t\r\n]"
_CODE_RE = re.compile(rf"{_NON_WS}+(?:[ \t\r\n]{_NON_WS}+)*")  # single whitespace inside
_URI_RE = re.compile(rf"{_NON_WS}+")  # the spec's \S*, non-empty as JSON requires
_OID_RE = re.compile(r"urn:oid:[0-2](?:\.(?:0|[1-9][0-9]*))+")
_UUID_RE = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DECIMAL_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INTEGER_RE = re.compile(r"0|[-+]?[1-9][0-9]*")
_POSITIVE_INT_RE = re.compile(r"\+?[1-9][0-9]*")
_UNSIGNED_INT_RE = re.compile(r"0|[1-9][0-9]*")
_BOOLEAN_RE = re.compile(r"true|false")
_BASE64_RE = re.compile(r"(?:[ \t\r\n]*[0-9a-zA-Z+/=]{4}[ \t\r\n]*)+")
# C0 controls other than tab, LF, CR; plus DEL and the C1 controls.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _calendar_ok(text: str) -> bool:
    """A full date part (YYYY-MM-DD) must exist; partial dates are fine as they are."""
    if len(text) < 10:
        return True
    year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    return day <= calendar.monthrange(year, month)[1]


def _in_int32(text: str, low: int) -> bool:
    return low <= int(text) <= INT32_MAX


def is_valid_date(text: str) -> bool:
    return bool(_DATE_RE.fullmatch(text)) and _calendar_ok(text)


def is_valid_date_time(text: str) -> bool:
    return bool(_DATE_TIME_RE.fullmatch(text)) and _calendar_ok(text)


def is_valid_instant(text: str) -> bool:
    return bool(_INSTANT_RE.fullmatch(text)) and _calendar_ok(text)


def is_valid_time(text: str) -> bool:
    return bool(_TIME_RE.fullmatch(text))


def is_valid_id(text: str) -> bool:
    return bool(_ID_RE.fullmatch(text))


def is_valid_code(text: str) -> bool:
    return bool(_CODE_RE.fullmatch(text))


def is_valid_uri(text: str) -> bool:
    return bool(_URI_RE.fullmatch(text))


is_valid_url = is_valid_uri
is_valid_canonical = is_valid_uri


def is_valid_oid(text: str) -> bool:
    return bool(_OID_RE.fullmatch(text))


def is_valid_uuid(text: str) -> bool:
    return bool(_UUID_RE.fullmatch(text))


def is_valid_decimal(text: str) -> bool:
    return bool(_DECIMAL_RE.fullmatch(text))


def is_valid_integer(text: str) -> bool:
    return bool(_INTEGER_RE.fullmatch(text)) and _in_int32(text, INT32_MIN)


def is_valid_positive_int(text: str) -> bool:
    return bool(_POSITIVE_INT_RE.fullmatch(text)) and _in_int32(text, 1)


def is_valid_unsigned_int(text: str) -> bool:
    return bool(_UNSIGNED_INT_RE.fullmatch(text)) and _in_int32(text, 0)


def is_valid_boolean(text: str) -> bool:
    return bool(_BOOLEAN_RE.fullmatch(text))


def is_valid_base64_binary(text: str) -> bool:
    return bool(_BASE64_RE.fullmatch(text))


def _string_problem(text: str) -> str | None:
    if not text.strip():
        return "is empty or only whitespace"
    if _CONTROL_RE.search(text):
        return "contains a control character (only tab, CR and LF are allowed)"
    # Cheap upper bound first: a UTF-8 character is at most 4 bytes.
    if len(text) * 4 > MAX_STRING_BYTES and len(text.encode("utf-8")) > MAX_STRING_BYTES:
        return "is longer than 1 MiB"
    return None


_PLAIN_MAX = MAX_STRING_BYTES // 4  # a UTF-8 character is at most 4 bytes


# what ``is_plain_string`` tests, for a caller that inlines it (adapter/pipeline/checks.py)
PLAIN_MAX = _PLAIN_MAX
CONTROL_CHARACTER = _CONTROL_RE


def is_plain_string(text: str) -> bool:
    """The quick answer for most strings: True when ``_string_problem`` finds nothing for
    sure (not blank, no control character, too short to pass the size limit); False when
    it must be asked."""
    return 0 < len(text) <= _PLAIN_MAX and not text.isspace() and not _CONTROL_RE.search(text)


def is_valid_string(text: str) -> bool:
    return _string_problem(text) is None


is_valid_markdown = is_valid_string


# ---- check_primitive: the value as it stands in FHIR JSON ------------------------------

_Lexical = Callable[[str], bool]

_STRING_TYPES: dict[str, tuple[_Lexical, str]] = {
    "date": (is_valid_date, "is not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)"),
    "dateTime": (
        is_valid_date_time,
        "is not a FHIR dateTime (YYYY[-MM[-DD[Thh:mm:ss[.f](Z|±hh:mm)]]], time zone "
        "required with a time, a real calendar date)",
    ),
    "instant": (
        is_valid_instant,
        "is not a FHIR instant (YYYY-MM-DDThh:mm:ss[.f] with Z or ±hh:mm)",
    ),
    "time": (is_valid_time, "is not a FHIR time (hh:mm:ss[.f])"),
    "id": (is_valid_id, "is not a FHIR id (1-64 of A-Z a-z 0-9 - .)"),
    "code": (
        is_valid_code,
        "is not a FHIR code (no leading, trailing or repeated whitespace)",
    ),
    "uri": (is_valid_uri, "is not a FHIR uri (non-empty, no whitespace)"),
    "url": (is_valid_url, "is not a FHIR url (non-empty, no whitespace)"),
    "canonical": (is_valid_canonical, "is not a FHIR canonical (non-empty, no whitespace)"),
    "oid": (is_valid_oid, "is not a FHIR oid (urn:oid:0-2.n.n...)"),
    "uuid": (is_valid_uuid, "is not a FHIR uuid (urn:uuid: + lower-case UUID)"),
    "base64Binary": (is_valid_base64_binary, "is not base64"),
}
_TEXT_TYPES = frozenset({"string", "markdown"})
_INTEGER_TYPES: dict[str, int] = {"integer": INT32_MIN, "unsignedInt": 0, "positiveInt": 1}

PRIMITIVE_TYPES: frozenset[str] = frozenset(
    {*_STRING_TYPES, *_TEXT_TYPES, *_INTEGER_TYPES, "decimal", "boolean"}
)


def _type_label(value: Any) -> str:
    return "boolean" if isinstance(value, bool) else type(value).__name__


def check_primitive(type_name: str, value: Any) -> str | None:
    """``None`` if ``value`` is a valid FHIR R4 JSON value of ``type_name``, else why not.

    The reason never contains the value itself. An unknown ``type_name`` is a
    programming error and raises ``ValueError``.
    """
    if type_name == "boolean":
        if isinstance(value, bool):
            return None
        return f"boolean must be JSON true or false, not a {_type_label(value)}"
    if type_name in _INTEGER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{type_name} must be a JSON integer, not a {_type_label(value)}"
        low = _INTEGER_TYPES[type_name]
        if not low <= value <= INT32_MAX:
            return f"{type_name} must be between {low} and {INT32_MAX}"
        return None
    if type_name == "decimal":
        if isinstance(value, bool) or not isinstance(value, _NUMBERS):
            return f"decimal must be a JSON number, not a {_type_label(value)}"
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        return None if finite else "decimal must be a finite number"
    if type_name not in PRIMITIVE_TYPES:
        raise ValueError(f"not a FHIR R4 primitive type: {type_name!r}")
    if not isinstance(value, str):
        return f"{type_name} must be a JSON string, not a {_type_label(value)}"
    if type_name in _TEXT_TYPES:
        problem = _string_problem(value)
        return f"{type_name} {problem}" if problem else None
    lexical, reason = _STRING_TYPES[type_name]
    return None if lexical(value) else f"value {reason}"
