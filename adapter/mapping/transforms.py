"""The named transforms of the mapping language: a short, fixed list.

Every transform takes the evaluation context first and already evaluated arguments after
it. Arguments may be source positions (``Node``, which know their location), strings,
numbers, dicts (bound resources, facility data) or lists; ``text()`` turns any of them into
text. A transform that meets a value it cannot convert reports an issue at the value's
location and returns None: the engine decides what an error means (quarantine).

Names follow ``<source>_to_<target>`` where a conversion is meant (``dtm_to_datetime``);
predicates and helpers are short verbs (``first``, ``eq``, ``map``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from adapter.identity import parse_national_id
from adapter.mapping.ids import deterministic_id

if TYPE_CHECKING:
    from adapter.mapping.engine import Evaluation

Transform = Callable[..., Any]
FUNCTIONS: dict[str, Transform] = {}


def transform(name: str) -> Callable[[Transform], Transform]:
    def register(func: Transform) -> Transform:
        FUNCTIONS[name] = func
        return func

    return register


# -- helpers -----------------------------------------------------------------------------------


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, list):
        return text(value[0]) if value else ""
    if isinstance(value, dict):
        return ""
    as_text = getattr(value, "text", None)
    # a whole segment (``=PID``) has no text: never its inner representation
    return as_text if isinstance(as_text, str) else ""


def is_position_without_text(value: Any) -> bool:
    """A source position that is not a value, such as a whole HL7 v2 segment (``=ZPI``):
    it can only be there or not."""
    return (
        value is not None
        and not isinstance(value, str | int | float | Decimal | dict | list)
        and not isinstance(getattr(value, "text", None), str)
    )


def location(value: Any) -> str | None:
    if isinstance(value, list):
        return location(value[0]) if value else None
    return getattr(value, "location", None)


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str | list | dict | tuple):
        return len(value) == 0
    check = getattr(value, "is_empty", None)
    return bool(check()) if check else False


# -- choice and logic ----------------------------------------------------------------------


@transform("first")
def first(ev: Evaluation, *values: Any) -> Any:
    """The first argument that is not empty."""
    return next((v for v in values if not is_empty(v)), None)


@transform("eq")
def eq(ev: Evaluation, a: Any, b: Any) -> bool:
    return text(a).strip() == text(b).strip()


@transform("ne")
def ne(ev: Evaluation, a: Any, b: Any) -> bool:
    return not eq(ev, a, b)


@transform("one_of")
def one_of(ev: Evaluation, value: Any, *options: Any) -> bool:
    wanted = text(value).strip().casefold()
    return any(wanted == text(o).strip().casefold() for o in options)


@transform("exists")
def exists(ev: Evaluation, *values: Any) -> bool:
    if any(is_position_without_text(v) for v in values):
        return True
    return any(
        not is_empty(v) and text(v).strip() != ""
        if not isinstance(v, dict | list)
        else not is_empty(v)
        for v in values
    )


@transform("empty")
def empty(ev: Evaluation, value: Any) -> bool:
    return not exists(ev, value)


@transform("not")
def not_(ev: Evaluation, value: Any) -> bool:
    return not _truthy(value)


@transform("all")
def all_(ev: Evaluation, *values: Any) -> bool:
    return all(_truthy(v) for v in values)


@transform("any")
def any_(ev: Evaluation, *values: Any) -> bool:
    return any(_truthy(v) for v in values)


@transform("matches")
def matches(ev: Evaluation, value: Any, pattern: Any) -> bool:
    return re.fullmatch(text(pattern), text(value).strip()) is not None


@transform("is_numeric")
def is_numeric(ev: Evaluation, value: Any) -> bool:
    return _NUMBER.fullmatch(text(value).strip()) is not None


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return exists(None, value)  # type: ignore[arg-type]


# -- text ----------------------------------------------------------------------------------


@transform("text")
def text_(ev: Evaluation, value: Any) -> str:
    return text(value)


@transform("concat")
def concat(ev: Evaluation, *values: Any) -> str:
    return "".join(text(v) for v in values)


@transform("join")
def join(ev: Evaluation, separator: Any, *values: Any) -> str:
    return text(separator).join(t for t in (text(v).strip() for v in values) if t)


@transform("trim")
def trim(ev: Evaluation, value: Any) -> str:
    return text(value).strip()


@transform("when")
def when(ev: Evaluation, condition: Any, value: Any) -> Any:
    """``value`` when the condition holds, else nothing."""
    return value if _truthy(condition) else None


@transform("join_repetitions")
def join_repetitions(ev: Evaluation, value: Any, separator: Any = "\n") -> str:
    """All repetitions of a field as one text (NTE-3, TX results written over several lines)."""
    segment = getattr(value, "segment", None)
    if segment is None:
        return text(value)
    field_no = value.field
    reps = (segment.get(field_no, rep) for rep in range(1, segment.repetitions(field_no) + 1))
    return text(separator).join(r for r in reps if r.strip())


_EXPONENT_TAIL = re.compile(r"^\d+\s*/")


@transform("unit_as_written")
def unit_as_written(ev: Evaluation, value: Any) -> str | None:
    """The unit of OBX-6 as the lab wrote it. Many LIS write "10^9/L" without escaping the
    caret, which HL7 then reads as two components ("10" and "9/L"); those are joined back.
    A unit coded properly (code^text^system) gives its code."""
    first_part = text(value).strip()
    child = getattr(value, "child", None)
    if child is None or getattr(value, "comp", None) is not None:
        return first_part or None
    second = child(2).text.strip()
    third = child(3).text.strip()
    if not third and first_part.endswith("10") and _EXPONENT_TAIL.match(second):
        return f"{first_part}^{second}"
    return first_part or None


@transform("strip_prefix")
def strip_prefix(ev: Evaluation, value: Any, *prefixes: Any) -> str | None:
    """The text without the first of ``prefixes`` it starts with ("tel:+1 555" -> "+1 555");
    the text unchanged when it starts with none of them."""
    raw = text(value).strip()
    for prefix in prefixes:
        wanted = text(prefix)
        if wanted and raw.startswith(wanted):
            return raw[len(wanted) :].strip() or None
    return raw or None


@transform("starts_with")
def starts_with(ev: Evaluation, value: Any, prefix: Any) -> bool:
    return text(value).strip().startswith(text(prefix))


@transform("upper")
def upper(ev: Evaluation, value: Any) -> str:
    return text(value).upper()


# -- numbers -------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
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


def _json_number(value: Decimal) -> int | float:
    """FHIR decimals keep their precision on the wire; orjson writes floats shortest-exact."""
    return (
        int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    )


@transform("text_to_decimal")
def text_to_decimal(ev: Evaluation, value: Any) -> int | float | None:
    """A number, or an error at the value's location when it is not one."""
    raw = text(value)
    if not raw.strip():
        return None
    number = _decimal(raw)
    if number is None:
        ev.error(f"{raw.strip()!r} is not a number", location(value), code="value")
        return None
    return _json_number(number)


