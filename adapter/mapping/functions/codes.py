"""Codes (concept maps), identifiers (national ID, facility systems, hashed ids),
references and datatypes (``apply``)."""

from __future__ import annotations

import re
from typing import Any

from adapter.identity import parse_national_id
from adapter.mapping.functions.registry import FunctionContext, transform
from adapter.mapping.ids import deterministic_id
from adapter.mapping.values import TEXT_DECIDES, location, text


def _table(table: Any) -> str:
    """A table's name given as other than a text (a literal text is used as it is, with no
    call): a read node's text read at once, anything else through ``text`` (decision 0149)."""
    return table.text if type(table) in TEXT_DECIDES else text(table)


@transform("map")
def map_code(ev: FunctionContext, table: Any, value: Any) -> str | None:
    target = ev.lookup(table if type(table) is str else _table(table), value)
    return target.code if target else None


# ``report`` (False: nothing reported but an error) is given by position below (0144)


@transform("map_display")
def map_display(ev: FunctionContext, table: Any, value: Any) -> str | None:
    target = ev.lookup(table if type(table) is str else _table(table), value, False)
    return target.display if target else None


@transform("map_system")
def map_system(ev: FunctionContext, table: Any, value: Any) -> str | None:
    """The target system of a mapped code (nothing when the code is not mapped)."""
    target = ev.lookup(table if type(table) is str else _table(table), value, False)
    return target.system if target else None


LOINC = "http://loinc.org"
_LOINC_SHAPE = re.compile(r"(\d{1,7})-(\d)")
# answer (LA), part (LP) and group (LG) codes: a prefix, digits, hyphen, a digit
_LOINC_OTHER = re.compile(r"L[APG]\d{1,8}-\d")


def loinc_shaped(code: str) -> bool:
    """A LOINC code: digits, a hyphen and the mod-10 check digit of the digits (LOINC's own
    rule: from the right, every other digit doubled, the digits of the results summed)."""
    if _LOINC_OTHER.fullmatch(code.strip()):
        return True
    match = _LOINC_SHAPE.fullmatch(code.strip())
    if match is None:
        return False
    total = 0
    for i, digit in enumerate(int(d) for d in reversed(match.group(1))):
        doubled = digit * 2 if i % 2 == 0 else digit
        total += doubled // 10 + doubled % 10
    return (10 - total % 10) % 10 == int(match.group(2))


# what a code must look like to be emitted in a system (only standard systems' own rules)
_SHAPES = {LOINC: loinc_shaped}


@transform("code_system")
def code_system(ev: FunctionContext, table: Any, name: Any, code: Any) -> str | None:
    """The system URI the concept map ``table`` gives the coding-system name ``name`` (its
    target system, else its target code), unless ``code`` cannot be a code of that system
    (``LN`` with a code that is not LOINC-shaped): then nothing, so the caller keeps the
    code as a local one, and a warning at the code."""
    target = ev.lookup(table if type(table) is str else _table(table), name, False)
    system = (target.system or target.code) if target else None
    check = _SHAPES.get(system or "")
    value = code if type(code) is str else text(code)
    if check is not None and value and not check(value):
        ev.warning(
            f"code {value!r} is labelled {text(name)} but is not a {system} code "
            "(digits, hyphen, check digit): kept as a local code",
            location(code),
            code="code-invalid",
        )
        return None
    return system


@transform("coding")
def coding(ev: FunctionContext, table: Any, value: Any) -> dict[str, str] | None:
    """A Coding from a concept map: system, code and display of the target."""
    target = ev.lookup(table if type(table) is str else _table(table), value)
    if target is None:
        return None
    # the keys whose value is not empty, in this order (no comprehension: a function made
    # per call, decision 0126)
    out = {}
    if target.system:
        out["system"] = target.system
    if target.code:
        out["code"] = target.code
    if target.display:
        out["display"] = target.display
    return out


@transform("national_id")
def national_id(ev: FunctionContext, value: Any) -> str | None:
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
def national_id_18(ev: FunctionContext, value: Any) -> str | None:
    """The 18-character form of a 15-digit ID (None for other IDs)."""
    raw = text(value).strip()
    if not raw:
        return None
    return parse_national_id(raw).eighteen


@transform("facility_system")
def facility_system(ev: FunctionContext, kind: Any) -> str:
    """The URI of the current facility's own identifier system of a kind (patient, order...)."""
    return ev.facility_system(
        kind if type(kind) is str else kind.text if type(kind) in TEXT_DECIDES else text(kind)
    )


@transform("hash_id")
def hash_id(ev: FunctionContext, resource_type: Any, *parts: Any) -> str | None:
    values = [text(p).strip() for p in parts]
    if not all(values):
        return None
    return deterministic_id(text(resource_type), values)


@transform("ref")
def ref(ev: FunctionContext, resource: Any) -> dict[str, str] | None:
    """A Reference to a resource made earlier in this translation (a bound variable)."""
    if isinstance(resource, dict) and resource.get("resourceType") and resource.get("id"):
        return {"reference": f"{resource['resourceType']}/{resource['id']}"}
    return None


@transform("refs")
def refs(ev: FunctionContext, resources: Any) -> list[dict[str, str]]:
    """References to each resource, once each: several items of one document may name the
    same resource (one Specimen under every test item), which a list must not repeat."""
    items = resources if isinstance(resources, list) else [resources]
    out: list[dict[str, str]] = []
    for item in items:  # a loop, not a generator (decision 0144)
        made = ref(ev, item)
        if made and made not in out:
            out.append(made)
    return out


@transform("apply")
def apply(ev: FunctionContext, name: Any, *args: Any) -> Any:
    """Apply a datatype template (``datatypes/<name>.yaml``) to arguments."""
    # the name is a literal text (the loader checks it names a datatype): no text() call
    return ev.apply_datatype(name if type(name) is str else text(name), list(args))
