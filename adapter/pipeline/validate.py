"""$validate: a posted resource checked as the pipeline checks what it produces, plus the
full R4 structure (the fhir.resources models, too slow for every message: decision 0003,
fine for one resource on request)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from adapter.errors import Issue
from adapter.pipeline.checks import check_resources


def validate_resource(resource: dict[str, Any]) -> list[Issue]:
    """Every problem found, located by FHIRPath-like expression; [] when valid."""
    issues = check_resources([resource])
    rtype = str(resource.get("resourceType"))
    try:
        model = get_fhir_model_class(rtype)
    except (KeyError, ValueError):
        return [*issues, Issue("error", "not-supported", f"unknown resource type {rtype!r}")]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        for error in exc.errors()[:100]:
            where = ".".join(str(p) for p in (rtype, *error.get("loc", ())))
            issues.append(
                Issue(
                    "error", "structure", str(error.get("msg", "invalid"))[:300], expression=where
                )
            )
    return issues
