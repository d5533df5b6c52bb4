"""Full FHIR R4 validation for tests: every golden test runs what it produces through here.

    from tests.fhir_checks import assert_valid_r4, validate_r4

    assert_valid_r4(resource)          # a resource or a Bundle; fails with every problem
    problems = validate_r4(resource)   # ["R4 JSON schema: Patient.gender: '男' is not one of ..."]

Four independent checks, each message prefixed with the one that found it:

``fhir.resources R4B``
    ``fhir.resources.R4B.get_fhir_model_class(type).model_validate(resource)``. R4B is FHIR
    4.3, a close sibling of R4 (4.0.1); the package has no plain R4 module any more.
``R4 JSON schema``
    The official R4 schema (tests/data/fhir-r4-schema, draft-06), compiled once per
    process. Each resource is checked against ``#/definitions/<resourceType>`` of the full
    schema, never against the top-level ``oneOf`` over all 146 resource types; resources
    nested in ``Bundle.entry.resource`` and ``contained`` are taken out and checked the same
    way on their own, with their path, so a bad entry gives a precise message rather than
    "is not valid under any of the given schemas".
``FHIR JSON rules``
    The representation rules neither of the above enforces (hl7.org/fhir/R4/json.html): no
    ``null`` outside the arrays that align primitive values with their ``_name`` twins, no
    empty strings, arrays or objects.
``R4 invariant``
    The error-level FHIRPath constraints of the R4 StructureDefinitions of the resources this
    project produces (``cmp-1``: a Composition section has text, entries or sub-sections;
    ``obs-6``, ``dom-3``, ``bdl-7`` ...), copied into tests/data/fhir-r4-invariants, evaluated
    with fhirpathpy on every element at the constraint's path, nested resources on their own.

Where R4B and R4 disagree, **the R4 schema wins**: a resource is valid only if every check
passes, so R4B-only content is refused by the R4 schema's ``additionalProperties: false``
and its list of resource types. The structural differences found (comparing every
schema definition with the R4B model of the same name):

* resource types: 4.3 added Citation, ClinicalUseDefinition, Ingredient,
  SubscriptionTopic, NutritionProduct, MedicinalProductDefinition, ... (refused here as
  unknown); 4.3 dropped the 18 R4 MedicinalProduct*, Substance{NucleicAcid, Polymer,
  Protein, ReferenceInformation, SourceMaterial, Specification} and *EvidenceSynthesis
  types, which have no R4B model: for those only the schema and the JSON rules run;
* ``Extension.value[x]`` and ``ElementDefinition`` gain ``CodeableReference`` and
  ``RatioRange`` in 4.3 (refused by the schema); R4's schema allows ``modifierExtension``
  on a few backbone elements (``Timing.repeat``, ``Dosage.doseAndRate``,
  ``ElementDefinition.*``) where R4B does not;
* the resources this project produces (Patient, Observation, DiagnosticReport,
  Encounter, ServiceRequest, Condition, Specimen, Organization, Practitioner, Bundle,
  OperationOutcome, ...) have identical element sets in both.

What each side catches that the other does not (seen with fhir.resources 8.3 and the R4
schema; tests/unit/test_fhir_checks.py pins these):

* only the schema: codes outside a required binding (``Patient.gender = "男"``,
  ``Observation.status = "done"``), ids over 64 characters, numbers and booleans written
  as JSON strings (R4B coerces ``"6.1"`` and ``"true"``), ``null`` values, R4B-only
  elements such as ``Extension.valueCodeableReference``;
* both: malformed dates and times, empty strings, unknown elements, missing required
  complex elements (``Observation.code``);
* only R4B: required primitive elements that are missing (``Observation.status``: the
  schema leaves 1..1 primitives optional because their ``_status`` twin may stand in),
  two values of one choice element (``valueQuantity`` and ``valueString``), impossible
  calendar dates (``2026-02-30`` matches the schema's pattern);
* the schema refuses ``null`` even inside arrays aligned with a ``_name`` twin, which the
  JSON format allows: produced resources must not use such arrays;
* neither: empty arrays and objects (hence the JSON rules), FHIRPath invariants
  (``obs-6``, ``dom-3``: hence the invariant check), terminology beyond the schema's
  enums, reference targets.

Also note that R4B reports missing required elements only once the present fields are
valid: a missing ``status`` is not reported while another field of the same Observation
is invalid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import fhir.resources.R4B as r4b
import pydantic
from jsonschema import Draft6Validator
from referencing import Registry
from referencing.jsonschema import DRAFT6

__all__ = ["assert_valid_r4", "validate_r4"]

SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "fhir-r4-schema" / "fhir.schema.json"
_MAX_MESSAGE = 300

MODEL = "fhir.resources R4B"
SCHEMA = "R4 JSON schema"
JSON_RULES = "FHIR JSON rules"


# ---- paths -----------------------------------------------------------------------------


def _path(base: str, parts: Sequence[str | int]) -> str:
    """``Observation`` + (code, coding, 0, system) -> ``Observation.code.coding[0].system``."""
    out = base
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


# ---- the R4 JSON schema -----------------------------------------------------------------


@cache
def _schema() -> tuple[dict[str, Any], Registry]:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    registry = Registry().with_resource(schema["id"], DRAFT6.create_resource(schema))
    return schema, registry


@cache
def _schema_validator(resource_type: str) -> Draft6Validator | None:
    schema, registry = _schema()
    if resource_type not in schema["discriminator"]["mapping"]:
        return None
    return Draft6Validator(
        {"$ref": f"{schema['id']}#/definitions/{resource_type}"}, registry=registry
    )


def _nested_resources(
    resource: dict[str, Any], path: str
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], str]]]:
    """Split off the resources in ``entry[].resource`` and ``contained[]``.

    Returns the outer resource without them (a shallow copy) and ``(resource, path)`` pairs.
    """
    nested: list[tuple[dict[str, Any], str]] = []
    outer = dict(resource)
    contained = outer.get("contained")
    if isinstance(contained, list):
        nested += [(c, f"{path}.contained[{i}]") for i, c in enumerate(contained)]
        del outer["contained"]  # an empty array is left to the JSON rules
    entries = outer.get("entry") if outer.get("resourceType") == "Bundle" else None
    if isinstance(entries, list):
        stripped = []
        for i, entry in enumerate(entries):
            if isinstance(entry, dict) and "resource" in entry:
                nested.append((entry["resource"], f"{path}.entry[{i}].resource"))
                entry = {k: v for k, v in entry.items() if k != "resource"}
            stripped.append(entry)
        outer["entry"] = stripped
    return outer, nested


def _schema_problems(resource: Any, path: str) -> Iterator[str]:
    if not isinstance(resource, dict):
        yield f"{SCHEMA}: {path}: a resource must be a JSON object"
        return
    resource_type = resource.get("resourceType")
    validator = _schema_validator(resource_type) if isinstance(resource_type, str) else None
    if validator is None:
        yield f"{SCHEMA}: {path}: unknown resourceType {resource_type!r}"
        return
    outer, nested = _nested_resources(resource, path)
    errors = sorted(validator.iter_errors(outer), key=lambda e: list(map(str, e.absolute_path)))
    for error in errors:
        if _xsd_string_pattern_ok(error):
            continue
        yield f"{SCHEMA}: {_path(path, list(error.absolute_path))}: {_short(error.message)}"
    for child, child_path in nested:
        yield from _schema_problems(child, child_path)


# The schema writes FHIR's string pattern as ``[ \r\n\t\S]+`` in XML Schema terms, where
# ``\S`` excludes only space, tab, CR and LF. Python's ``\S`` also excludes Unicode spaces
# (NO-BREAK SPACE, the ideographic space U+3000 common in Chinese text), which FHIR allows.
_XSD_STRING_PATTERNS = {r"^[ \r\n\t\S]+$"}


def _xsd_string_pattern_ok(error: Any) -> bool:
    return (
        error.validator == "pattern"
        and error.validator_value in _XSD_STRING_PATTERNS
        and isinstance(error.instance, str)
        and len(error.instance) > 0
    )


# ---- fhir.resources R4B -------------------------------------------------------------------


def _model_problems(resource: Any, path: str) -> Iterator[str]:
    if not isinstance(resource, dict):
        yield f"{MODEL}: {path}: a resource must be a JSON object"
        return
    resource_type = resource.get("resourceType")
    try:
        model = r4b.get_fhir_model_class(resource_type)
    except (ValueError, KeyError, TypeError, AttributeError):
        if isinstance(resource_type, str) and _schema_validator(resource_type) is not None:
            return  # an R4 type dropped in 4.3: the R4 schema alone decides
        yield f"{MODEL}: {path}: unknown resourceType {resource_type!r}"
        return
    try:
        model.model_validate(resource)
    except pydantic.ValidationError as exc:
        for error in exc.errors():
            loc = [p for p in error["loc"] if isinstance(p, str | int)]
            yield f"{MODEL}: {_path(path, loc)}: {_short(error['msg'])}"


# ---- JSON representation rules ----------------------------------------------------------


def _json_rule_problems(value: Any, path: str, *, in_aligned_array: bool = False) -> Iterator[str]:
    if value is None:
        if not in_aligned_array:
            yield f"{JSON_RULES}: {path}: null is not allowed"
    elif isinstance(value, str):
        if value == "":
            yield f"{JSON_RULES}: {path}: empty string is not allowed"
    elif isinstance(value, list):
        if not value:
            yield f"{JSON_RULES}: {path}: empty array is not allowed"
        for i, item in enumerate(value):
            yield from _json_rule_problems(item, f"{path}[{i}]", in_aligned_array=in_aligned_array)
    elif isinstance(value, dict):
        if not value:
            yield f"{JSON_RULES}: {path}: empty object is not allowed"
        for key, item in value.items():
            # "given": ["a", null] may pair with "_given": [null, {extension}] and vice versa.
            aligned = isinstance(item, list) and (
                (f"_{key}" in value) if not key.startswith("_") else (key[1:] in value)
            )
            yield from _json_rule_problems(item, f"{path}.{key}", in_aligned_array=aligned)


# ---- FHIRPath invariants ------------------------------------------------------------------

INVARIANTS = "R4 invariant"
INVARIANTS_PATH = (
    Path(__file__).resolve().parent / "data" / "fhir-r4-invariants" / "constraints.json"
)


@cache
def _invariants() -> dict[str, list[dict[str, str]]]:
    """resourceType -> its error-level constraints (path, key, human, expression), from the
    R4 StructureDefinitions (tests/data/fhir-r4-invariants)."""
    data = json.loads(INVARIANTS_PATH.read_text(encoding="utf-8"))
    return {
        kind: [c for c in rows if c["severity"] == "error"]
        for kind, rows in data["constraints"].items()
    }


@cache
def _compiled(path: str, expression: str) -> Any:
    """``path.all(expression)`` compiled once: the constraint holds on every element at its
    path (on the resource itself when the path is the type)."""
    from fhirpathpy import compile as fhirpath_compile
    from fhirpathpy.models import models

    # choice elements (value[x]) hold their constraint wherever the element is present
    steps = path.replace("[x]", "").split(".")
    where = ".".join(steps[1:])
    # fhirpathpy 2.2 lacks hasValue(); on JSON primitives exists() says the same (a value
    # present), extensions aside, which this project never writes on primitives
    expression = expression.replace("hasValue()", "exists()")
    text = f"{where}.all({expression})" if where else f"({expression})"
    # dom-3 calls trace(): keep its output off stdout
    return fhirpath_compile(text, models["r4"], {"traceFn": lambda *_: None})


def _invariant_problems(resource: Any, path: str) -> Iterator[str]:
    if not isinstance(resource, dict):
        return
    _, nested = _nested_resources(resource, path)
    kind = resource.get("resourceType")
    for constraint in _invariants().get(str(kind), []):
        if "[x]" in constraint["path"]:
            continue  # a choice element's own constraints (none at error level we produce)
        try:
            result = _compiled(constraint["path"], constraint["expression"])(
                resource, {"resource": resource, "rootResource": resource}
            )
        except Exception as exc:  # an expression fhirpathpy cannot evaluate: say so, loudly
            yield f"{INVARIANTS}: {path}: {constraint['key']} could not be evaluated: {exc}"
            continue
        if result != [True] and result != []:
            yield _short(
                f"{INVARIANTS}: {path}: {constraint['key']} ({constraint['path']}): "
                f"{constraint['human']}"
            )
    for child, child_path in nested:
        yield from _invariant_problems(child, child_path)


# ---- the public helpers -----------------------------------------------------------------


def validate_r4(resource: dict[str, Any]) -> list[str]:
    """Every problem the three checks find in ``resource`` (a resource or a Bundle)."""
    root = resource.get("resourceType", "?") if isinstance(resource, dict) else "?"
    path = str(root)
    return [
        *_model_problems(resource, path),
        *_schema_problems(resource, path),
        *_json_rule_problems(resource, path),
        *_invariant_problems(resource, path),
    ]


def assert_valid_r4(resource: dict[str, Any]) -> None:
    """Fail the test with every problem found, one per line."""
    problems = validate_r4(resource)
    if problems:
        rid = resource.get("id") if isinstance(resource, dict) else None
        head = f"{resource.get('resourceType', '?')}/{rid}" if rid else "resource"
        raise AssertionError(
            f"{head} is not valid FHIR R4 ({len(problems)} problems):\n  " + "\n  ".join(problems)
        )