@transform("quantity_value")
def quantity_value(ev: Evaluation, value: Any) -> int | float | None:
    """The number of a result written with or without a comparator: '<0.5' -> 0.5."""
    raw = _COMPARATOR.sub("", text(value), count=1)
    if not raw.strip():
        return None
    number = _decimal(raw)
    if number is None:
        ev.error(f"{text(value).strip()!r} is not a number", location(value), code="value")
        return None
    return _json_number(number)


@transform("quantity_comparator")
def quantity_comparator(ev: Evaluation, value: Any) -> str | None:
    match = _COMPARATOR.match(text(value))
    if not match:
        return None
    return _fhir_comparator(match)


def _fhir_comparator(match: re.Match[str]) -> str:
    return _COMPARATOR_FHIR.get(match.group(1), match.group(1))


@transform("has_comparator")
def has_comparator(ev: Evaluation, value: Any) -> bool:
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
    return "~".join(
        segment.get(value.field, rep) for rep in range(1, segment.repetitions(value.field) + 1)
    )


@transform("range_low")
def range_low(ev: Evaluation, value: Any) -> int | float | None:
    """Lower bound of '3.5-9.5' or '>60'; None for '<5' or text ranges."""
    raw = _range_text(value)
    match = _RANGE.match(raw)
    if match:
        return _json_number(Decimal(match.group(1)))
    comp = _COMPARATOR.match(raw)
    if comp and _fhir_comparator(comp) in (">", ">="):
        number = _decimal(raw[comp.end() :])
        return _json_number(number) if number is not None else None
    return None


