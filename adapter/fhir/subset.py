"""``_summary`` and ``_elements``: a resource cut down to some of its elements.

Which elements are "summary" (``isSummary`` in the R4 StructureDefinitions) and which are
mandatory (min 1) comes from the fhir.resources models, read once per type. A cut-down
resource carries the ``SUBSETTED`` tag in ``meta.tag``, as FHIR asks, so nobody stores it
as if it were whole. The stored body is never changed: a copy is returned.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
_ALWAYS = frozenset({"resourceType", "id", "meta"})


@cache
def _elements_of(resource_type: str) -> tuple[frozenset[str], frozenset[str]]:
    """(summary elements, mandatory elements) of a type, by their JSON names."""
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return frozenset(), frozenset()
    summary: set[str] = set()
    mandatory: set[str] = set()
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        json_name = field.alias or name
        if extra.get("summary_element_property"):
            summary.add(json_name)
        if extra.get("element_required") or field.is_required():
            mandatory.add(json_name)
    return frozenset(summary), frozenset(mandatory)


def subset(
    body: dict[str, Any], summary: str | None, elements: tuple[str, ...] | None
) -> dict[str, Any]:
    """The body as ``_summary`` / ``_elements`` ask (``_summary`` wins when both are given)."""
    if summary in (None, "false", "count") and elements is None:
        return body
    summary_names, mandatory = _elements_of(body.get("resourceType", ""))
    if summary == "true":
        keep = _ALWAYS | summary_names
    elif summary == "text":
        keep = _ALWAYS | mandatory | {"text"}
    elif summary == "data":
        keep = None
    else:
        wanted = set(elements or ())
        keep = _ALWAYS | mandatory | wanted
    out: dict[str, Any] = {}
    for key, value in body.items():
        if summary == "data":
            if key != "text":
                out[key] = value
        elif _kept(key, keep, elements or ()):
            out[key] = value
    if out == body:
        return body
    meta = dict(out.get("meta") or {})
    tags = [t for t in meta.get("tag") or [] if t.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    out["meta"] = meta
    return _meta_after_id(out)


def _kept(key: str, keep: frozenset[str] | set[str] | None, asked: tuple[str, ...]) -> bool:
    if keep is None:
        return True
    if key.startswith("_"):  # the extension twin of a primitive goes with it
        key = key[1:]
    if key in keep:
        return True
    # a choice element asked for: "effective" keeps effectiveDateTime, effectivePeriod ...
    return any(key.startswith(name) and key[len(name) : len(name) + 1].isupper() for name in asked)


def _meta_after_id(resource: dict[str, Any]) -> dict[str, Any]:
    order = ["resourceType", "id", "meta"]
    head = {k: resource[k] for k in order if k in resource}
    return head | {k: v for k, v in resource.items() if k not in head}