@transform("range_high")
def range_high(ev: Evaluation, value: Any) -> int | float | None:
    raw = _range_text(value)
    match = _RANGE.match(raw)
    if match:
        return _json_number(Decimal(match.group(2)))
    comp = _COMPARATOR.match(raw)
    if comp and _fhir_comparator(comp) in ("<", "<="):
        number = _decimal(raw[comp.end() :])
        return _json_number(number) if number is not None else None
    return None


@transform("is_numeric_range")
def is_numeric_range(ev: Evaluation, value: Any) -> bool:
    return range_low(ev, value) is not None or range_high(ev, value) is not None


# -- dates and times -----------------------------------------------------------------------

_DTM = re.compile(
    r"^(?P<y>\d{4})(?:(?P<mo>\d{2})(?:(?P<d>\d{2})(?:(?P<h>\d{2})(?:(?P<mi>\d{2})"
    r"(?:(?P<s>\d{2})(?:\.(?P<f>\d{1,4}))?)?)?)?)?)?(?P<z>[+-]\d{4}|Z)?$"
)
# ISO forms written by some vendors: "2026-11-20 08:30:00", "2026-11-20T08:30:00.123-05:00"
_ISO = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})(?:-(?P<d>\d{2})(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2})(?:\.(?P<f>\d+))?)?)?)?\s*(?P<z>[+-]\d{2}:?\d{2}|Z)?$"
)


def _parse_dtm(ev: Evaluation, value: Any) -> tuple[dict[str, str | None], str] | None:
    raw = text(value).strip()
    if not raw:
        return None
    match = (_ISO if re.match(r"^\d{4}-\d{2}", raw) else _DTM).match(raw)
    if not match:
        ev.error(
            f"{raw!r} is not an HL7 date/time (YYYYMMDDHHMMSS[+ZZZZ])",
            location(value),
            code="value",
        )
        return None
    parts = match.groupdict()
    zone = parts["z"]
    if zone and zone != "Z":
        zone = parts["z"] = zone.replace(":", "")
        if int(zone[1:3]) > 14 or int(zone[3:]) > 59:
            ev.error(f"{raw!r} has an impossible time zone offset", location(value), code="value")
            return None
    try:
        datetime(
            int(parts["y"]),
            int(parts["mo"] or 1),
            int(parts["d"] or 1),
            int(parts["h"] or 0),
            int(parts["mi"] or 0),
            int(parts["s"] or 0),
        )
        if parts["h"] and int(parts["h"]) > 23:
            raise ValueError
    except ValueError:
        ev.error(f"{raw!r} is not a real date/time", location(value), code="value")
        return None
    return parts, raw


def _zone(ev: Evaluation, parts: dict[str, str | None], naive: datetime) -> str:
    zone = parts["z"]
    if zone == "Z":
        return "Z"
    if zone:
        return f"{zone[:3]}:{zone[3:]}"
    offset = ev.timezone.utcoffset(naive) or timedelta(0)
    total = int(offset.total_seconds() // 60)
    sign = "+" if total >= 0 else "-"
    return f"{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"


@transform("dtm_to_datetime")
def dtm_to_datetime(ev: Evaluation, value: Any) -> str | None:
    """HL7 DTM to FHIR dateTime; a time without zone is in the consortium's zone."""
    parsed = _parse_dtm(ev, value)
    if parsed is None:
        return None
    p, _ = parsed
    if not p["mo"]:
        return p["y"]
    if not p["d"]:
        return f"{p['y']}-{p['mo']}"
    date = f"{p['y']}-{p['mo']}-{p['d']}"
    if not p["h"]:
        return date
    naive = datetime(
        int(p["y"]),
        int(p["mo"]),
        int(p["d"]),
        int(p["h"]),  # type: ignore[arg-type]
        int(p["mi"] or 0),
        int(p["s"] or 0),
    )
    fraction = f".{p['f']}" if p["f"] else ""
    clock = f"{p['h']}:{p['mi'] or '00'}:{p['s'] or '00'}{fraction}"
    return f"{date}T{clock}{_zone(ev, p, naive)}"


@transform("dtm_to_date")
def dtm_to_date(ev: Evaluation, value: Any) -> str | None:
    parsed = _parse_dtm(ev, value)
    if parsed is None:
        return None
    p, _ = parsed
    return "-".join(x for x in (p["y"], p["mo"], p["d"]) if x)


@transform("dtm_to_instant")
def dtm_to_instant(ev: Evaluation, value: Any) -> str | None:
    """An instant needs a full time: an HL7 value with only a date is reported and omitted."""
    result = dtm_to_datetime(ev, value)
    if result is None:
        return None
    if "T" not in result:
        ev.warning(
            f"{text(value).strip()!r} has no time of day; an instant needs one",
            location(value),
            code="value",
        )
        return None
    return result


# -- codes, identifiers, references --------------------------------------------------------


@transform("map")
def map_code(ev: Evaluation, table: Any, value: Any) -> str | None:
    target = ev.lookup(text(table), value)
    return target.code if target else None


@transform("map_display")
def map_display(ev: Evaluation, table: Any, value: Any) -> str | None:
    target = ev.lookup(text(table), value, report=False)
    return target.display if target else None


@transform("map_system")
def map_system(ev: Evaluation, table: Any, value: Any) -> str | None:
    """The target system of a mapped code (nothing when the code is not mapped)."""
    target = ev.lookup(text(table), value, report=False)
    return target.system if target else None


@transform("coding")
def coding(ev: Evaluation, table: Any, value: Any) -> dict[str, str] | None:
    """A Coding from a concept map: system, code and display of the target."""
    target = ev.lookup(text(table), value)
    if target is None:
        return None
    out = {"system": target.system, "code": target.code, "display": target.display}
    return {k: v for k, v in out.items() if v}


@transform("national_id")
def national_id(ev: Evaluation, value: Any) -> str | None:
    """A resident ID number, normalised; problems (checksum, length, date) are warnings."""
    raw = text(value).strip()
    if not raw:
        return None
    parsed = parse_national_id(raw)
    for problem in parsed.problems:
        message = (
            f"national ID checksum is wrong ({problem})"
            if "checksum" in problem
            else f"national ID: {problem}"
        )
        ev.warning(message, location(value), code="value")
    if parsed.length == 15 and not parsed.problems:
        ev.warning(
            "old 15-digit national ID: kept as written and also given in its 18-digit form",
            location(value),
            code="informational",
        )
    return parsed.value


@transform("national_id_18")
def national_id_18(ev: Evaluation, value: Any) -> str | None:
    """The 18-character form of a 15-digit ID (None for other IDs)."""
    raw = text(value).strip()
    if not raw:
        return None
    return parse_national_id(raw).eighteen


@transform("facility_system")
def facility_system(ev: Evaluation, kind: Any) -> str:
    """The URI of the current facility's own identifier system of a kind (patient, order...)."""
    return ev.facility_system(text(kind))


@transform("hash_id")
def hash_id(ev: Evaluation, resource_type: Any, *parts: Any) -> str | None:
    values = [text(p).strip() for p in parts]
    if not all(values):
        return None
    return deterministic_id(text(resource_type), values)


@transform("ref")
def ref(ev: Evaluation, resource: Any) -> dict[str, str] | None:
    """A Reference to a resource made earlier in this translation (a bound variable)."""
    if isinstance(resource, dict) and resource.get("resourceType") and resource.get("id"):
        return {"reference": f"{resource['resourceType']}/{resource['id']}"}
    return None


@transform("refs")
def refs(ev: Evaluation, resources: Any) -> list[dict[str, str]]:
    items = resources if isinstance(resources, list) else [resources]
    return [r for r in (ref(ev, item) for item in items) if r]


@transform("apply")
def apply(ev: Evaluation, name: Any, *args: Any) -> Any:
    """Apply a datatype template (``datatypes/<name>.yaml``) to arguments."""
    return ev.apply_datatype(text(name), list(args))


# functions reading the consortium as data register themselves into FUNCTIONS
from adapter.mapping import facility_functions as _facility_functions  # noqa: E402,F401
